package agent_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/backend/memory"
	"github.com/sallyport/sallyport/sshserver"
)

// memRecording keeps a session's terminal output.
type memRecording struct {
	mu     sync.Mutex
	buf    strings.Builder
	closed bool
}

func (r *memRecording) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}
func (r *memRecording) Resize(int, int) error { return nil }
func (r *memRecording) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

type authServer struct {
	srv   *authapi.Server
	addr  string
	admin *authapi.Client
}

// startAuth runs an Auth Service on a memory backend; stop it with the
// returned func (the tests' cleanup does).
func startAuth(tb testing.TB) *authServer {
	tb.Helper()
	a, stop, err := newAuth()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return a
}

func newAuth() (*authServer, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := memory.New(nil)
	if err != nil {
		return nil, nil, err
	}
	srv, err := authapi.New(ctx, &authapi.Config{Backend: b, ClusterName: "example.test", BcryptCost: bcrypt.MinCost, RateLimit: -1})
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	adminCreds, err := srv.IssueIdentity(ctx, "admin", "admin", time.Hour)
	if err != nil {
		return nil, nil, err
	}
	admin, err := authapi.NewClient(&authapi.ClientConfig{Addrs: []string{l.Addr().String()}, Credentials: adminCreds})
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		admin.Close()
		srv.Close()
		<-done
		b.Close()
	}
	return &authServer{srv: srv, addr: l.Addr().String(), admin: admin}, stop, nil
}

func (a *authServer) token(ctx context.Context, role string) (string, error) {
	resp, err := a.admin.API().CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{Roles: []string{role}})
	if err != nil {
		return "", err
	}
	return resp.GetToken(), nil
}

// loginUser creates a user with a role granting logins and logs them in.
func (a *authServer) loginUser(ctx context.Context, logins ...string) (*authapi.Credentials, error) {
	role := &authv1.Role{Name: "dev", Logins: logins, NodeLabels: map[string]*authv1.LabelValues{"*": {Values: []string{"*"}}}}
	if _, err := a.admin.API().UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: role}); err != nil {
		return nil, err
	}
	if _, err := a.admin.API().UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "alice", Password: "password-1", Roles: []string{"dev"}}); err != nil {
		return nil, err
	}
	c, err := authapi.NewClient(&authapi.ClientConfig{Addrs: []string{a.addr}, CAPin: a.srv.CAPin()})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Login(ctx, authapi.LoginRequest{User: "alice", Password: "password-1"})
}

// sshRun connects to addr with the user's certificate, checks the host
// certificate against the host CA for hostname, and runs cmd.
func sshRun(user *authapi.Credentials, addr, hostname, login, cmd string) (string, error) {
	hostCA := user.SSHHostCAs[0]
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
		return string(k.Marshal()) == string(hostCA.Marshal())
	}}
	cc := &ssh.ClientConfig{
		User: login,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(user.SSHSigner)},
		HostKeyCallback: func(_ string, remote net.Addr, key ssh.PublicKey) error {
			return checker.CheckHostKey(hostname+":22", remote, key)
		},
		HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01},
		Timeout:           10 * time.Second,
	}
	c, err := ssh.Dial("tcp", addr, cc)
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// sshRunPTY is sshRun with a terminal.
func sshRunPTY(user *authapi.Credentials, addr, hostname, login, cmd string) (string, error) {
	hostCA := user.SSHHostCAs[0]
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
		return string(k.Marshal()) == string(hostCA.Marshal())
	}}
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: login, Auth: []ssh.AuthMethod{ssh.PublicKeys(user.SSHSigner)},
		HostKeyCallback: func(_ string, remote net.Addr, key ssh.PublicKey) error {
			return checker.CheckHostKey(hostname+":22", remote, key)
		},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		return "", err
	}
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		cfg  *agent.Config
	}{
		{"nil", nil},
		{"no-address", &agent.Config{JoinToken: "t", CAPin: "p"}},
		{"tunnel-without-proxy", &agent.Config{AuthAddrs: []string{"a:1"}, JoinToken: "t", CAPin: "p"}},
		{"no-identity", &agent.Config{ProxyAddr: "p:1"}},
		{"token-without-pin", &agent.Config{ProxyAddr: "p:1", JoinToken: "t"}},
		{"negative-heartbeat", &agent.Config{ProxyAddr: "p:1", JoinToken: "t", CAPin: "p", HeartbeatInterval: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := agent.New(ctx, tc.cfg); !errors.Is(err, agent.ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestJoinErrors(t *testing.T) {
	a := startAuth(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := a.token(ctx, authapi.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		token, pin string
		want       error
	}{
		{"wrong-pin", tok, "sha256:" + strings.Repeat("00", 32), authapi.ErrPinMismatch},
		{"wrong-token", "not-a-token", a.srv.CAPin(), authapi.ErrAuthFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := agent.New(ctx, &agent.Config{AuthAddrs: []string{a.addr}, DirectAddr: "127.0.0.1:0", JoinToken: tc.token, CAPin: tc.pin, NodeName: "n1"})
			if !errors.Is(err, tc.want) {
				t.Fatalf("New = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDirectMode joins an agent straight to auth, serves SSH on a direct
// listener and runs commands with a user certificate: the host certificate
// verifies against the host CA for the node name, the login must be
// granted, and every session reaches the audit hook and the Auth Service.
func TestDirectMode(t *testing.T) {
	a := startAuth(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := a.token(ctx, authapi.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan sshserver.Event, 100)
	recordings := make(chan *memRecording, 10)
	ag, err := agent.New(ctx, &agent.Config{
		AuthAddrs: []string{a.addr}, JoinToken: tok, CAPin: a.srv.CAPin(),
		NodeName: "db01", Labels: map[string]string{"env": "test"}, DirectListener: l,
		HeartbeatInterval: time.Second,
		SSH: sshserver.Config{
			Audit: func(_ context.Context, ev sshserver.Event) { events <- ev },
			Recorder: func(_ context.Context, info sshserver.SessionInfo) (sshserver.Recording, error) {
				r := &memRecording{}
				recordings <- r
				return r, nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ag.Serve(ctx) }()
	defer func() {
		if err := ag.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; !errors.Is(err, agent.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
		if err := ag.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close = %v, want net.ErrClosed", err)
		}
	}()
	user, err := a.loginUser(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, host, login string
		wantErr           bool
		want              string
	}{
		{name: "granted", host: "db01", login: "root", want: "hello root"},
		{name: "host-id-is-a-principal", host: ag.HostID(), login: "root", want: "hello root"},
		{name: "login-not-granted", host: "db01", login: "daemon", wantErr: true},
		{name: "wrong-host-name", host: "other", login: "root", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := sshRun(user, l.Addr().String(), tc.host, tc.login, "echo hello $(whoami)")
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v (output %q)", err, tc.wantErr, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("output %q, want %q", out, tc.want)
			}
		})
	}
	t.Run("pty-session-is-recorded", func(t *testing.T) {
		out, err := sshRunPTY(user, l.Addr().String(), "db01", "root", "echo recorded-$((40+2))")
		if err != nil || !strings.Contains(out, "recorded-42") {
			t.Fatalf("pty session: %v %q", err, out)
		}
		select {
		case r := <-recordings:
			deadline := time.Now().Add(5 * time.Second)
			for {
				r.mu.Lock()
				got, closed := r.buf.String(), r.closed
				r.mu.Unlock()
				if closed && strings.Contains(got, "recorded-42") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("recording %q (closed %v) lacks the output", got, closed)
				}
				time.Sleep(20 * time.Millisecond)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the recorder hook was not called for a terminal session")
		}
	})
	// The heartbeat announced the node with its labels and direct address.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := a.admin.API().ListServers(ctx, &authv1.ListServersRequest{Kind: authapi.RoleAgent})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range resp.GetServers() {
			if s.GetName() == ag.HostID() && s.GetHostname() == "db01" && s.GetLabels()["env"] == "test" && len(s.GetAddrs()) == 1 && s.GetAddrs()[0] == l.Addr().String() {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not announced: %v", resp.GetServers())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The refused login reached the hook.
	for {
		select {
		case ev := <-events:
			if ev.Type == sshserver.EventAuthFailure && ev.Login == "daemon" {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no auth.failure event for the refused login")
		}
	}
}

// TestDirectModeRoleCheck: a direct-mode agent, reached without a proxy,
// checks its own labels against the roles in the user's SSH certificate.
func TestDirectModeRoleCheck(t *testing.T) {
	a := startAuth(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	role := &authv1.Role{Name: "prod-only", Logins: []string{"root"}, NodeLabels: map[string]*authv1.LabelValues{"env": {Values: []string{"prod"}}}}
	if _, err := a.admin.API().UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: role}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.admin.API().UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "bob", Password: "password-1", Roles: []string{"prod-only"}}); err != nil {
		t.Fatal(err)
	}
	c, err := authapi.NewClient(&authapi.ClientConfig{Addrs: []string{a.addr}, CAPin: a.srv.CAPin()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bob, err := c.Login(ctx, authapi.LoginRequest{User: "bob", Password: "password-1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		labels map[string]string
		skip   bool
		ok     bool
	}{
		{name: "labels-match", labels: map[string]string{"env": "prod"}, ok: true},
		{name: "labels-differ", labels: map[string]string{"env": "test"}, ok: false},
		{name: "no-labels", labels: nil, ok: false},
		{name: "check-skipped", labels: map[string]string{"env": "test"}, skip: true, ok: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := a.token(ctx, authapi.RoleAgent)
			if err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			events := make(chan sshserver.Event, 100)
			ag, err := agent.New(ctx, &agent.Config{
				AuthAddrs: []string{a.addr}, JoinToken: tok, CAPin: a.srv.CAPin(),
				NodeName: "node-" + tc.name, Labels: tc.labels, DirectListener: l, SkipRoleCheck: tc.skip,
				SSH: sshserver.Config{Audit: func(_ context.Context, ev sshserver.Event) {
					select {
					case events <- ev:
					default:
					}
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- ag.Serve(ctx) }()
			defer func() { ag.Close(); <-done }()
			out, err := sshRun(bob, l.Addr().String(), "node-"+tc.name, "root", "echo hello $(whoami)")
			if tc.ok {
				if err != nil || !strings.Contains(out, "hello root") {
					t.Fatalf("granted login failed: %v %q", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("login on a node the roles do not select succeeded: %q", out)
			}
			for {
				select {
				case ev := <-events:
					if ev.Type == sshserver.EventAccessDenied && ev.User == "bob" && strings.Contains(ev.Reason, "do not grant login") {
						// The denial reached the audit log too.
						deadline := time.Now().Add(10 * time.Second)
						for {
							resp, err := a.admin.API().SearchAuditEvents(ctx, &authv1.SearchAuditEventsRequest{Types: []string{"access.denied"}})
							if err != nil {
								t.Fatal(err)
							}
							for _, e := range resp.GetEvents() {
								if e.GetActor() == "bob" && e.GetFields()["node"] == "node-"+tc.name {
									return
								}
							}
							if time.Now().After(deadline) {
								t.Fatalf("no access.denied audit event for bob on node-%s: %v", tc.name, resp.GetEvents())
							}
							time.Sleep(50 * time.Millisecond)
						}
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no access.denied event")
				}
			}
		})
	}
}
