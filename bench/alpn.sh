#!/usr/bin/env bash
# Side-by-side benchmark of the alpn router against HAProxy (req.ssl_sni)
# and nginx (stream, ssl_preread) for TLS passthrough routing, and of full
# TLS handshakes through passthrough and terminating routes. Everything
# runs on loopback in one run; the script prints the median of RUNS runs
# of each path and the ratios.
#
#   bench/alpn.sh                 RUNS=5 MIB=1024 HS_SECONDS=2 HS_CONNS=8 HAPROXY_SPLICE=1
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/env.sh ] && . scripts/env.sh
RUNS=${RUNS:-5}
MIB=${MIB:-1024}
HS_SECONDS=${HS_SECONDS:-2}
HS_CONNS=${HS_CONNS:-8}

for bin in haproxy nginx; do
	command -v $bin >/dev/null || { echo "alpn.sh: $bin is not installed: run scripts/install-deps" >&2; exit 1; }
done
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || { echo "alpn.sh: nginx stream module missing (libnginx-mod-stream): run scripts/install-deps" >&2; exit 1; }

dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

waitport() {
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
		sleep 0.1
	done
	echo "alpn.sh: port $1 did not open" >&2; return 1
}

go build -o "$dir/alpnbench" ./bench/alpnbench
read -r BACKEND ROUTER HAPROXY NGINX <<<"$("$dir/alpnbench" freeports 4 | tr '\n' ' ')"

"$dir/alpnbench" backend -listen 127.0.0.1:$BACKEND >/dev/null & pids+=($!)
"$dir/alpnbench" router -listen 127.0.0.1:$ROUTER -backend 127.0.0.1:$BACKEND >/dev/null & pids+=($!)

# HAPROXY_SPLICE=1 (the default) gives HAProxy its fastest relay (kernel
# splice); HAPROXY_SPLICE=0 runs its default configuration.
splice_opts=""
if [ "${HAPROXY_SPLICE:-1}" = 1 ]; then
	splice_opts=$'    option splice-request\n    option splice-response'
fi
echo "haproxy splice options: ${HAPROXY_SPLICE:-1}"
cat >"$dir/haproxy.cfg" <<CFG
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
$splice_opts
frontend fe
    bind 127.0.0.1:$HAPROXY
    tcp-request inspect-delay 5s
    tcp-request content accept if { req_ssl_hello_type 1 }
    use_backend be if { req.ssl_sni -i backend.bench }
backend be
    server s1 127.0.0.1:$BACKEND
CFG
haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 & pids+=($!)

cat >"$dir/nginx.conf" <<CFG
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
worker_processes auto;
events { worker_connections 4096; }
stream {
    map \$ssl_preread_server_name \$be {
        backend.bench 127.0.0.1:$BACKEND;
        default 127.0.0.1:9;
    }
    server {
        listen 127.0.0.1:$NGINX;
        ssl_preread on;
        proxy_pass \$be;
        proxy_half_close on;
    }
}
CFG
nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" -g 'daemon off;' & pids+=($!)

for p in $BACKEND $ROUTER $HAPROXY $NGINX; do waitport $p; done

# ticks PID: CPU clock ticks (user+system) of PID and its children.
ticks() {
	local t=0 p
	for p in $1 $(pgrep -P "$1" || true); do
		t=$((t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0)))
	done
	echo $t
}
HZ=$(getconf CLK_TCK)

median() { # [printf format]
	sort -g | awk -v f="${1:-%.3f}" '{a[NR]=$1} END {if (NR%2) v=a[(NR+1)/2]; else v=(a[NR/2]+a[NR/2+1])/2; printf f "\n", v}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
check() { # name value min
	if awk -v v="$2" -v m="$3" 'BEGIN {exit !(v >= m)}'; then echo "  $1: $2 (>= $3) ok"; else echo "  $1: $2 (< $3) BELOW TARGET"; fi
}

echo "alpn.sh: $RUNS runs, $MIB MiB per throughput run, ${HS_SECONDS}s x $HS_CONNS clients per handshake run ($(nproc) cores, $(date -u +%FT%TZ))"
declare -A tp hs
declare -A cpu hscpu
# hsrun NAME PID ARGS...: one handshake run; records the rate and the CPU
# microseconds PID (the server, or the relay) spent per handshake.
hsrun() {
	local name=$1 pid=$2 t0 rate
	shift 2
	t0=$(ticks "$pid")
	rate=$("$dir/alpnbench" handshakes -conns "$HS_CONNS" -duration "${HS_SECONDS}s" "$@")
	hs[$name]+="$rate "
	hscpu[$name]+="$(awk -v t=$(( $(ticks "$pid") - t0 )) -v hz=$HZ -v n="$rate" -v s="$HS_SECONDS" 'BEGIN {printf "%.0f", t/hz*1e6/(n*s)}') "
}
targets=(direct:$BACKEND: router:$ROUTER:${pids[1]} haproxy:$HAPROXY:${pids[2]} nginx:$NGINX:${pids[3]})
for run in $(seq "$RUNS"); do
	for t in "${targets[@]}"; do
		IFS=: read -r name port pid <<<"$t"
		[ -n "$pid" ] && t0=$(ticks "$pid")
		tp[$name]+="$("$dir/alpnbench" throughput -addr 127.0.0.1:$port -mib "$MIB") "
		# CPU seconds the relay spent per GB moved.
		[ -n "$pid" ] && cpu[$name]+="$(awk -v t=$(( $(ticks "$pid") - t0 )) -v hz=$HZ -v mib=$MIB 'BEGIN {printf "%.3f", t/hz/(mib*1048576/1e9)}') "
	done
	hsrun direct "${pids[0]}" -addr 127.0.0.1:$BACKEND
	hsrun passthrough "${pids[1]}" -addr 127.0.0.1:$ROUTER
	hsrun terminating "${pids[1]}" -addr 127.0.0.1:$ROUTER -sni term.bench -alpn bench-term
	hsrun haproxy "${pids[2]}" -addr 127.0.0.1:$HAPROXY
	hsrun nginx "${pids[3]}" -addr 127.0.0.1:$NGINX
	echo "  run $run done"
done

declare -A m
echo
echo "TLS bulk throughput, one stream, GB/s (median of $RUNS; all runs)"
for name in direct router haproxy nginx; do
	m[tp_$name]=$(echo ${tp[$name]} | tr ' ' '\n' | median)
	printf "  %-28s %8s   (%s)\n" "$name" "${m[tp_$name]}" "${tp[$name]% }"
done
echo
echo "Relay CPU seconds per GB moved (lower is better; less sensitive to other load)"
for name in router haproxy nginx; do
	m[cpu_$name]=$(echo ${cpu[$name]} | tr ' ' '\n' | median)
	printf "  %-28s %8s   (%s)\n" "$name" "${m[cpu_$name]}" "${cpu[$name]% }"
done
echo
echo "Full TLS handshakes per second, $HS_CONNS concurrent clients (median of $RUNS; all runs)"
for name in direct passthrough terminating haproxy nginx; do
	m[hs_$name]=$(echo ${hs[$name]} | tr ' ' '\n' | median %.0f)
	printf "  %-28s %8s   (%s)\n" "$name" "${m[hs_$name]}" "${hs[$name]% }"
done
echo
echo "CPU microseconds per handshake (median of $RUNS): of the TLS server (direct: the backend; terminating: the router),"
echo "or of the relay (passthrough: the router; haproxy; nginx)"
for name in direct terminating passthrough haproxy nginx; do
	m[hscpu_$name]=$(echo ${hscpu[$name]} | tr ' ' '\n' | median %.0f)
	printf "  %-28s %8s   (%s)\n" "$name" "${m[hscpu_$name]}" "${hscpu[$name]% }"
done
echo
echo "Ratios (targets)"
check "passthrough / direct TLS            " "$(ratio ${m[tp_router]} ${m[tp_direct]})" 0.85
check "passthrough / HAProxy req.ssl_sni   " "$(ratio ${m[tp_router]} ${m[tp_haproxy]})" 1.15
check "passthrough / nginx ssl_preread     " "$(ratio ${m[tp_router]} ${m[tp_nginx]})" 1.15
check "handshakes passthrough / direct     " "$(ratio ${m[hs_passthrough]} ${m[hs_direct]})" 0.9
check "handshakes terminating / bare Go TLS" "$(ratio ${m[hs_terminating]} ${m[hs_direct]})" 0.9
echo "  (for reference) handshakes HAProxy / direct: $(ratio ${m[hs_haproxy]} ${m[hs_direct]}), nginx / direct: $(ratio ${m[hs_nginx]} ${m[hs_direct]})"
echo "  (load-insensitive) server CPU per handshake, bare Go TLS / terminating route: $(ratio ${m[hscpu_direct]} ${m[hscpu_terminating]})"
echo "  (load-insensitive) relay CPU per GB, HAProxy / router: $(ratio ${m[cpu_haproxy]} ${m[cpu_router]}), nginx / router: $(ratio ${m[cpu_nginx]} ${m[cpu_router]})"
echo "  (load-insensitive) relay CPU per connection, HAProxy / router: $(ratio ${m[hscpu_haproxy]} ${m[hscpu_passthrough]}), nginx / router: $(ratio ${m[hscpu_nginx]} ${m[hscpu_passthrough]})"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; on a loaded machine the rates swing more than the targets' margins: compare the CPU figures"
