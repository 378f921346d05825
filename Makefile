# relayfix build. `make demo` runs the whole story; `make test` runs every test.
GO       ?= go
BIN      ?= bin
DIST     ?= dist
STAMP     = -X relayfix/internal/stamp.what=@(\#)relayfix-fileversion:
# Keep these in step with internal/stamp (a test checks).
RELAYD_VERSION         = 6.5.7638.1
TRACK_PREFIX_VERSION   = 6.5.7638.1
TRACK_FIXED_VERSION    = 6.5.7651.45

.PHONY: all build test demo bench packages clean

all: build

build:
	@mkdir -p $(BIN)/sp2 $(BIN)/kb910618
	$(GO) build -o $(BIN)/hotfix ./cmd/hotfix
	$(GO) build -ldflags '$(STAMP)$(RELAYD_VERSION);' -o $(BIN)/relayd ./cmd/relayd
	$(GO) build -tags msgtrack_prefix -ldflags '$(STAMP)$(TRACK_PREFIX_VERSION);' -o $(BIN)/sp2/msgtrack ./cmd/msgtrack
	$(GO) build -ldflags '$(STAMP)$(TRACK_FIXED_VERSION);' -o $(BIN)/kb910618/msgtrack ./cmd/msgtrack

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

clean:
	rm -rf $(BIN) $(DIST)

# The whole story on a throwaway root (needs the packages: SP2, KB910618 and the demo key).
demo: packages
	$(GO) build -o $(BIN)/relayfix-demo ./cmd/relayfix-demo
	$(BIN)/relayfix-demo --bin $(BIN) --dist $(DIST)
