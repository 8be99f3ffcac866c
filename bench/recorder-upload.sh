#!/usr/bin/env bash
# Upload throughput of session recordings to MinIO through the recorder/s3
# driver (create-only Put: conditional PutObject, multipart with
# conditional completion from 16 MiB) vs the raw AWS SDK (one PutObject of
# the same bytes with the same client), side by side in one run. Each run
# starts its own MinIO; every iteration uploads once each way in
# alternating order, so that load on the machine changes all sides alike.
# A third way, raw PutObject with If-None-Match: *, shows what create-only
# costs on the server. Prints medians and the ratio driver / raw
# (target >= 0.9).
#
# Usage: bench/recorder-upload.sh [count] [iterations]   (default 5 runs of 6 uploads each way)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
count="${1:-5}"
iters="${2:-6}"
out="$(mktemp)"
bin="$(mktemp)"
trap 'rm -f "$out" "$bin"' EXIT

(cd recorder/s3 && go test -c -o "$bin" .)
for i in $(seq "$count"); do
	(cd recorder/s3 && "$bin" -test.run '^$' -test.bench '^BenchmarkUpload$' -test.benchtime "${iters}x" -test.count 1)
done | tee "$out" | grep -E '^(Benchmark|FAIL)' >&2

awk '
function median(name,    n, i, j, t, a) {
	n = cnt[name]
	for (i = 1; i <= n; i++) a[i] = vals[name, i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
/^BenchmarkUpload\// {
	size = $1; sub(/-[0-9]+$/, "", size); sub(/^BenchmarkUpload\//, "", size)
	sizes[size] = 1
	for (i = 3; i <= NF; i++) {
		m = $i
		if (m == "driver-MB/s" || m == "raw-MB/s" || m == "rawcond-MB/s" || m == "ratio") vals[size "/" m, ++cnt[size "/" m]] = $(i - 1)
	}
}
END {
	printf "\n%-8s %12s %12s %22s %16s\n", "object", "driver MB/s", "raw MB/s", "raw If-None-Match MB/s", "ratio driver/raw"
	for (s in sizes) {
		r = median(s "/ratio")
		printf "%-8s %12.1f %12.1f %22.1f %16.2f\n", s, median(s "/driver-MB/s"), median(s "/raw-MB/s"), median(s "/rawcond-MB/s"), r
		if (!worst || r < worst) worst = r
		runs = cnt[s "/ratio"]
	}
	printf "\nupload ratio (s3 driver / raw SDK PutObject; median of %d runs, worst size): %.2f  (target >= 0.90)\n", runs, worst
}' "$out"
