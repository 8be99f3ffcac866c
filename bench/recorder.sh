#!/usr/bin/env bash
# Session recording overhead, measured side by side in one run:
#
#  1. capture: terminal output throughput of a session recorded into a
#     recorder.Recording vs the same session unrecorded, two ways. Target:
#     ratio of medians >= 0.9.
#     - ssh session: the OpenSSH client runs "cat" of busy-shell output on
#       a PTY of the agent's SSH server (sshserver), recorded by a
#       recorder.Spool as the agent does (SESSION_MIB per session,
#       default 64); the figure a user sees.
#     - bare loop: a program writing to a PTY, copied to a client over
#       loopback TCP by a plain read/write loop; nothing else costs CPU
#       per byte, so it is the worst case for the recorder's share.
#  2. upload: see the UPLOAD section below.
#
# Usage: bench/recorder.sh [count] [capture|upload|all]
#        (default 7 runs of each benchmark, all parts)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-7}"
part="${2:-all}"
out="$(mktemp)"
bin="$(mktemp)"
trap 'rm -f "$out" "$bin"' EXIT

median_awk='
function median(name,    n, i, j, t, a) {
	n = cnt[name]
	for (i = 1; i <= n; i++) a[i] = vals[name, i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}'

# ---- CAPTURE ---------------------------------------------------------------
if [ "$part" != upload ]; then
# Build once, then interleave the runs (recorded and unrecorded alternate
# in every run) so that load on the machine changes both sides alike.
[ -f scripts/env.sh ] && . scripts/env.sh
go test -c -o "$bin" ./recorder
go test -c -o "$bin.ssh" ./sshserver
trap 'rm -f "$out" "$bin" "$bin.ssh"' EXIT
for i in $(seq "$count"); do
	(cd sshserver && SALLYPORT_BENCH_SESSION_MIB="${SESSION_MIB:-64}" "$bin.ssh" -test.run '^$' \
		-test.bench '^BenchmarkRecordedSession$' -test.benchtime 3x -test.count 1)
	(cd recorder && "$bin" -test.run '^$' -test.bench '^(BenchmarkSession|BenchmarkRecordingWrite)$' \
		-test.benchtime 2s -test.count 1)
done | tee "$out" | grep -E '^(Benchmark|FAIL)' >&2

awk "$median_awk"'
/^Benchmark(Session|RecordingWrite|RecordedSession)/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 2; i < NF; i++) {
		if ($(i + 1) == "MB/s") { mb = $i; vals[name, ++cnt[name]] = mb }
		if ($(i + 1) == "cpu-ns/B") { cpu[name] = cpu[name] " " $i; vals[name "(cpu)", ++cnt[name "(cpu)"]] = $i }
	}
	# Each run prints the unrecorded session, then the recorded one.
	if (name == "BenchmarkSession/unrecorded") last = mb
	if (name == "BenchmarkSession/recorded" && last > 0) { vals["pair", ++cnt["pair"]] = mb / last; last = 0 }
	if (name == "BenchmarkRecordedSession/unrecorded") slast = mb
	if (name == "BenchmarkRecordedSession/recorded" && slast > 0) { vals["spair", ++cnt["spair"]] = mb / slast; slast = 0 }
}
END {
	printf "\n%-40s %10s %12s\n", "capture benchmark (median of runs)", "MB/s", "CPU ns/byte"
	split("BenchmarkRecordedSession/unrecorded BenchmarkRecordedSession/recorded BenchmarkSession/unrecorded BenchmarkSession/recorded BenchmarkRecordingWrite", names, " ")
	for (k = 1; k <= 5; k++) {
		n = names[k]
		if (cnt[n]) printf "%-40s %10.1f %12s\n", n, median(n), cnt[n "(cpu)"] ? sprintf("%.2f", median(n "(cpu)")) : "-"
	}
	r = "BenchmarkRecordedSession/recorded"; u = "BenchmarkRecordedSession/unrecorded"
	if (cnt[r] && cnt[u]) {
		printf "\nssh session capture ratio (recorded / unrecorded, medians):      %.2f  (target >= 0.90)\n", median(r) / median(u)
		printf "ssh session capture ratio (median of the per-run ratios):         %.2f\n", median("spair")
	}
	r = "BenchmarkSession/recorded"; u = "BenchmarkSession/unrecorded"
	if (cnt[r] && cnt[u]) {
		printf "\nbare-loop capture ratio (recorded / unrecorded, medians):        %.2f\n", median(r) / median(u)
		printf "bare-loop capture ratio (median of the per-run ratios):           %.2f\n", median("pair")
		printf "CPU per byte, recorded / unrecorded (medians):                    %.2f\n", median(r "(cpu)") / median(u "(cpu)")
	}
}' "$out"
fi

# ---- UPLOAD ----------------------------------------------------------------
# Upload ratio: recordings uploaded to MinIO through recorder/s3 vs the raw
# AWS SDK, medians of the same run (bench/recorder-upload.sh, which also
# runs on its own).
if [ "$part" != capture ]; then
	echo
	bench/recorder-upload.sh "$count"
fi
# ---- END UPLOAD ------------------------------------------------------------
