#!/usr/bin/env bash
# Benchmarks the cluster-state backend drivers and compares each with a
# raw client of the same store doing the same statements, in one run.
#
# Every driver package under backend/ that exists runs:
#   BenchmarkDriver  backendtest.Bench through the driver:
#                    Put, Get, CompareAndSwap with 1 and 16 callers,
#                    AtomicWrite, WatchLatency (p50-ms, p99-ms)
#   BenchmarkRaw     the same operations on the store's own client
#                    (database/sql + modernc.org/sqlite for sqlite,
#                    pgx for postgres, clientv3 for etcd), when the
#                    driver has a raw peer (memory has none)
#
# It prints the median of the runs for each benchmark and the ratio
# driver throughput / raw throughput (= raw ns/op / driver ns/op;
# 1.00 is as fast as the raw client, targets below).
#
# Targets:
#   sqlite    driver >= 0.8x raw; watch latency p50/p99 < 100 ms
#   memory    watch latency p50/p99 < 10 ms
#   postgres  driver >= 0.8x raw (pgx); watch latency: see backend/postgres
#   etcd      driver >= 0.8x raw (clientv3); watch latency: see backend/etcd
#
# bench/backend-postgres-etcd.sh adds, for postgres and etcd, the watch
# latency from a write on one instance to the event on another.
#
# Usage: bench/backend.sh [count] [driver...]
#   count    runs of each benchmark (default 5; the median is printed)
#   driver   memory sqlite postgres etcd (default: every one present)
# postgres uses the server of its tests (127.0.0.1:5432) and etcd starts
# its own (see those packages).
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-5}"
shift || true
drivers=("$@")
if [ ${#drivers[@]} -eq 0 ]; then
	for d in memory sqlite postgres etcd; do
		[ -d "backend/$d" ] && drivers+=("$d")
	done
fi
benchtime="${BENCHTIME:-1s}"
out="$(mktemp)"
tmpd="$(mktemp -d)"
trap 'rm -rf "$out" "$tmpd"' EXIT

for d in "${drivers[@]}"; do
	go test -c -o "$tmpd/$d.test" "./backend/$d"
done
# Interleave the runs so that load on the machine changes every side alike.
for i in $(seq "$count"); do
	for d in "${drivers[@]}"; do
		(cd "backend/$d" && "$tmpd/$d.test" -test.run '^$' -test.bench '^(BenchmarkDriver|BenchmarkRaw)$' \
			-test.benchtime "$benchtime" -test.count 1) | sed "s|^Benchmark|$d/Benchmark|"
	done
done | tee "$out" | grep -E '/Benchmark|FAIL' >&2

awk '
function median(key,    n, i, j, t, a) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = vals[key, i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
/\/Benchmark(Driver|Raw)/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i += 2) {
		u = $(i + 1)
		if (u == "ns/op" || u == "p50-ms" || u == "p99-ms") {
			key = name " " u
			if (!(key in cnt)) keys[++nkeys] = key
			vals[key, ++cnt[key]] = $i
		}
	}
}
END {
	printf "\n%-62s %14s\n", "benchmark and unit (median of runs)", "value"
	for (k = 1; k <= nkeys; k++) printf "%-62s %14.3f\n", keys[k], median(keys[k])
	printf "\nratios driver / raw throughput (raw ns/op / driver ns/op; target >= 0.80)\n"
	for (k = 1; k <= nkeys; k++) {
		split(keys[k], f, " ")
		if (f[1] !~ /\/BenchmarkDriver\// || f[2] != "ns/op") continue
		r = f[1]; sub(/\/BenchmarkDriver\//, "/BenchmarkRaw/", r)
		rk = r " ns/op"
		if (rk in cnt) printf "%-62s %6.2f\n", f[1], median(rk) / median(keys[k])
	}
	printf "\nwatch latency, write to event (targets: memory < 10 ms, sqlite < 100 ms)\n"
	for (k = 1; k <= nkeys; k++) {
		split(keys[k], f, " ")
		if (f[2] == "p50-ms" || f[2] == "p99-ms") printf "%-62s %10.3f ms\n", keys[k], median(keys[k])
	}
}' "$out"
