#!/usr/bin/env bash
# relay.sh - relayd against Postfix, end to end, with the shared peer harness
# (../shared/bench/peer-postfix.sh beside the repository, or $PEER): 4 KiB messages at concurrency 1, 8 and 32,
# tracking off, each target measured REPS times interleaved. Prints a table of median/min/max
# msgs/s and relayd's ratio to Postfix. Traffic stays on 127.0.0.1.
#   bash bench/relay.sh                  # from the repository root
#   REPS=5 N=3000 bash bench/relay.sh    # knobs of the harness pass through
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${PEER:-$(cd .. && pwd)/shared/bench/peer-postfix.sh}
PORT=${RUT_PORT:-2600} SINK=${RUT_SINK_PORT:-2601}
W=$(mktemp -d /tmp/relay-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
go build -o "$W/relayd" ./cmd/relayd
mkdir -p "$W/root"
# The root is on the same filesystem as the harness's Postfix queue (both under /tmp).
export REPS=${REPS:-3} N=${N:-2000} SIZE=${SIZE:-4096} CONCS=${CONCS:-"1 8 32"}
export RUT_NAME=relayd
export RUT_CMD="exec $W/relayd --root $W/root --listen 127.0.0.1:$PORT --next-hop 127.0.0.1:$SINK --allow 127.0.0.1/32 --tracking=false --log-level warn"
bash "$PEER" "127.0.0.1:$PORT" "$SINK" | tee "$W/summary.txt"
echo
awk -v concs="$CONCS" '
  /=/ { split($1, kv, "="); med[kv[1]] = kv[2]
        for (i = 2; i <= NF; i++) { split($i, f, "="); if (f[1] == "min") mn[kv[1]] = f[2]; if (f[1] == "max") mx[kv[1]] = f[2] } }
  END {
    printf "%-6s %-28s %-28s %s\n", "conc", "relayd e2e msgs/s (min-max)", "postfix e2e msgs/s (min-max)", "ratio"
    n = split(concs, c, " ")
    for (i = 1; i <= n; i++) {
      r = "relayd_e2e_c" c[i]; p = "postfix_e2e_c" c[i]
      ratio = (med[p] > 0) ? sprintf("%.2fx", med[r] / med[p]) : "-"
      printf "%-6s %-28s %-28s %s\n", c[i], med[r] " (" mn[r] "-" mx[r] ")", med[p] " (" mn[p] "-" mx[p] ")", ratio
    }
  }' "$W/summary.txt"
