#!/usr/bin/env bash
# Whole-process time of a dry-run of the injected sidecar's flags (with DNS capture), as the init
# container would start it, interleaved with /bin/true (the cost of starting any process here).
# Prints a markdown table: median and 10th/90th percentiles of N runs of each.
# usage: bench/dry_run.sh [BINARY] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/release/cli/istio-iptables}
n=${2:-301}
args=(-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020
      --log_output_level=default:info --redirect-dns --dns-servers 10.96.0.10 --ipv6 off -n)
ours=() floor=()
for ((i = 0; i < n; i++)); do
  t0=$EPOCHREALTIME; "$bin" "${args[@]}" >/dev/null; t1=$EPOCHREALTIME
  /bin/true; t2=$EPOCHREALTIME
  ours+=("$(bc -l <<<"($t1 - $t0) * 1000")")
  floor+=("$(bc -l <<<"($t2 - $t1) * 1000")")
done
stats() { sort -g | awk -v n="$n" -v what="$1" '{ v[NR] = $1 } END {
  printf "| %s | %d | %.2f | %.2f | %.2f |\n", what, n, v[int((n + 1) / 2)], v[int(n * 0.1) + 1], v[int(n * 0.9)] }'; }
echo "| what | runs | median ms | p10 ms | p90 ms |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ours[@]}" | stats "istio-iptables dry-run, injected sidecar + DNS"
printf '%s\n' "${floor[@]}" | stats "/bin/true (process start-up floor)"
