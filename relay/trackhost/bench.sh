#!/usr/bin/env bash
# bench.sh — end-to-end relayd throughput with tracking off, on (the fixed build) and
# crash-looping (the SP2 build), interleaved so that noise on a shared machine hits all three
# alike. Prints every run, then median, min and max of msgs/s and of CPU per message per mode.
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
      awk -v m="$mode" -v r="$rep" '/msgs\/s/ {
        for (i = 1; i < NF; i++) { if ($(i+1) == "msgs/s") rate = $i; if ($(i+1) == "cpu-µs/msg") cpu = $i }
        print m, rate, cpu; printf "rep %d %-9s %6s msgs/s %6s cpu-µs/msg\n", r, m, rate, cpu > "/dev/stderr" }' >>"$results"
  done
done
stats() { sort -n | awk '{ v[NR] = $1 } END { med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%8.0f %8.0f %8.0f", med, v[1], v[NR] }'; }
echo "$reps runs of 3x1000 messages over 16 connections; cpu = relayd + msgtrack processes"
echo "mode        msgs/s: median    min      max    cpu-µs/msg: median  min      max"
for mode in Off On CrashLoop; do
  printf "%-9s %s    %s\n" "$mode" "$(grep "^$mode " "$results" | awk '{print $2}' | stats)" "$(grep "^$mode " "$results" | awk '{print $3}' | stats)"
done
