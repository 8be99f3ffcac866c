#!/usr/bin/env bash
# SSH through the proxy and a reverse tunnel against OpenSSH's sshd, with
# the real OpenSSH client in the same run (BenchmarkOpenSSH in ./proxy):
#   scp      throughput of a SIZE_MIB file: client -> proxy (ProxyJump) ->
#            tunnel -> agent, vs client -> sshd on loopback
#   session  time to set up a session and run "true" (p50, p99 of
#            SESSIONS sessions per run)
# Prints the median over COUNT runs of each figure and the ratios. The
# runs alternate (each starts its own cluster, agent and sshd), so load
# from elsewhere on the machine falls on both sides alike. SSH_OPTS, when
# set, are OpenSSH client options for every hop, separated by ";" (for
# the same key exchange and cipher everywhere: OpenSSH's defaults,
# sntrup761x25519 and chacha20-poly1305, are taken by sshd but not offered
# by the proxy).
#
#   bench/proxy.sh            defaults: SIZE_MIB=32 COUNT=5 BENCHTIME=5x SESSIONS=100 SSH_OPTS=
#   SIZE_MIB=1024 COUNT=3 BENCHTIME=1x bench/proxy.sh
#   SSH_OPTS="KexAlgorithms curve25519-sha256; Ciphers aes128-gcm@openssh.com" bench/proxy.sh
#
# The payload lives in a temporary directory and the copies in $TMPDIR
# (default /tmp); all are deleted at the end of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/env.sh ] && . scripts/env.sh
SIZE_MIB=${SIZE_MIB:-32}
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-5x}
SESSIONS=${SESSIONS:-100}
SSH_OPTS=${SSH_OPTS:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/proxy.test" ./proxy/
run() {
	(cd proxy && SALLYPORT_BENCH_SCP_MIB=$SIZE_MIB SALLYPORT_BENCH_SSH_OPTS=$SSH_OPTS "$tmp/proxy.test" -test.run '^$' -test.bench "$1" -test.benchtime "$2")
}
out=$(for i in $(seq "$COUNT"); do
	run 'BenchmarkOpenSSH/scp/' "$BENCHTIME"
	run 'BenchmarkOpenSSH/session/' "${SESSIONS}x"
done 2>&1) || { echo "$out"; echo "bench/proxy.sh: a benchmark run failed" >&2; exit 1; }
echo "$out" | grep -E '^Benchmark' || { echo "$out"; exit 1; }
echo
echo "$out" | awk -v size="$SIZE_MIB" -v count="$COUNT" -v sessions="$SESSIONS" -v opts="$SSH_OPTS" '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkOpenSSH\//, "", name)
	for (i = 2; i <= NF; i++) {
		if ($(i+1) == "MB/s") mb[name] = mb[name] " " $i
		if ($(i+1) == "p50-ms") p50[name] = p50[name] " " $i
		if ($(i+1) == "p99-ms") p99[name] = p99[name] " " $i
	}
}
function median(s,   a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	printf "medians of %d runs%s\n", count, (opts != "" ? ", client options: " opts : "")
	sp = median(mb["scp/proxy"]); sd = median(mb["scp/sshd"])
	printf "scp %d MiB        proxy+tunnel %7.1f MB/s | sshd %7.1f MB/s | proxy/sshd %.2fx\n", size, sp, sd, sp / sd
	a = median(p50["session/proxy"]); b = median(p50["session/sshd"])
	c = median(p99["session/proxy"]); d = median(p99["session/sshd"])
	printf "session setup (%d per run) proxy+tunnel p50 %6.1f ms p99 %6.1f ms | sshd p50 %6.1f ms p99 %6.1f ms | proxy/sshd p50 %.2fx p99 %.2fx\n", sessions, a, c, b, d, a / b, c / d
}'
