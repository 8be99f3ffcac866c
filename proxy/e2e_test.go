package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/audit"
	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/proxy"
)

// sshEnv is a logged-in user's OpenSSH setup: keys, certificate,
// known_hosts with the cluster's @cert-authority line and a config file
// that reaches nodes through the proxy with ProxyJump.
type sshEnv struct {
	bin, config, dir string
}

// writeSSHConfig writes the files a user needs for stock OpenSSH; the
// config is the one documented in doc.go.
func writeSSHConfig(t testing.TB, lr *proxy.LoginResponse, proxyHost, proxyPort string) *sshEnv {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, []byte(lr.SSHPrivateKey), 0o600); err != nil {
		t.Fatal(err)
	}
	return writeSSHConfigKey(t, dir, key, lr, proxyHost, proxyPort)
}

// writeSSHConfigKey is writeSSHConfig for a private key the user holds
// already (at key, in dir): it adds the certificate next to it.
func writeSSHConfigKey(t testing.TB, dir, key string, lr *proxy.LoginResponse, proxyHost, proxyPort string) *sshEnv {
	t.Helper()
	for name, content := range map[string]string{
		key + "-cert.pub":                 lr.SSHCert,
		filepath.Join(dir, "known_hosts"): lr.KnownHosts,
	} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config := fmt.Sprintf(`Host proxy
    HostName %s
    Port %s
    HostKeyAlias proxy
    ProxyJump none

Host *
    User root
    ProxyJump proxy
    IdentityFile %s
    CertificateFile %s-cert.pub
    IdentitiesOnly yes
    UserKnownHostsFile %s/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 20
`, proxyHost, proxyPort, key, key, dir)
	path := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return &sshEnv{bin: testservice.Bin(t, "ssh"), config: path, dir: dir}
}

func (e *sshEnv) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.bin, append([]string{"-F", e.config}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOpenSSHEndToEnd runs auth, a proxy and agents in one process, logs a
// user in through /webapi/login and drives the real OpenSSH client through
// the proxy: ProxyJump over the reverse tunnel, the ProxyCommand subsystem,
// direct mode, and the refused cases with their audit events.
func TestOpenSSHEndToEnd(t *testing.T) {
	for _, mode := range []proxy.Mode{proxy.Multiplex, proxy.Separate} {
		t.Run(mode.String(), func(t *testing.T) { testOpenSSH(t, mode) })
	}
}

func testOpenSSH(t *testing.T, mode proxy.Mode) {
	c := startCluster(t)
	c.role(t, "dev", []string{"root"}, map[string][]string{"env": {"dev"}})
	c.user(t, "alice", "correct horse", "dev")
	p := startProxy(t, c, proxy.Config{Mode: mode})
	startAgent(t, c, p, agent.Config{NodeName: "dev1", Labels: map[string]string{"env": "dev"}})
	startAgent(t, c, p, agent.Config{NodeName: "prod1", Labels: map[string]string{"env": "prod"}})
	dl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, c, p, agent.Config{NodeName: "direct1", Labels: map[string]string{"env": "dev"}, DirectListener: dl})
	waitNode(t, p, "dev1", true)
	waitNode(t, p, "prod1", true)
	waitNode(t, p, "direct1", false)

	hc := webClient(t, c)
	status, _, msg := login(t, hc, p.webAddr, proxy.LoginRequest{User: "alice", Password: "wrong"})
	if status != 401 || !strings.Contains(msg, "login failed") {
		t.Fatalf("bad password: status %d %q", status, msg)
	}
	c.waitEvent(t, audit.TypeLoginFailed, func(e *authv1.AuditEvent) bool {
		return e.GetActor() == "alice" && strings.HasPrefix(e.GetSource(), "127.0.0.1:") && e.GetFields()["proxy"] == p.HostID()
	})
	status, lr, msg := login(t, hc, p.webAddr, proxy.LoginRequest{User: "alice", Password: "correct horse"})
	if status != 200 {
		t.Fatalf("login: status %d %q", status, msg)
	}
	host, port, _ := net.SplitHostPort(p.sshAddr)
	env := writeSSHConfig(t, lr, host, port)
	ctx := testCtx(t)

	cases := []struct {
		name    string
		args    []string
		wantOK  bool
		want    string
		audit   string
		matchEv func(*authv1.AuditEvent) bool
	}{
		{
			name: "jump-tunnel", args: []string{"dev1", "echo hello from $(hostname) as $(whoami)"},
			wantOK: true, want: "as root",
			audit: audit.TypeAccessGranted,
			matchEv: func(e *authv1.AuditEvent) bool {
				return e.GetActor() == "alice" && e.GetFields()["node"] == "dev1" && e.GetFields()["path"] == "tunnel"
			},
		},
		{
			name: "jump-direct", args: []string{"direct1", "echo direct ok"},
			wantOK: true, want: "direct ok",
			audit: audit.TypeAccessGranted,
			matchEv: func(e *authv1.AuditEvent) bool {
				return e.GetFields()["node"] == "direct1" && e.GetFields()["path"] == "direct"
			},
		},
		{
			name:   "proxycommand-subsystem",
			args:   []string{"-o", "ProxyJump=none", "-o", "ProxyCommand=" + env.bin + " -F " + env.config + " proxy -s proxy:%h:%p", "dev1", "echo subsystem ok"},
			wantOK: true, want: "subsystem ok",
		},
		{
			name: "login-not-granted", args: []string{"-l", "daemon", "dev1", "true"},
			want:  "Permission denied",
			audit: audit.TypeAccessDenied,
			matchEv: func(e *authv1.AuditEvent) bool {
				return e.GetActor() == "alice" && e.GetFields()["login"] == "daemon" && e.GetFields()["event"] == "auth.failure"
			},
		},
		{
			name: "node-hidden-by-labels", args: []string{"prod1", "true"},
			want:  `your roles do not allow node "prod1"`,
			audit: audit.TypeAccessDenied,
			matchEv: func(e *authv1.AuditEvent) bool {
				return e.GetActor() == "alice" && e.GetFields()["node"] == "prod1" && strings.HasPrefix(e.GetSource(), "127.0.0.1:")
			},
		},
		{
			name: "unknown-node", args: []string{"nosuchnode", "true"},
			want: `node not found: "nosuchnode"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := env.run(ctx, tc.args...)
			if (err == nil) != tc.wantOK {
				t.Fatalf("ssh %v: err %v, want success %v; output:\n%s", tc.args, err, tc.wantOK, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("ssh %v output %q does not contain %q", tc.args, out, tc.want)
			}
			if tc.audit != "" {
				c.waitEvent(t, tc.audit, tc.matchEv)
			}
		})
	}

	// Certificates the proxy refuses at authentication: the real client
	// sees the reason in an authentication banner and the proxy records
	// an access.denied event (event=auth.failure).
	t.Run("expired-certificate", func(t *testing.T) {
		status, short, msg := login(t, hc, p.webAddr, proxy.LoginRequest{User: "alice", Password: "correct horse", TTL: authapi.Duration(time.Second)})
		if status != 200 {
			t.Fatalf("login with a 1s ttl: status %d %q", status, msg)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(short.SSHCert))
		if err != nil {
			t.Fatal(err)
		}
		cert := pub.(*ssh.Certificate)
		expiry := time.Unix(int64(cert.ValidBefore), 0)
		if time.Until(expiry) > 2*time.Second {
			t.Fatalf("certificate valid until %v, asked for 1s", expiry)
		}
		time.Sleep(time.Until(expiry) + 100*time.Millisecond)
		expired := writeSSHConfig(t, short, host, port)
		out, err := expired.run(ctx, "dev1", "true")
		if err == nil {
			t.Fatalf("ssh with a certificate expired at %v succeeded:\n%s", expiry, out)
		}
		t.Logf("ssh output:\n%s", out)
		want := "sallyport proxy: access denied: certificate expired at " + expiry.UTC().Format(time.RFC3339)
		if !strings.Contains(out, want) || !strings.Contains(out, "Permission denied") {
			t.Fatalf("ssh output %q does not contain %q and Permission denied", out, want)
		}
		c.waitEvent(t, audit.TypeAccessDenied, func(e *authv1.AuditEvent) bool {
			f := e.GetFields()
			return e.GetActor() == "alice" && f["event"] == "auth.failure" && f["via"] == "ssh-proxy" && f["proxy"] == p.HostID() &&
				strings.Contains(f["reason"], "certificate expired at") && strings.HasPrefix(e.GetSource(), "127.0.0.1:") && !e.GetSuccess()
		})
	})

	t.Run("certificate-of-another-cluster", func(t *testing.T) {
		other := startClusterNamed(t, "other.test")
		other.role(t, "dev", []string{"root"}, map[string][]string{"*": {"*"}})
		other.user(t, "alice", "correct horse", "dev")
		creds := otherLogin(t, other, "alice", "correct horse")
		dir := t.TempDir()
		pk, err := ssh.MarshalPrivateKey(creds.SSHKey, "")
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(dir, "id_ed25519")
		if err := os.WriteFile(key, pem.EncodeToMemory(pk), 0o600); err != nil {
			t.Fatal(err)
		}
		foreign := writeSSHConfigKey(t, dir, key, &proxy.LoginResponse{
			SSHCert:    string(ssh.MarshalAuthorizedKey(creds.SSHCert)),
			KnownHosts: lr.KnownHosts, // the user trusts this cluster's hosts
		}, host, port)
		out, err := foreign.run(ctx, "dev1", "true")
		if err == nil {
			t.Fatalf("ssh with a certificate of cluster other.test succeeded:\n%s", out)
		}
		t.Logf("ssh output:\n%s", out)
		want := `sallyport proxy: access denied: certificate of another cluster ("other.test", this is "example.test")`
		if !strings.Contains(out, want) || !strings.Contains(out, "Permission denied") {
			t.Fatalf("ssh output %q does not contain %q and Permission denied", out, want)
		}
		c.waitEvent(t, audit.TypeAccessDenied, func(e *authv1.AuditEvent) bool {
			f := e.GetFields()
			return e.GetActor() == "alice" && f["event"] == "auth.failure" && f["via"] == "ssh-proxy" && f["proxy"] == p.HostID() &&
				strings.Contains(f["reason"], "certificate of another cluster") && strings.HasPrefix(e.GetSource(), "127.0.0.1:")
		})
		// The other cluster's auth never heard of the attempt.
		if evs := other.events(t, audit.TypeAccessDenied); len(evs) != 0 {
			t.Fatalf("other cluster recorded %d access.denied events", len(evs))
		}
	})

	t.Run("scp-10MiB", func(t *testing.T) {
		data := make([]byte, 10<<20)
		rand.Read(data)
		src := filepath.Join(env.dir, "payload")
		if err := os.WriteFile(src, data, 0o600); err != nil {
			t.Fatal(err)
		}
		remote := fmt.Sprintf("/tmp/sallyport-scp-%d", time.Now().UnixNano())
		t.Cleanup(func() { os.Remove(remote) })
		scp := testservice.Bin(t, "scp")
		out, err := exec.CommandContext(ctx, scp, "-F", env.config, "-q", src, "dev1:"+remote).CombinedOutput()
		if err != nil {
			t.Fatalf("scp: %v\n%s", err, out)
		}
		sum := sha256.Sum256(data)
		got, err := env.run(ctx, "dev1", "sha256sum "+remote)
		if err != nil || !strings.HasPrefix(got, hex.EncodeToString(sum[:])) {
			t.Fatalf("remote checksum %q (err %v), want %x", got, err, sum)
		}
		back := filepath.Join(env.dir, "back")
		if out, err := exec.CommandContext(ctx, scp, "-F", env.config, "-q", "dev1:"+remote, back).CombinedOutput(); err != nil {
			t.Fatalf("scp back: %v\n%s", err, out)
		}
		got2, err := os.ReadFile(back)
		if err != nil || !bytes.Equal(got2, data) {
			t.Fatalf("copied back %d bytes (err %v), differ from the 10 MiB sent", len(got2), err)
		}
	})

	t.Run("pty-tmux", func(t *testing.T) {
		tmux := testservice.Bin(t, "tmux")
		sock := filepath.Join(env.dir, "tmux.sock")
		tm := func(args ...string) string {
			out, err := exec.CommandContext(ctx, tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("tmux %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		tm("new-session", "-d", "-x", "120", "-y", "30", env.bin+" -F "+env.config+" -t dev1")
		t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
		deadline := time.Now().Add(20 * time.Second)
		sent := false
		for {
			screen := tm("capture-pane", "-p")
			if strings.Contains(screen, "answer=42") && strings.Contains(screen, "/dev/pts/") && strings.Contains(screen, "cols=120") {
				break
			}
			if !sent && strings.ContainsAny(screen, "#$") {
				tm("send-keys", "echo answer=$((6*7)) cols=$(tput cols); tty", "Enter")
				sent = true
			}
			if time.Now().After(deadline) {
				t.Fatalf("interactive session through the proxy did not answer; screen:\n%s", screen)
			}
			time.Sleep(100 * time.Millisecond)
		}
		tm("send-keys", "exit", "Enter")
	})

	// The proxy serves from its caches (agents, roles) while auth is
	// down; the login certificates and the agents' identities need no
	// call to auth.
	t.Run("auth-outage", func(t *testing.T) {
		c.auth.Close()
		out, err := env.run(ctx, "dev1", "echo still serving")
		if err != nil || !strings.Contains(out, "still serving") {
			t.Fatalf("ssh with auth down: %v\n%s", err, out)
		}
		if _, _, msg := login(t, hc, p.webAddr, proxy.LoginRequest{User: "alice", Password: "correct horse"}); msg != "auth service unavailable" {
			t.Fatalf("login with auth down answered %q", msg)
		}
	})
}

// otherLogin logs user in at cluster c's auth directly (as a proxy of c
// would) and returns the credentials with a new SSH key.
func otherLogin(t testing.TB, c *cluster, user, password string) *authapi.Credentials {
	t.Helper()
	ctx := testCtx(t)
	id, err := c.auth.IssueIdentity(ctx, authapi.RoleProxy, "proxy-"+c.auth.ClusterName(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := authapi.NewClient(&authapi.ClientConfig{Addrs: []string{c.authAddr}, Credentials: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	creds, err := cl.Login(ctx, authapi.LoginRequest{User: user, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	if creds.SSHCert == nil || len(creds.SSHKey) == 0 {
		t.Fatal("login at the other cluster returned no SSH certificate and key")
	}
	return creds
}
