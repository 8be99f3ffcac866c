#!/usr/bin/env bash
# Compares connections accepted per second and relay throughput through a
# mux.Mux with a plain net.Listener, in one run, and prints medians and
# the mux/direct ratios.
#
# Usage: bench/mux.sh [count]   (default 5 runs of each benchmark)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-5}"
out="$(mktemp)"
bin="$(mktemp)"
trap 'rm -f "$out" "$bin"' EXIT

# Build once, then interleave the runs so that load on the machine
# changes both sides alike.
go test -c -o "$bin" ./mux
for i in $(seq "$count"); do
	(cd mux && "$bin" -test.run '^$' -test.bench '^(BenchmarkAccept|BenchmarkThroughput)$' \
		-test.benchtime 1s -test.count 1)
done | tee "$out" | grep -E '^(Benchmark|FAIL)' >&2

awk '
function median(key,    n, i, j, t, a) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = vals[key, i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
/^Benchmark(Accept|Throughput)\// {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 2; i < NF; i++) {
		u = $(i + 1)
		if (u == "conns/s" || u == "MB/s" || u == "cpu-µs/conn" || u == "cpu-s/GB") {
			key = name " " u
			if (!(key in cnt)) keys[++nkeys] = key
			vals[key, ++cnt[key]] = $i
		}
	}
}
END {
	printf "\n%-50s %12s\n", "benchmark and unit (median of runs)", "value"
	for (k = 1; k <= nkeys; k++) printf "%-50s %12.3f\n", keys[k], median(keys[k])
	printf "\nratios mux / direct (rates: below 1 is slower; CPU: above 1 costs more)\n"
	for (k = 1; k <= nkeys; k++) {
		split(keys[k], f, " ")
		if (f[1] !~ /\/mux/) continue
		d = f[1]; sub(/\/mux.*/, "/direct", d)
		dk = d " " f[2]
		if (dk in cnt) printf "%-50s %6.2f\n", keys[k], median(keys[k]) / median(dk)
	}
}' "$out"
