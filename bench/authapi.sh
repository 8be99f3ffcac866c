#!/usr/bin/env bash
# Auth Service issuance speed: user certificate pairs (X.509 + SSH) issued
# over gRPC with mutual TLS, and joins (new TLS connection, pin check, token
# use, host certificate pair), each against the bare signing cost of the
# same certificates with the same CA keys, measured in the same run. Prints
# the median of COUNT runs of each: throughput (wall clock, one caller) and
# CPU time per operation of the whole process (client and server both run
# in it; CPU time is less disturbed by other load on the machine), and the
# ratios.
#
#   bench/authapi.sh              COUNT=5 BENCHTIME=1s
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/env.sh ] && . scripts/env.sh
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-1s}
out=$(go test -run '^$' -bench 'BenchmarkIssueUser|BenchmarkJoin' -benchtime "$BENCHTIME" -count "$COUNT" ./authapi/)
echo "$out" | grep -E '^Benchmark' || { echo "$out"; exit 1; }
echo
echo "$out" | awk '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) {
		if ($(i+1) == "ops/s") v[name] = v[name] " " $i
		if ($(i+1) == "cpu-µs/op") c[name] = c[name] " " $i
	}
}
function median(s,   a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	split("BenchmarkIssueUser BenchmarkJoin", names, " ")
	for (k = 1; k <= 2; k++) {
		g = median(v[names[k] "/grpc"]); b = median(v[names[k] "/bare"])
		gc = median(c[names[k] "/grpc"]); bc = median(c[names[k] "/bare"])
		printf "%-19s grpc %8.1f ops/s %8.1f cpu-us/op | bare signing %8.1f ops/s %8.1f cpu-us/op | throughput bare/grpc %.2fx, cpu grpc/bare %.2fx\n", names[k], g, gc, b, bc, b / g, gc / bc
	}
}'
