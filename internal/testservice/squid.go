package testservice

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// SquidConfig configures a squid started by StartSquid. The zero value is
// an open CONNECT proxy (any port, no authentication) on a free port.
type SquidConfig struct {
	// Users maps user names to passwords for Basic authentication. Empty
	// means no authentication.
	Users map[string]string
	// Realm is the Basic authentication realm; empty means "sallyport-test".
	Realm string
	// Hosts maps made-up host names to IP addresses through squid's
	// hosts_file, so a test can reach a loopback server by a name that
	// proxy-selection rules do not treat as loopback.
	Hosts map[string]string
	// DenyDomains lists target host names that squid refuses with 403.
	DenyDomains []string
	// TLSCertFile and TLSKeyFile, when both set, add an https_port
	// (TLS from the client to squid) with this PEM certificate and key.
	TLSCertFile, TLSKeyFile string
}

// Squid is a running squid.
type Squid struct {
	*Process
	Addr      string // http_port, "127.0.0.1:PORT"
	TLSAddr   string // https_port, empty unless TLS was configured
	Dir       string // configuration and log directory (writable by nobody)
	AccessLog string // path of access.log
}

// StartSquid starts squid as user nobody on loopback and waits until it
// accepts connections. Its access.log records every tunnel
// ("TCP_TUNNEL/200 ... CONNECT host:port user ...").
func StartSquid(t testing.TB, cfg SquidConfig) *Squid {
	t.Helper()
	squid := Bin(t, "squid")
	dir := NobodyDir(t)
	s := &Squid{Addr: FreeAddr(t), Dir: dir, AccessLog: filepath.Join(dir, "access.log")}
	var b strings.Builder
	fmt.Fprintf(&b, "http_port %s\n", s.Addr)
	if cfg.TLSCertFile != "" && cfg.TLSKeyFile != "" {
		s.TLSAddr = FreeAddr(t)
		fmt.Fprintf(&b, "https_port %s tls-cert=%s tls-key=%s\n", s.TLSAddr, cfg.TLSCertFile, cfg.TLSKeyFile)
	}
	fmt.Fprintf(&b, `pid_filename %[1]s/squid.pid
cache_log %[1]s/cache.log
access_log stdio:%[1]s/access.log
coredump_dir %[1]s
netdb_filename none
pinger_enable off
cache deny all
cache_mem 8 MB
shutdown_lifetime 0 seconds
logfile_rotate 0
hosts_file %[1]s/hosts
dns_nameservers 127.0.0.1
negative_dns_ttl 1 seconds
`, dir)
	hosts := "127.0.0.1 localhost\n"
	names := make([]string, 0, len(cfg.Hosts))
	for n := range cfg.Hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		hosts += cfg.Hosts[n] + " " + n + "\n"
	}
	WriteFile(t, dir, "hosts", hosts)
	if len(cfg.DenyDomains) > 0 {
		fmt.Fprintf(&b, "acl denied dstdomain %s\nhttp_access deny denied\n", strings.Join(cfg.DenyDomains, " "))
	}
	if len(cfg.Users) > 0 {
		realm := cfg.Realm
		if realm == "" {
			realm = "sallyport-test"
		}
		var pw strings.Builder
		for u, p := range cfg.Users {
			cmd := exec.Command("openssl", "passwd", "-apr1", "-stdin")
			cmd.Stdin = strings.NewReader(p + "\n")
			hash, err := cmd.Output()
			if err != nil {
				t.Fatalf("testservice: openssl passwd: %v", err)
			}
			fmt.Fprintf(&pw, "%s:%s\n", u, strings.TrimSpace(string(hash)))
		}
		WriteFile(t, dir, "passwd", pw.String())
		fmt.Fprintf(&b, `auth_param basic program /usr/lib/squid/basic_ncsa_auth %s/passwd
auth_param basic children 2
auth_param basic realm %s
auth_param basic credentialsttl 1 minute
acl authed proxy_auth REQUIRED
http_access allow authed
`, dir, realm)
	} else {
		b.WriteString("http_access allow all\n")
	}
	b.WriteString("http_access deny all\n")
	conf := WriteFile(t, dir, "squid.conf", b.String())
	ready := s.Addr
	s.Process = Start(t, "setpriv", []string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", squid, "-N", "-f", conf}, nil, ready)
	if s.TLSAddr != "" {
		if err := WaitTCP(s.TLSAddr, 30*time.Second); err != nil {
			t.Fatalf("testservice: squid https_port: %v\n%s", err, s.Process.Output())
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "cache.log")); err == nil {
				t.Logf("squid cache.log:\n%s", b)
			}
		}
	})
	return s
}

// AccessLogLines returns the lines of access.log written so far. Squid
// writes a line when a transaction ends, so read it after closing the
// tunnel; WaitAccessLog waits for a line.
func (s *Squid) AccessLogLines(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(s.AccessLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("testservice: read squid access.log: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// WaitAccessLog waits up to timeout for an access.log line containing all
// of the given substrings and returns it; it fails the test otherwise.
func (s *Squid) WaitAccessLog(t testing.TB, timeout time.Duration, substrings ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range s.AccessLogLines(t) {
			all := true
			for _, sub := range substrings {
				if !strings.Contains(l, sub) {
					all = false
					break
				}
			}
			if all {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testservice: no squid access.log line with %q within %v; log:\n%s",
				substrings, timeout, strings.Join(s.AccessLogLines(t), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NobodyDir returns a new temporary directory that user nobody can write,
// removed when the test ends. Programs started as nobody keep their
// configuration, logs and pid files there.
func NobodyDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sallyport-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
