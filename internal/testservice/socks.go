package testservice

import (
	"strings"
	"testing"
)

// SOCKS5 is a running microsocks SOCKS5 server.
type SOCKS5 struct {
	*Process
	Addr string // "127.0.0.1:PORT"
}

// StartSOCKS5 starts microsocks as user nobody on loopback, with
// username/password authentication when user is not empty, and waits until
// it accepts connections. microsocks resolves target names with the system
// resolver.
func StartSOCKS5(t testing.TB, user, password string) *SOCKS5 {
	t.Helper()
	bin := Bin(t, "microsocks")
	s := &SOCKS5{Addr: FreeAddr(t)}
	_, port, _ := strings.Cut(s.Addr, ":")
	args := []string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", bin, "-i", "127.0.0.1", "-p", port}
	if user != "" {
		args = append(args, "-u", user, "-P", password)
	}
	s.Process = Start(t, "setpriv", args, nil, s.Addr)
	return s
}
