#!/usr/bin/env bash
# Bulk throughput through a real squid (Basic auth, one tunnel per round):
# proxyconnect.Dialer against a CONNECT written by hand on a raw net.Dial
# connection, in one run, against the same squid and the same streaming
# target. Rounds alternate which contender goes first. Prints per-round
# figures, the medians and the ratio ours/hand (target: >= 0.95, i.e.
# proxyconnect adds at most 5%), then tunnel setup times.
#
# Usage: bench/proxyconnect.sh [ROUNDS] [DIAL_RUNS]   (defaults: 15 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-15}
dialcount=${2:-3}

metric() { # metric NAME: the number before NAME on the benchmark line
	awk -v u="$1" '/^BenchmarkSquidThroughputPaired/ {for (i = 2; i <= NF; i++) if ($i == u) print $(i-1)}' <<<"$tp"
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# -benchtime Nx: N rounds (go test also runs one warm-up round first).
tp=$(go test -run '^$' -bench '^BenchmarkSquidThroughputPaired$' -benchtime "${rounds}x" -v ./proxyconnect |
	grep -E 'round [0-9]+:|^BenchmarkSquidThroughputPaired' || true)
if ! grep -q '^BenchmarkSquidThroughputPaired' <<<"$tp"; then
	echo "proxyconnect.sh: the throughput benchmark did not run (see go test output above)" >&2
	exit 1
fi
# Keep the last run (the first is go test's warm-up with one round).
grep 'round' <<<"$tp" | awk 'NR > 1'
echo
printf 'throughput through squid, medians of %s rounds: proxyconnect %.0f MB/s, hand-written CONNECT %.0f MB/s\n' \
	"$rounds" "$(metric ours-MB/s)" "$(metric hand-MB/s)"
printf 'ratio proxyconnect/hand: %.3f of the medians, %.3f median of per-round ratios, %.3f of the best rounds\n' \
	"$(metric ratio)" "$(metric paired-ratio)" "$(metric best-ratio)"
printf 'client CPU per GB, medians: proxyconnect %.3f s, hand %.3f s (ratio %.3f)\n' \
	"$(metric ours-CPU-s/GB)" "$(metric hand-CPU-s/GB)" "$(metric cpu-ratio)"
awk -v r="$(metric paired-ratio)" 'BEGIN {printf "target ours/hand >= 0.95 (median of per-round ratios): %s\n", (r >= 0.95 ? "met" : "NOT met")}'
echo

dial=$(go test -run '^$' -bench '^BenchmarkSquidDialPaired$' -count "$dialcount" -benchtime 300x ./proxyconnect | grep '^BenchmarkSquidDialPaired' || true)
dmetric() { awk -v u="$1" '{for (i = 2; i <= NF; i++) if ($i == u) print $(i-1)}' <<<"$dial" | median; }
awk -v o="$(dmetric ours-ms)" -v h="$(dmetric hand-ms)" -v n="$dialcount" 'BEGIN {
	printf "tunnel setup through squid (median per dial, median of %d runs of 300 alternating dials): proxyconnect %.2f ms, hand %.2f ms (ratio %.3f, lower is better)\n", n, o, h, o/h }'
