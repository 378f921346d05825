# relayfix build. `make demo` runs the whole story; `make test` runs every test.
GO       ?= go
BIN      ?= bin
DIST     ?= dist
STAMP     = -X relayfix/internal/stamp.what=@(\#)relayfix-fileversion:
# Keep these in step with internal/stamp (a test checks).
RELAYD_VERSION         = 6.5.7638.1
TRACK_PREFIX_VERSION   = 6.5.7638.1
TRACK_FIXED_VERSION    = 6.5.7651.45
SP3_RELAYD_VERSION     = 6.5.7700.1
SP3_TRACK_VERSION      = 6.5.7700.1

.PHONY: all build test demo bench packages clean

all: build

build:
	@mkdir -p $(BIN)/sp2 $(BIN)/kb910618 $(BIN)/sp3
	$(GO) build -o $(BIN)/hotfix ./cmd/hotfix
	$(GO) build -ldflags '$(STAMP)$(RELAYD_VERSION);' -o $(BIN)/relayd ./cmd/relayd
	$(GO) build -tags msgtrack_prefix -ldflags '$(STAMP)$(TRACK_PREFIX_VERSION);' -o $(BIN)/sp2/msgtrack ./cmd/msgtrack
	$(GO) build -ldflags '$(STAMP)$(TRACK_FIXED_VERSION);' -o $(BIN)/kb910618/msgtrack ./cmd/msgtrack
	$(GO) build -ldflags '$(STAMP)$(SP3_RELAYD_VERSION);' -o $(BIN)/sp3/relayd ./cmd/relayd
	$(GO) build -ldflags '$(STAMP)$(SP3_TRACK_VERSION);' -o $(BIN)/sp3/msgtrack ./cmd/msgtrack

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

clean:
	rm -rf $(BIN) $(DIST)

# The whole story on a throwaway root (needs the packages: SP2, KB910618 and the demo key).
demo: packages
	$(GO) build -o $(BIN)/relayfix-demo ./cmd/relayfix-demo
	$(BIN)/relayfix-demo --bin $(BIN) --dist $(DIST)

# Signed packages from the templates in packaging/: a demo key pair made here at build time
# (dist/ is not committed, so dist/demo.key never is), SP2 with relayd and the pre-fix tracking
# build, KB910618 with the fixed tracking build dated as the KB article dates it, and SP3 with
# new relayd and tracking builds, applied live (the relay hands itself over to its new build).
packages: build
	@mkdir -p $(DIST)
	test -f $(DIST)/demo.key || $(BIN)/hotfix keygen -o $(DIST)/demo
	$(BIN)/hotfix pack --manifest packaging/SP2.json --key $(DIST)/demo.key \
		--file bin/relayd=$(BIN)/relayd --file bin/msgtrack=$(BIN)/sp2/msgtrack \
		--date 2005-10-17T12:00:00Z -o $(DIST)/SP2.hfx
	$(BIN)/hotfix pack --manifest packaging/KB910618.json --key $(DIST)/demo.key \
		--file bin/msgtrack=$(BIN)/kb910618/msgtrack \
		--date 2006-02-14T03:36:00Z -o $(DIST)/KB910618.hfx
	$(BIN)/hotfix pack --manifest packaging/SP3.json --key $(DIST)/demo.key \
		--file bin/relayd=$(BIN)/sp3/relayd --file bin/msgtrack=$(BIN)/sp3/msgtrack \
		--date 2006-06-20T12:00:00Z -o $(DIST)/SP3.hfx

# Every benchmark, and bench/REPORT.md with bench/hotfix-live.png.
bench: build
	bash bench/run.sh
