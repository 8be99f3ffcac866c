package cli

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSSHConfig(t *testing.T) {
	p := &profile{Proxy: "proxy.example.com:443", SSHAddr: "proxy.example.com:443", Cluster: "example.com", User: "alice", dir: "/home/a/.sallyport/keys/proxy.example.com_443"}
	got := sshConfig(p)
	for _, want := range []string{
		"Host sallyport-proxy.example.com\n    HostName proxy.example.com\n    Port 443\n    ProxyJump none\n",
		"Host *.example.com\n    ProxyJump sallyport-proxy.example.com\n",
		"    CertificateFile /home/a/.sallyport/keys/proxy.example.com_443/id_ed25519-cert.pub\n",
		"    IdentityFile /home/a/.sallyport/keys/proxy.example.com_443/id_ed25519\n",
		"    UserKnownHostsFile /home/a/.sallyport/keys/proxy.example.com_443/known_hosts\n",
		"#   Include /home/a/.sallyport/keys/proxy.example.com_443/ssh_config\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("snippet lacks %q:\n%s", want, got)
		}
	}
}

func TestKnownHosts(t *testing.T) {
	cases := []struct{ name, sshAddr, in, want string }{
		{"non-standard port", "127.0.0.1:3080", "@cert-authority * ssh-ed25519 AAAAkey host-ca\n", "@cert-authority *.c.test,[127.0.0.1]:3080 ssh-ed25519 AAAAkey host-ca\n"},
		{"port 22", "proxy.c.test:22", "@cert-authority * ssh-ed25519 AAAAkey\n", "@cert-authority *.c.test,proxy.c.test ssh-ed25519 AAAAkey\n"},
		{"other lines dropped", "p:22", "# comment\nhost ssh-rsa X\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := knownHosts(&profile{Cluster: "c.test", SSHAddr: tc.sshAddr}, tc.in); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSSHAddr(t *testing.T) {
	cases := []struct {
		name string
		pr   proxy.PingResponse
		want string
	}{
		{"tls routing: the address given", proxy.PingResponse{Proxy: proxy.ProxySettings{TLSRoutingEnabled: true, SSH: proxy.SSHSettings{SSHPublicAddr: "lb:443"}}}, "p.example:443"},
		{"separate: advertised", proxy.PingResponse{Proxy: proxy.ProxySettings{SSH: proxy.SSHSettings{SSHPublicAddr: "p.example:3023"}}}, "p.example:3023"},
		{"separate: listen port", proxy.PingResponse{Proxy: proxy.ProxySettings{SSH: proxy.SSHSettings{ListenAddr: "0.0.0.0:4023"}}}, "p.example:4023"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := sshAddr("p.example:443", &tc.pr); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAdvice checks that errors say what to do next.
func TestAdvice(t *testing.T) {
	home := t.TempDir()
	t.Setenv("SALLYPORT_HOME", home)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A closed port: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	expired := &profile{Proxy: "p:443", SSHAddr: "p:443", Cluster: "c.test", User: "alice", Expires: time.Now().Add(-time.Hour), dir: filepath.Join(home, "keys", "p_443")}
	cases := []struct {
		name  string
		setup func()
		args  []string
		want  string
	}{
		{"not logged in", func() {}, []string{"ls"}, "run `sallyport login"},
		{"unreachable proxy", func() {}, []string{"login", "--proxy", dead, "--user", "u", "--password-file", "/dev/null"}, "check the address, and HTTPS_PROXY"},
		{"no proxy given", func() {}, []string{"login", "--user", "u"}, "--proxy HOST:PORT is required"},
		{"expired certificate", func() {
			os.MkdirAll(expired.dir, 0o700)
			b, _ := json.Marshal(expired)
			os.WriteFile(filepath.Join(expired.dir, fileProfile), b, 0o600)
			os.WriteFile(filepath.Join(home, fileCurrent), []byte("p:443\n"), 0o600)
		}, []string{"ssh", "node1", "true"}, "expired at"},
		{"expired status", func() {}, []string{"status"}, "run `sallyport login --proxy p:443 --user alice`"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SALLYPORT_PROXY", "")
			t.Setenv("HTTPS_PROXY", "")
			tc.setup()
			var out strings.Builder
			err := Run(ctx, tc.args, strings.NewReader(""), &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	var out strings.Builder
	if err := Run(ctx, []string{"logout"}, nil, &out, &out); err != nil || !strings.Contains(out.String(), "Logged out of c.test") {
		t.Fatalf("logout: %v %s", err, out.String())
	}
	if _, err := os.Stat(expired.dir); !os.IsNotExist(err) {
		t.Fatalf("profile left after logout: %v", err)
	}
}
