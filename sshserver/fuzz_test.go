package sshserver

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func FuzzParsePTYRequest(f *testing.F) {
	f.Add(ssh.Marshal(ptyRequest{Term: "xterm-256color", Cols: 80, Rows: 24, Modes: "\x00"}))
	f.Add(ssh.Marshal(ptyRequest{Term: "vt100", Cols: 0, Rows: 1 << 31}))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := parsePTYRequest(p)
		if err != nil {
			return
		}
		if r.Cols == 0 || r.Rows == 0 || r.Cols > maxWinSize || r.Rows > maxWinSize || len(r.Term) > maxTermLength {
			t.Fatalf("accepted out-of-bounds request %+v", r)
		}
		again, err := parsePTYRequest(ssh.Marshal(r))
		if err != nil || again != r {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, r)
		}
	})
}

func FuzzParseWindowChange(f *testing.F) {
	f.Add(ssh.Marshal(windowChange{Cols: 120, Rows: 40}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := parseWindowChange(p)
		if err != nil {
			return
		}
		if r.Cols == 0 || r.Rows == 0 || r.Cols > maxWinSize || r.Rows > maxWinSize {
			t.Fatalf("accepted out-of-bounds size %+v", r)
		}
	})
}

func FuzzParseEnvRequest(f *testing.F) {
	f.Add(ssh.Marshal(envRequest{Name: "LANG", Value: "C.UTF-8"}), "")
	f.Add(ssh.Marshal(envRequest{Name: "LC_ALL", Value: "x"}), "FOO*")
	f.Add(ssh.Marshal(envRequest{Name: "LD_PRELOAD", Value: "/tmp/x.so"}), "")
	f.Add(ssh.Marshal(envRequest{Name: "A=B", Value: "x"}), "A*")
	f.Fuzz(func(t *testing.T, p []byte, extra string) {
		accept := strings.Split(extra, ",")
		r, err := parseEnvRequest(p, accept)
		if err != nil {
			return
		}
		if r.Name == "" || strings.ContainsAny(r.Name, "=\x00") || strings.ContainsRune(r.Value, 0) || len(r.Value) > maxEnvValue {
			t.Fatalf("accepted bad variable %q=%q", r.Name, r.Value)
		}
		if !envAllowed(r.Name, accept) {
			t.Fatalf("accepted %q outside the allow-list", r.Name)
		}
		if r.Name == "LD_PRELOAD" && !strings.Contains(extra, "LD_") && !strings.Contains(extra, "*") {
			t.Fatalf("LD_PRELOAD accepted with allow-list %q", extra)
		}
	})
}

func FuzzParseDirectTCPIP(f *testing.F) {
	f.Add(ssh.Marshal(directTCPIP{Host: "127.0.0.1", Port: 80, OrigHost: "10.0.0.1", OrigPort: 5000}))
	f.Add(ssh.Marshal(directTCPIP{Host: "::1", Port: 65536}))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, p []byte) {
		target, ok := parseDirectTCPIP(p)
		if !ok {
			return
		}
		_, port, err := net.SplitHostPort(target)
		if err != nil {
			t.Fatalf("target %q: %v", target, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Fatalf("target %q has a bad port", target)
		}
	})
}

func FuzzPasswdShell(f *testing.F) {
	f.Add("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/zsh\n", "alice")
	f.Add("#comment\n\nbad line\n", "bad line")
	f.Fuzz(func(t *testing.T, passwd, name string) {
		shell, ok := passwdShell(strings.NewReader(passwd), name)
		if !ok {
			return
		}
		if strings.ContainsAny(shell, ":\n") {
			t.Fatalf("shell %q holds a separator", shell)
		}
		if !strings.Contains(passwd, name+":") {
			t.Fatalf("found %q not in the file", name)
		}
	})
}

func FuzzCheckSourceAddress(f *testing.F) {
	f.Add("127.0.0.1:22", "127.0.0.0/8,::1")
	f.Add("[::1]:22", "10.0.0.1")
	f.Add("not an address", "")
	f.Fuzz(func(t *testing.T, addr, list string) {
		var a net.Addr
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			a = net.TCPAddrFromAddrPort(ap)
		}
		err := checkSourceAddress(a, list)
		if err == nil && (a == nil || strings.TrimSpace(list) == "") {
			t.Fatalf("address %q allowed by %q", addr, list)
		}
	})
}
