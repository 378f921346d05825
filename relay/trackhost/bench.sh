#!/usr/bin/env bash
# bench.sh — end-to-end relayd throughput with tracking off, on (the fixed build) and
# crash-looping (the SP2 build), interleaved so that noise on a shared machine hits all three
# alike. Prints every run, then median, min and max msgs/s per mode.
#
#   bash relay/trackhost/bench.sh [reps]    # from the repository root; default 5 reps
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-5}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/trackhost.test" ./relay/trackhost
results=$bin/results
for rep in $(seq "$reps"); do
  for mode in Off On CrashLoop; do
    "$bin/trackhost.test" -test.run '^$' -test.bench "^BenchmarkRelaydTracking${mode}\$" -test.benchtime 3x |
      awk -v m="$mode" -v r="$rep" '/msgs\/s/ { for (i = 1; i < NF; i++) if ($(i+1) == "msgs/s") { print m, $i; printf "rep %d %-9s %s msgs/s\n", r, m, $i > "/dev/stderr" } }' >>"$results"
  done
done
echo "mode       median      min      max  (msgs/s, $reps runs of 3x1000 messages, 16 connections)"
for mode in Off On CrashLoop; do
  grep "^$mode " "$results" | awk '{print $2}' | sort -n | awk -v m="$mode" '
    { v[NR] = $1 } END { med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%-9s %8.0f %8.0f %8.0f\n", m, med, v[1], v[NR] }'
done
