#!/usr/bin/env bash
# swap.sh - what clients see while a relay's binary is swapped, same run, same load for each
# (8 clients reconnecting every 5 messages, 200 msgs/s, 12 s, the swap after 4 s): Postfix's
# `postfix stop; postfix start` and `postfix reload` (an instance of its own, in a config dir of
# its own, on loopback, as ../shared/bench/peer-postfix.sh runs it), relayd's live upgrade by
# `hotfix apply SP3` and back by `hotfix rollback SP3`, and the live tracking apply of KB910618.
# Prints one line per swap and draws bench/relay-swap.png. Needs root (Postfix) and `make packages`.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=$PATH:/usr/sbin:/sbin
BIN=${BIN:-bin} DIST=${DIST:-dist} PLOT=${PLOT:-bench/relay-swap.png}
W=$(mktemp -d /tmp/relayfix-swap.XXXXXX)
chmod 755 "$W" # Postfix's own processes run as postfix
PFC=$W/pf/etc R=$W/root RELAYD_PID=
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cleanup() {
  set +e
  [[ -f $PFC/main.cf ]] && postfix -c "$PFC" stop >/dev/null 2>&1
  if [[ -f $R/run/relayd.pid ]]; then kill "$(cat "$R/run/relayd.pid")" 2>/dev/null; fi
  [[ -n $RELAYD_PID ]] && kill -- "-$RELAYD_PID" 2>/dev/null
  sleep 1
  rm -rf "$W"
}
trap cleanup EXIT

make -s packages BIN="$BIN" DIST="$DIST" >/dev/null
go build -o "$W/swap" ./bench/swap
SINK=$(free_port) PF_PORT=$(free_port) RD_PORT=$(free_port)
measure() { "$W/swap" -label "$1" -addr "$2" -sink "127.0.0.1:$SINK" -swap "$3" -out "$W/$4.json"; }

# Postfix: its own instance, relaying everything to the measuring sink.
mkdir -p "$PFC" "$W/pf/spool" "$W/pf/data"
cat >"$PFC/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $W/pf/spool
data_directory = $W/pf/data
maillog_file_prefixes = /var, /dev/stdout, $W
maillog_file = $W/postfix.log
myhostname = relay.bench.invalid
mydestination =
local_transport = error:local delivery disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
EOF
cat >"$PFC/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
EOF
chown postfix "$W/pf/data"
postfix -c "$PFC" check
postfix -c "$PFC" start >/dev/null 2>&1
measure "postfix stop; postfix start" "127.0.0.1:$PF_PORT" "postfix -c $PFC stop >/dev/null 2>&1; postfix -c $PFC start >/dev/null 2>&1" stop-start
measure "postfix reload" "127.0.0.1:$PF_PORT" "postfix -c $PFC reload >/dev/null 2>&1" reload
postfix -c "$PFC" stop >/dev/null 2>&1

# relayd on SP2, started by its installed path as the systemd unit starts it; KB910618 (a tracking
# restart), then SP3 (a live upgrade of relayd itself) and back.
"$BIN/hotfix" apply "$DIST/SP2.hfx" --pubkey "$DIST/demo.pub" --root "$R" >/dev/null
setsid "$R/bin/relayd" --root "$R" --listen "127.0.0.1:$RD_PORT" --next-hop "127.0.0.1:$SINK" >"$W/relayd.log" 2>&1 &
RELAYD_PID=$!
for _ in $(seq 100); do "$R/bin/relayd" ctl status --root "$R" >/dev/null 2>&1 && break; sleep 0.1; done
measure "relayd: apply KB910618 (tracking)" "127.0.0.1:$RD_PORT" "$BIN/hotfix apply $DIST/KB910618.hfx --root $R >/dev/null" kb
measure "relayd: apply SP3 (live upgrade)" "127.0.0.1:$RD_PORT" "$BIN/hotfix apply $DIST/SP3.hfx --root $R >/dev/null" sp3
measure "relayd: rollback SP3" "127.0.0.1:$RD_PORT" "$BIN/hotfix rollback SP3 --root $R >/dev/null" sp3-back

"$W/swap" -plot "$PLOT" "$W"/stop-start.json "$W"/reload.json "$W"/kb.json "$W"/sp3.json "$W"/sp3-back.json
echo "plot: $PLOT"
