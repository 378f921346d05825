#!/usr/bin/env bash
# run.sh - runs every relayfix benchmark on this machine and writes bench/REPORT.md (each table
# with the date and the machine) and bench/hotfix-live.png (delivered msgs/s over time across a
# live hotfix). `make bench` calls it. Traffic stays on 127.0.0.1; every load is bounded.
#   bash bench/run.sh                 # everything (about 15 minutes on 2 cores)
#   ONLY="verify apply" bash bench/run.sh
# The Postfix comparison uses the shared peer harness ($PEER, default ../shared/bench/peer-postfix.sh),
# which installs Postfix from Debian the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=${ONLY:-"relay tracking metrics verify apply memory live"}
W=$(mktemp -d /tmp/relayfix-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
want() { [[ " $ONLY " == *" $1 "* ]]; }
log() { printf '[%(%T)T] %s\n' -1 "$*" >&2; }

section() {  # section NAME TITLE COMMAND...: run COMMAND, keep its output for the report
  local name=$1 title=$2; shift 2
  want "$name" || return 0
  log "$title"
  local t0=$SECONDS
  if "$@" >"$W/$name.out" 2>"$W/$name.err"; then
    printf '\n## %s\n\n_%s, %ds_\n\n```\n%s\n```\n' "$title" "$(date -u '+%Y-%m-%d %H:%M UTC')" $((SECONDS - t0)) "$(cat "$W/$name.out")" >>"$W/report"
  else
    printf '\n## %s\n\nFAILED:\n\n```\n%s\n```\n' "$title" "$(tail -n 20 "$W/$name.err")" >>"$W/report"
    log "$title: FAILED (see the report)"
  fi
}

live() {
  make -s packages >/dev/null
  go build -o bin/relayfix-demo ./cmd/relayfix-demo
  bin/relayfix-demo --bin bin --dist dist --messages 60000 --rate -1 -c 8 --phase 3s \
    --plot bench/hotfix-live.png --timeline bench/hotfix-live.csv
}
apply() {
  go test -count=1 ./packages/e2e -run '^$' -bench LiveApply -benchtime 10x
}

{
  echo "# relayfix benchmarks"
  echo
  echo "Written by \`make bench\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "| machine | |"
  echo "|---|---|"
  echo "| cpu | $(nproc) × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) |"
  echo "| memory | $(free -h | awk '/Mem:/ {print $2}') |"
  echo "| kernel | $(uname -r) |"
  echo "| go | $(go version | awk '{print $3}') |"
  echo "| spool filesystem | $(df -PT /tmp | awk 'NR==2 {print $2}') |"
} >"$W/report"

section relay "relayd vs Postfix, end to end, 4 KiB messages (msgs/s)" bash bench/relay.sh
section tracking "Tracking cost: relayd end to end with tracking off, on, and crash-looping (msgs/s)" bash relay/trackhost/bench.sh 7
section metrics "Metrics cost: relayd end to end without and with --metrics-listen, scraped every second (msgs/s)" bash bench/metrics.sh 7
section verify "hotfix verify of a 64 MiB payload vs sha256sum" bash bench/verify.sh 5
section apply "Live apply of KB910618 under load, restart and health check included (10 runs)" apply
section memory "relayd memory with 100,000 queued 4 KiB messages, next hop down" bash bench/relay-memory.sh
section live "The story under load: delivered msgs/s across a live hotfix (bench/hotfix-live.png)" live
if want live && [[ -f bench/hotfix-live.png ]]; then
  printf '\n![delivered msgs/s across a live hotfix](hotfix-live.png)\n' >>"$W/report"
fi
cp "$W/report" bench/REPORT.md
log "wrote bench/REPORT.md"
