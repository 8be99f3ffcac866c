#!/usr/bin/env bash
# Side-by-side benchmark of the postgres and etcd backend drivers against
# their raw clients (pgx on a plain key-value table, the etcd v3 client)
# in one run: put, get and compare-and-swap with 1 and 16 callers, and the
# watch latency from a write on one instance to the event on another.
# Prints the median of COUNT runs of each and the ratio driver/raw in
# operations per second (1.00 = as fast as the raw client).
#
#   bench/backend-postgres-etcd.sh   COUNT=5 BENCHTIME=2000x READ_BENCHTIME=20000x DRIVERS="pg etcd"
#
# PostgreSQL: the machine's server (127.0.0.1:5432, or
# SALLYPORT_TEST_PGADDR); etcd: a private server the benchmark starts.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/env.sh ] && . scripts/env.sh
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-2000x}
DRIVERS=${DRIVERS:-pg etcd}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Each benchmark runs in a process of its own, on a database or etcd of
# its own, driver and raw side by side, taking turns at going first: so
# neither side inherits the other's leftovers (a checkpoint, a table's
# autovacuum, a store already full of keys), and a change in the
# machine's load hits both alike.
go test -c -o "$out.pg" ./backend/postgres
go test -c -o "$out.etcd" ./backend/etcd
trap 'rm -f "$out" "$out.pg" "$out.etcd"' EXIT
pairs="Put/callers=1 Put/callers=16 Get/callers=1 Get/callers=16 CompareAndSwap/callers=1 CompareAndSwap/callers=16 WatchCrossInstance"
# Reads are ten times cheaper than writes: at BENCHTIME they would last
# tens of milliseconds, too short to rise above the machine's noise.
READ_BENCHTIME=${READ_BENCHTIME:-20000x}
run() { # pkg dir bench-pattern [benchtime]
	(cd "$2" && "$out.$1" -test.run '^$' -test.bench "$3" -test.benchtime "${4:-$BENCHTIME}")
}
for i in $(seq "$COUNT"); do
	for pkg in $DRIVERS; do
		dir=./backend/postgres
		[ $pkg = etcd ] && dir=./backend/etcd
		for p in $pairs; do
			if [ $p = WatchCrossInstance ]; then
				d='^BenchmarkDriverWatchCrossInstance$' r='^BenchmarkRawWatchCrossInstance$'
			else
				d="^BenchmarkDriver\$/^${p%%/*}\$/^${p#*/}\$" r="^BenchmarkRaw\$/^${p%%/*}\$/^${p#*/}\$"
			fi
			bt=$BENCHTIME
			case $p in Get/*) bt=$READ_BENCHTIME ;; esac
			if [ $((i % 2)) = 1 ]; then run $pkg $dir "$d" $bt; run $pkg $dir "$r" $bt
			else run $pkg $dir "$r" $bt; run $pkg $dir "$d" $bt; fi
		done
		run $pkg $dir '^BenchmarkDriver$/^(AtomicWrite|WatchLatency)'
	done
done | tee "$out" >&2

awk '
/^pkg:/ { pkg = $2; sub(/.*\//, "", pkg) }
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	kind = (name ~ /^BenchmarkRaw/) ? "raw" : "driver"
	sub(/^Benchmark(Driver|Raw)\/?/, "", name)
	for (i = 3; i < NF; i += 2) print pkg, name, kind, $(i+1), $i
}' "$out" | sort -k1,1 -k2,2 -k3,3 -k4,4 -k5,5g | awk '
function flush() {
	if (n == 0) return
	m = (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
	med[key] = m
	if (!(grp in seen)) { seen[grp] = 1; order[++ng] = grp }
	n = 0
}
{
	k = $1 " " $2 " " $3 " " $4
	if (k != key) { flush(); key = k; grp = $1 " " $2 }
	v[++n] = $5
}
END {
	flush()
	printf "\n%-9s %-30s %14s %14s %7s\n", "driver", "benchmark", "ours", "raw", "ratio"
	for (g = 1; g <= ng; g++) {
		split(order[g], p, " ")
		d = med[order[g] " driver ns/op"]; r = med[order[g] " raw ns/op"]
		if (d != "") {
			if (r != "") printf "%-9s %-30s %11.0f/s %11.0f/s %7.2f\n", p[1], p[2], 1e9/d, 1e9/r, r/d
			else printf "%-9s %-30s %11.0f/s %14s %7s\n", p[1], p[2], 1e9/d, "-", "-"
		}
		for (u = 1; u <= 2; u++) {
			unit = (u == 1) ? "p50-ms" : "p99-ms"
			d = med[order[g] " driver " unit]; r = med[order[g] " raw " unit]
			if (d == "") continue
			if (r != "") printf "%-9s %-30s %11.3fms %11.3fms %7s\n", p[1], p[2] " " unit, d, r, "-"
			else printf "%-9s %-30s %11.3fms %14s %7s\n", p[1], p[2] " " unit, d, "-", "-"
		}
	}
}'
