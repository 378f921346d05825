#!/usr/bin/env bash
# metrics.sh - end-to-end relayd throughput without and with --metrics-listen (scraped every
# second), interleaved so that noise on a shared machine hits both alike. Prints every run, then
# median, min and max msgs/s per mode and the median ratio On/Off (the budget: at most 3% fewer).
#
#   bash bench/metrics.sh [reps]    # from the repository root; default 7 reps
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-7}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go test -c -o "$bin/metrics.test" ./relay/metrics
results=$bin/results
for rep in $(seq "$reps"); do
  # Alternate which mode goes first, so that neither always runs on a warmer machine.
  modes="Off On"; (( rep % 2 == 0 )) && modes="On Off"
  for mode in $modes; do
    if ! "$bin/metrics.test" -test.run '^$' -test.bench "^BenchmarkRelaydMetrics${mode}\$" -test.benchtime 3x >"$bin/run.out" 2>&1; then
      echo "rep $rep $mode FAILED (left out):" >&2; tail -n 5 "$bin/run.out" >&2; continue
    fi
    awk -v m="$mode" -v r="$rep" '/msgs\/s/ {
        for (i = 1; i < NF; i++) { if ($(i+1) == "msgs/s") rate = $i; if ($(i+1) == "cpu-µs/msg") cpu = $i }
        print m, rate, cpu, r; printf "rep %d %-3s %6s msgs/s %6s cpu-µs/msg\n", r, m, rate, cpu > "/dev/stderr" }' "$bin/run.out" >>"$results"
  done
done
stats() { sort -n | awk '{ v[NR] = $1 } END { med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%8.0f %8.0f %8.0f", med, v[1], v[NR] }'; }
echo "$reps interleaved runs of 3x1000 messages over 16 connections, 1 KiB, tracking off; On scrapes /metrics every second"
echo "mode   msgs/s: median    min      max    relayd cpu-µs/msg: median  min      max"
for mode in Off On; do
  printf "%-4s %s    %s\n" "$mode" "$(grep "^$mode " "$results" | awk '{print $2}' | stats)" "$(grep "^$mode " "$results" | awk '{print $3}' | stats)"
done
off=$(grep '^Off ' "$results" | awk '{print $2}' | stats | awk '{print $1}')
on=$(grep '^On ' "$results" | awk '{print $2}' | stats | awk '{print $1}')
offcpu=$(grep '^Off ' "$results" | awk '{print $3}' | stats | awk '{print $1}')
# Paired per repetition too (only repetitions where both runs finished): On/Off of each.
awk '{ rate[$4 "," $1] = $2; reps[$4] = 1 } END { for (r in reps) if ((r ",On") in rate && (r ",Off") in rate) print rate[r ",On"] / rate[r ",Off"] }' "$results" |
  sort -n | awk -v off="$off" -v on="$on" '{ v[NR] = $1 } END {
    med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "On/Off: ratio of medians %.3f (%+.1f%%); per-repetition ratios (%d pairs) median %.3f, min %.3f, max %.3f\n", on / off, (on / off - 1) * 100, NR, med, v[1], v[NR] }'

# The parts, in-process: what each message pays and what each scrape costs.
"$bin/metrics.test" -test.run '^$' -test.bench '^Benchmark(ObservePerMessage|Scrape)$' -test.benchtime 2s -test.count 3 |
  awk -v off="$off" -v offcpu="$offcpu" '/^Benchmark/ { sub(/-[0-9]+$/, "", $1); ns[$1] = ns[$1] ? (ns[$1] < $3 ? ns[$1] : $3) : $3 }
    END {
      printf "in-process, best of 3: observations %.0f ns per message; one scrape %.2f ms\n", ns["BenchmarkObservePerMessage"], ns["BenchmarkScrape"] / 1e6
      for (i = 1; i <= 2; i++) { every = (i == 1) ? 1 : 15
        us = ns["BenchmarkObservePerMessage"] / 1000 + ns["BenchmarkScrape"] / 1000 / (off * every)
        printf "  at %.0f msgs/s and a scrape every %ds: %.2f µs per message, %.2f%% of the %.0f cpu-µs/msg relayd spends\n", off, every, us, 100 * us / offcpu, offcpu }
    }'
