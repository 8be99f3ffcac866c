#!/usr/bin/env bash
# SSH through the proxy and a reverse tunnel against OpenSSH's sshd, with
# the real OpenSSH client in the same run (BenchmarkOpenSSH in ./proxy):
#   scp      throughput of a 32 MiB file: client -> proxy (ProxyJump) ->
#            tunnel -> agent, vs client -> sshd on loopback
#   session  time to set up a session and run "true" (p50, p99)
# Prints the median of COUNT runs of each and the ratios.
#
#   bench/proxy.sh              COUNT=5 BENCHTIME=5x
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/env.sh ] && . scripts/env.sh
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-5x}
out=$(go test -run '^$' -bench 'BenchmarkOpenSSH' -benchtime "$BENCHTIME" -count "$COUNT" ./proxy/)
echo "$out" | grep -E '^Benchmark' || { echo "$out"; exit 1; }
echo
echo "$out" | awk '
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
	sp = median(mb["scp/proxy"]); sd = median(mb["scp/sshd"])
	printf "scp 32 MiB       proxy+tunnel %7.1f MB/s | sshd %7.1f MB/s | proxy/sshd %.2fx\n", sp, sd, sp / sd
	a = median(p50["session/proxy"]); b = median(p50["session/sshd"])
	c = median(p99["session/proxy"]); d = median(p99["session/sshd"])
	printf "session setup    proxy+tunnel p50 %6.1f ms p99 %6.1f ms | sshd p50 %6.1f ms p99 %6.1f ms | proxy/sshd p50 %.2fx p99 %.2fx\n", a, c, b, d, a / b, c / d
}'
