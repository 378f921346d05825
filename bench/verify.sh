#!/usr/bin/env bash
# Measures hotfix verify on a package with a 64 MiB payload against sha256sum of the same
# payload, in the same run, and prints both rates and their ratio (the goal is >= 0.8).
#
#   bench/verify.sh [RUNS]      (default 5 runs each; the median is reported, with min and max)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/hotfix" ./cmd/hotfix
go build -ldflags "-X relayfix/internal/stamp.what=@(#)relayfix-fileversion:6.5.7651.45;" \
  -o "$work/stamped" ./packages/archive/testdata/stamped

# A payload with the make-up of real binaries: the stamped executable, then machine code and data
# from the system's shared libraries, to 64 MiB.
size=$((64 << 20))
# (head closes the pipe early on purpose; the size check below is what counts.)
{ cat "$work/stamped"; find /usr/lib /usr/bin -type f -size +100k 2>/dev/null | sort | xargs cat 2>/dev/null; } |
  head -c "$size" > "$work/payload" || true
[ "$(stat -c %s "$work/payload")" -eq "$size" ] || { echo "could not build a 64 MiB payload" >&2; exit 1; }
cat > "$work/tmpl.json" <<'JSON'
{"schema": 1, "id": "KB910618", "title": "Benchmark", "kind": "hotfix", "released": "2006-02-14",
 "product": {"name": "relayfix"}, "requires": {"service_pack": 2},
 "files": [{"name": "msgtrack", "path": "bin/msgtrack"}], "restart": {"reboot": false}}
JSON
"$work/hotfix" keygen -o "$work/key" >/dev/null
"$work/hotfix" pack --manifest "$work/tmpl.json" --key "$work/key.key" \
  --file "bin/msgtrack=$work/payload" --date 2006-02-14T03:36:00Z -o "$work/pkg.hfx" >/dev/null
pkgsize=$(stat -c %s "$work/pkg.hfx")

# rate prints MB/s (10^6 bytes per second) of one timed run of the command.
rate() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  awk -v b="$size" -v ns="$((end - start))" 'BEGIN { printf "%.1f\n", b / (ns / 1e9) / 1e6 }'
}
stats() { sort -n | awk '{ a[NR] = $1 } END { printf "median %.1f  min %.1f  max %.1f", a[int((NR + 1) / 2)], a[1], a[NR] }'; }

cat "$work/payload" "$work/pkg.hfx" >/dev/null # warm the page cache
verify=() sha=()
for _ in $(seq "$runs"); do
  verify+=("$(rate "$work/hotfix" verify "$work/pkg.hfx" --pubkey "$work/key.pub")")
  sha+=("$(rate sha256sum "$work/payload")")
done
vm=$(printf '%s\n' "${verify[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
sm=$(printf '%s\n' "${sha[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "payload 64 MiB, package $pkgsize bytes (zstd), $runs runs each, MB/s of payload:"
echo "  hotfix verify: $(printf '%s\n' "${verify[@]}" | stats)"
echo "  sha256sum:     $(printf '%s\n' "${sha[@]}" | stats)"
awk -v v="$vm" -v s="$sm" 'BEGIN { printf "  ratio verify/sha256sum (medians): %.2f (goal >= 0.80)\n", v / s }'
