package proxy_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/audit"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/proxy"
)

// TestSSHHandshake checks the proxy's SSH server with the Go client: the
// ciphers it negotiates, and the audit event of a key that is no
// certificate.
func TestSSHHandshake(t *testing.T) {
	c := startCluster(t)
	p := startProxy(t, c, proxy.Config{Mode: proxy.Separate})
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ciphers []string) error {
		conf := &ssh.ClientConfig{
			User:            "bob",
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(plain)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(),
			Config:          ssh.Config{Ciphers: ciphers},
			Timeout:         10 * time.Second,
		}
		cl, err := ssh.Dial("tcp", p.sshAddr, conf)
		if err == nil {
			cl.Close()
		}
		return err
	}
	cases := []struct {
		name    string
		ciphers []string
		want    string
	}{
		{name: "chacha20-only", ciphers: []string{ssh.CipherChaCha20Poly1305}, want: "no common algorithm for client to server cipher"},
		{name: "aes128-gcm", ciphers: []string{ssh.CipherAES128GCM}, want: "unable to authenticate"},
		{name: "aes128-ctr", ciphers: []string{ssh.CipherAES128CTR}, want: "unable to authenticate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := dial(tc.ciphers)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("dial with %v: %v, want an error containing %q", tc.ciphers, err, tc.want)
			}
		})
	}
	// The refused plain keys are audited, one event per connection.
	ev := c.waitEvent(t, audit.TypeAccessDenied, func(e *authv1.AuditEvent) bool {
		f := e.GetFields()
		return f["event"] == "auth.failure" && f["login"] == "bob" && f["reason"] == "proxy: a user certificate is required" &&
			f["via"] == "ssh-proxy" && f["proxy"] == p.HostID()
	})
	if ev.GetActor() != "" || ev.GetSuccess() {
		t.Fatalf("event for a plain key: actor %q success %v", ev.GetActor(), ev.GetSuccess())
	}
	if host, _, err := net.SplitHostPort(ev.GetSource()); err != nil || host != "127.0.0.1" {
		t.Fatalf("event source %q", ev.GetSource())
	}
	count := func() int {
		n := 0
		for _, e := range c.events(t, audit.TypeAccessDenied) {
			if e.GetFields()["event"] == "auth.failure" {
				n++
			}
		}
		return n
	}
	// Two refused connections (the chacha20 one never reached
	// authentication): two events, whatever the number of attempts.
	deadline := time.Now().Add(10 * time.Second)
	for count() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := count(); n != 2 {
		t.Fatalf("%d auth.failure events for 2 refused connections", n)
	}
	// A configured list is offered as is: with aes256-ctr alone, a
	// GCM-only client finds no common cipher, and a client with both gets
	// through to authentication.
	pc := startProxy(t, c, proxy.Config{Mode: proxy.Separate, SSHCiphers: []string{ssh.CipherAES256CTR}})
	for _, tc := range []struct {
		ciphers []string
		want    string
	}{
		{[]string{ssh.CipherAES128GCM}, "no common algorithm for client to server cipher"},
		{[]string{ssh.CipherAES128GCM, ssh.CipherAES256CTR}, "unable to authenticate"},
	} {
		conf := &ssh.ClientConfig{User: "bob", Auth: []ssh.AuthMethod{ssh.PublicKeys(plain)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Config: ssh.Config{Ciphers: tc.ciphers}, Timeout: 10 * time.Second}
		cl, err := ssh.Dial("tcp", pc.sshAddr, conf)
		if err == nil {
			cl.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("SSHCiphers [aes256-ctr], client offering %v: %v, want an error containing %q", tc.ciphers, err, tc.want)
		}
	}
}
