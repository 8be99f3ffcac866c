package authapi

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHostMutualTLS: credentials from the service give hosts mutual TLS
// between themselves, and the serving side learns the caller's identity.
func TestHostMutualTLS(t *testing.T) {
	ts := startServer(t, nil, nil)
	other := startServer(t, nil, &Config{ClusterName: "other"})
	ctx := testCtx(t)
	agent, err := ts.IssueIdentity(ctx, RoleAgent, "agent-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := ts.IssueIdentity(ctx, RoleProxy, "proxy-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.IssueIdentity(ctx, RoleProxy, "proxy-x", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", agent.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		id  *Identity
		err error
	}
	results := make(chan result, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			err = tc.HandshakeContext(ctx)
			var id *Identity
			if err == nil {
				id, err = IdentityFromState(tc.ConnectionState(), ts.cluster, agent.HostCAs[0], agent.UserCAs[0])
			}
			c.Close()
			results <- result{id, err}
		}
	}()
	cases := []struct {
		name   string
		creds  *Credentials
		wantOK bool
	}{
		{"proxy of the cluster", proxy, true},
		{"proxy of another cluster", foreign, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conf := tc.creds.ClientTLSConfig()
			if !tc.wantOK {
				// Trust the agent, so that it is the agent that refuses.
				conf = (&Credentials{Certificate: tc.creds.Certificate, HostCAs: agent.HostCAs}).ClientTLSConfig()
			}
			c, err := tls.Dial("tcp", l.Addr().String(), conf)
			if err == nil {
				c.Read(make([]byte, 1)) // TLS 1.3: the server's verdict arrives after the handshake
				c.Close()
			}
			r := <-results
			if tc.wantOK {
				if r.err != nil || r.id == nil || r.id.Name != "proxy-1" || !r.id.HasRole(RoleProxy) {
					t.Fatalf("server saw %+v, %v", r.id, r.err)
				}
			} else if r.err == nil {
				t.Fatalf("server accepted %+v", r.id)
			}
		})
	}
	// The client side refuses a server of another cluster.
	fl, err := tls.Listen("tcp", "127.0.0.1:0", foreign.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	go func() {
		c, err := fl.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	if c, err := tls.Dial("tcp", fl.Addr().String(), proxy.ClientTLSConfig()); err == nil {
		c.Close()
		t.Fatal("dialed a server of another cluster")
	}
}

func TestCredentialsFile(t *testing.T) {
	ts := startServer(t, nil, nil)
	creds, err := ts.IssueIdentity(testCtx(t), "admin", "ops", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "admin.json")
	if err := creds.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	back, err := LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Identity.Name != "ops" || back.Identity.Kind != KindAdmin || back.CAPin() != ts.CAPin() || back.SSHCert == nil || len(back.UserCAs) != 1 || len(back.DBCAs) != 1 {
		t.Fatalf("loaded %+v", back)
	}
	for _, bad := range []string{"", "{}", `{"tls_cert":"x"}`} {
		if _, err := ParseCredentials([]byte(bad)); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseCredentials(%q) = %v", bad, err)
		}
	}
	if _, err := LoadCredentials(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("loaded a missing file")
	}
}
