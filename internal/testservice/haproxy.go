package testservice

import (
	"fmt"
	"strings"
	"testing"
)

// HAProxy is a running HAProxy in `mode tcp`.
type HAProxy struct {
	*Process
	Addr string // the frontend's listen address
}

// HAProxyTCP starts HAProxy as a Layer-4 load balancer on a free loopback
// port, balancing round-robin over backends. serverOpts is appended to every
// `server` line (for example "send-proxy-v2" or "check"). It returns once
// the frontend accepts connections.
func HAProxyTCP(t testing.TB, backends []string, serverOpts string) *HAProxy {
	t.Helper()
	addr := FreeAddr(t)
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend fe
    bind %s
    default_backend be
backend be
    balance roundrobin
`, addr)
	for i, be := range backends {
		fmt.Fprintf(&b, "    server s%d %s %s\n", i, be, serverOpts)
	}
	return HAProxyConfig(t, addr, b.String())
}

// HAProxyConfig starts HAProxy with a whole configuration file and waits for
// addr (the frontend the test will use).
func HAProxyConfig(t testing.TB, addr, config string) *HAProxy {
	t.Helper()
	dir := t.TempDir()
	cfg := WriteFile(t, dir, "haproxy.cfg", config)
	p := Start(t, "haproxy", []string{"-f", cfg, "-db"}, nil, addr)
	return &HAProxy{Process: p, Addr: addr}
}
