#!/usr/bin/env bash
# relay-memory.sh - relayd's memory with a big queue: N (100,000) 4 KiB messages accepted while
# the next hop is down, then the resident set size (now and peak) of the relay. The queue index
# holds no bodies, so the goal is RSS < 200 MB. Traffic stays on 127.0.0.1; the load is bounded
# in count (N) and time (TIMEOUT seconds). Uses Postfix's smtp-source (installed by
# ../shared/bench/peer-postfix.sh) with connection reuse, else ../shared/acceptance/mailcheck.
#   bash bench/relay-memory.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000} C=${C:-16} SIZE=${SIZE:-4096} TIMEOUT=${TIMEOUT:-600}
PORT=${PORT:-2610} DOWN=${DOWN:-2611}
PATH=$PATH:/usr/sbin
W=$(mktemp -d /tmp/relay-mem.XXXXXX)
PID=""
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
go build -o "$W/relayd" ./cmd/relayd
mkdir -p "$W/root"
"$W/relayd" --root "$W/root" --listen "127.0.0.1:$PORT" --next-hop "127.0.0.1:$DOWN" \
  --tracking=false --log-level warn --retry-base 10m 2>"$W/relayd.log" &
PID=$!
for ((i = 0; i < 100; i++)); do ss -Hltn "sport = :$PORT" | grep -q . && break; sleep 0.1; done
t0=$EPOCHREALTIME
if command -v smtp-source >/dev/null; then
  timeout "$TIMEOUT" smtp-source -d -s "$C" -m "$N" -l "$SIZE" -f src@bench.invalid -t dst@sink.invalid "127.0.0.1:$PORT"
else
  (cd ../shared/acceptance/mailcheck && go build -o "$W/mailcheck" .)
  "$W/mailcheck" send -to "127.0.0.1:$PORT" -n "$N" -c "$C" -size "$SIZE" -duration "${TIMEOUT}s"
fi
t1=$EPOCHREALTIME
depth=$("$W/relayd" ctl status --json --root "$W/root" | sed -n 's/.*"queue_depth": \([0-9]*\).*/\1/p')
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
spool=$(du -sm "$W/root/spool" | cut -f1)
awk -v n="$N" -v a="$t0" -v b="$t1" -v d="$depth" -v r="$rss" -v h="$hwm" -v s="$spool" 'BEGIN {
  printf "messages=%d queued=%d ingest=%.0f msgs/s rss=%.1f MB peak_rss=%.1f MB spool=%d MB\n", n, d, n / (b - a), r / 1024, h / 1024, s }'
# A crash with the whole queue on disk: kill -9, restart, and time the spool read-back.
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
t0=$EPOCHREALTIME
"$W/relayd" --root "$W/root" --listen "127.0.0.1:$PORT" --next-hop "127.0.0.1:$DOWN" \
  --tracking=false --log-level warn --retry-base 10m 2>>"$W/relayd.log" &
PID=$!
for ((i = 0; i < 1200; i++)); do ss -Hltn "sport = :$PORT" | grep -q . && break; sleep 0.05; done
t1=$EPOCHREALTIME
depth=$("$W/relayd" ctl status --json --root "$W/root" | sed -n 's/.*"queue_depth": \([0-9]*\).*/\1/p')
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
awk -v a="$t0" -v b="$t1" -v d="$depth" -v r="$rss" -v h="$hwm" 'BEGIN {
  printf "after kill -9: read back %d messages in %.1f s, rss=%.1f MB peak_rss=%.1f MB\n", d, b - a, r / 1024, h / 1024 }'
