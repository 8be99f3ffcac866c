#!/usr/bin/env bash
# Compares one stream's throughput through a reverse tunnel with a direct
# TLS connection and an x/crypto/ssh channel, and the latency of opening a
# stream (with a 4-byte round trip) with opening an ssh channel, in one
# run; prints medians and ratios (and CPU time per GB, which the load of
# other processes disturbs less than wall-clock rates). Then runs
# bench/tunnelbench once: N idle tunnels into one proxy process (memory per
# tunnel) and a proxy restart.
#
# Usage: bench/tunnel.sh [count] [tunnels]   (default 5 runs, 10000 tunnels)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-5}"
tunnels="${2:-10000}"
out="$(mktemp)"
bin="$(mktemp)"
scale="$(mktemp)"
trap 'rm -f "$out" "$bin" "$scale"' EXIT

# Build once, then interleave the runs so that load on the machine
# changes every side alike.
go test -c -o "$bin" ./tunnel
for i in $(seq "$count"); do
	(cd tunnel && "$bin" -test.run '^$' -test.bench '^(BenchmarkThroughput|BenchmarkOpenStream)$' \
		-test.benchtime 10x -test.count 1)
	(cd tunnel && "$bin" -test.run '^$' -test.bench '^BenchmarkOpenStream$' \
		-test.benchtime 2000x -test.count 1)
done | tee "$out" | grep -E '^(Benchmark|FAIL)' >&2

awk '
function median(key,    n, i, j, t, a) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = vals[key, i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
/^Benchmark(Throughput|OpenStream)\// {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (name ~ /OpenStream/ && $2 < 1000) next   # latency from the long runs only
	for (i = 2; i < NF; i++) {
		u = $(i + 1)
		if (u == "MB/s" || u == "cpu-s/GB" || u ~ /^(dial-)?p(50|99)-µs$/) {
			key = name " " u
			if (!(key in cnt)) keys[++nkeys] = key
			vals[key, ++cnt[key]] = $i
		}
	}
}
END {
	printf "\n%-44s %12s\n", "benchmark and unit (median of runs)", "value"
	for (k = 1; k <= nkeys; k++) printf "%-44s %12.1f\n", keys[k], median(keys[k])
	t = "BenchmarkThroughput/tunnel MB/s"
	printf "\nratios (throughput, higher is better)\n"
	printf "%-44s %6.2f   (goal >= 0.75)\n", "tunnel / direct TLS", median(t) / median("BenchmarkThroughput/tls MB/s")
	printf "%-44s %6.2f   (goal >= 1.25)\n", "tunnel / x/crypto/ssh channel", median(t) / median("BenchmarkThroughput/ssh MB/s")
	c = "BenchmarkThroughput/tunnel cpu-s/GB"
	printf "\nCPU per GB, both ends in one process (lower is better)\n"
	printf "%-44s %6.2f\n", "tunnel / direct TLS", median(c) / median("BenchmarkThroughput/tls cpu-s/GB")
	printf "%-44s %6.2f\n", "tunnel / x/crypto/ssh channel", median(c) / median("BenchmarkThroughput/ssh cpu-s/GB")
	printf "\nopen stream + 4-byte round trip\n"
	printf "%-44s %6.1f   (goal < 250)\n", "tunnel p99 µs", median("BenchmarkOpenStream/tunnel p99-µs")
	printf "%-44s %6.2f\n", "tunnel p99 / ssh channel p99", median("BenchmarkOpenStream/tunnel p99-µs") / median("BenchmarkOpenStream/ssh p99-µs")
	printf "%-44s %6.1f / %.1f\n", "tunnel Dial alone p50 / p99 µs", median("BenchmarkOpenStream/tunnel dial-p50-µs"), median("BenchmarkOpenStream/tunnel dial-p99-µs")
}' "$out"

echo
echo "scale: $tunnels idle tunnels into one proxy process"
go build -o "$scale" ./bench/tunnelbench
"$scale" -n "$tunnels"
