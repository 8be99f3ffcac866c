#!/usr/bin/env bash
# Compares the sshserver package with OpenSSH's sshd in one run: both
# serve on loopback with the same host certificate and user CA; the
# OpenSSH client measures scp of a large file both ways (checksums
# verified) and session setup time ("ssh host true", p50/p99), and the
# ratios ours/sshd are printed (throughput: below 1 is slower; setup
# time: above 1 is slower). Also runs the package's Go benchmarks.
#
# Usage: bench/sshserver.sh [size-MiB] [scp-runs] [setups]
#        (defaults 256, 3, 40; CIPHER=aes128-gcm@openssh.com to pin a cipher)
# Needs root (sshd privilege separation), /usr/sbin/sshd, ssh and scp.
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-256}"
runs="${2:-3}"
setups="${3:-40}"
bin="$(mktemp)"
trap 'rm -f "$bin"' EXIT

go build -o "$bin" ./bench/sshserverbench
"$bin" -size "$size" -runs "$runs" -setups "$setups" -cipher "${CIPHER:-}"

echo
echo "Go benchmarks (in-process x/crypto/ssh client):"
go test ./sshserver -run '^$' -bench '^(BenchmarkSessionSetup|BenchmarkExec|BenchmarkExecThroughput)$' \
	-benchtime 2s -count 1 | grep -E '^(Benchmark|ok|FAIL)'
