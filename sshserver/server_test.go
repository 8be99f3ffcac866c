package sshserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/file"
	"github.com/sallyport/sallyport/sshserver"
)

func TestNewValidates(t *testing.T) {
	key, _ := newSigner(t)
	ca, _ := newSigner(t)
	other, _ := newSigner(t)
	userCert := signCert(t, ca, key.PublicKey(), certOpts{keyID: "u", principals: []string{"x"}})
	otherHost := signCert(t, ca, other.PublicKey(), certOpts{keyID: "h", certType: ssh.HostCert})
	tests := []struct {
		name string
		cfg  *sshserver.Config
	}{
		{name: "nil config", cfg: nil},
		{name: "no host key", cfg: &sshserver.Config{UserCAs: []ssh.PublicKey{ca.PublicKey()}}},
		{name: "no user CA", cfg: &sshserver.Config{HostKey: key}},
		{name: "nil user CA", cfg: &sshserver.Config{HostKey: key, UserCAs: []ssh.PublicKey{nil}}},
		{name: "user cert as host cert", cfg: &sshserver.Config{HostKey: key, HostCert: userCert, UserCAs: []ssh.PublicKey{ca.PublicKey()}}},
		{name: "host cert of another key", cfg: &sshserver.Config{HostKey: key, HostCert: otherHost, UserCAs: []ssh.PublicKey{ca.PublicKey()}}},
		{name: "negative idle timeout", cfg: &sshserver.Config{HostKey: key, UserCAs: []ssh.PublicKey{ca.PublicKey()}, IdleTimeout: -1}},
		{name: "empty cipher list", cfg: &sshserver.Config{HostKey: key, UserCAs: []ssh.PublicKey{ca.PublicKey()}, Ciphers: []string{}}},
		{name: "unknown cipher", cfg: &sshserver.Config{HostKey: key, UserCAs: []ssh.PublicKey{ca.PublicKey()}, Ciphers: []string{"rot13"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := sshserver.New(tt.cfg); !errors.Is(err, sshserver.ErrConfig) {
				t.Fatalf("New: %v, want ErrConfig", err)
			}
		})
	}
	if _, err := sshserver.New(&sshserver.Config{HostKey: key, UserCAs: []ssh.PublicKey{ca.PublicKey()}}); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
}

// TestAuthorizeRoles plugs a role check into Authorize: exec needs role
// "admin" from the certificate's roles extension.
func TestAuthorizeRoles(t *testing.T) {
	var seen []sshserver.AccessRequest
	e := startEnv(t, func(c *sshserver.Config) {
		c.Authorize = func(ctx context.Context, req sshserver.AccessRequest) error {
			seen = append(seen, req)
			if req.Labels["env"] == "test" && slices.Contains(req.Roles, "admin") {
				return nil
			}
			return errors.New("role admin required on env=test")
		}
	})
	tests := []struct {
		name  string
		roles string
		allow bool
	}{
		{name: "admin allowed", roles: "dev,admin", allow: true},
		{name: "dev refused", roles: "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := e.newIdentity(t, "r"+tt.roles, e.userCA, certOpts{keyID: "user-" + tt.roles, principals: []string{testLogin}, exts: fullExts(tt.roles)})
			cfg := e.sshConfig(t, id, e.hostCA.PublicKey())
			out, stderr, code := run(t, "ssh", "-F", cfg, "-n", "node", "echo ran")
			if tt.allow {
				if code != 0 || out != "ran\n" {
					t.Fatalf("exit %d, out %q, stderr %s", code, out, stderr)
				}
				return
			}
			if code == 0 || strings.Contains(out, "ran") {
				t.Fatalf("refused exec ran: exit %d, out %q", code, out)
			}
			ev := e.audit.wait(t, "access.denied exec", func(ev sshserver.Event) bool {
				return ev.Type == sshserver.EventAccessDenied && ev.User == "user-dev"
			})
			if ev.Action != sshserver.ActionExec || ev.Command != "echo ran" || !strings.Contains(ev.Reason, "role admin required") {
				t.Fatalf("access.denied event %+v", ev)
			}
		})
	}
	if len(seen) != 2 {
		t.Fatalf("Authorize saw %d requests, want 2", len(seen))
	}
	r := seen[0]
	if r.User != "user-dev,admin" || r.Login != testLogin || r.Node != "node-1" || r.Action != sshserver.ActionExec ||
		!slices.Equal(r.Principals, []string{testLogin}) || r.CertSerial != 42 || r.SessionID == "" {
		t.Fatalf("access request %+v", r)
	}
}

// TestPTYNeedsPermitPTY: without permit-pty a terminal is refused; the
// built-in check runs even with no Authorize hook.
func TestPTYNeedsPermitPTY(t *testing.T) {
	e := startEnv(t, nil)
	exts := fullExts("")
	delete(exts, sshserver.ExtPermitPTY)
	id := e.newIdentity(t, "nopty", e.userCA, certOpts{keyID: "nopty", principals: []string{testLogin}, exts: exts})
	c, err := e.goClient(t, testLogin, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, nil); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err == nil {
		t.Fatal("shell with a terminal started without permit-pty")
	}
	e.audit.wait(t, "access.denied pty", func(ev sshserver.Event) bool {
		return ev.Type == sshserver.EventAccessDenied && ev.PTY && strings.Contains(ev.Reason, "permit-pty")
	})
}

// TestForceCommand: the force-command critical option replaces the
// command and passes the original in SSH_ORIGINAL_COMMAND.
func TestForceCommand(t *testing.T) {
	e := startEnv(t, nil)
	id := e.newIdentity(t, "forced", e.userCA, certOpts{keyID: "forced", principals: []string{testLogin}, exts: fullExts(""),
		crit: map[string]string{sshserver.OptForceCommand: `echo "forced:$SSH_ORIGINAL_COMMAND"`}})
	cfg := e.sshConfig(t, id, e.hostCA.PublicKey())
	out, stderr, code := run(t, "ssh", "-F", cfg, "-n", "node", "echo asked")
	if code != 0 || out != "forced:echo asked\n" {
		t.Fatalf("exit %d, out %q, stderr %s", code, out, stderr)
	}
}

// TestRecorderSpool wires a real recorder.Spool with the file store: the
// terminal output and the window size end up in the uploaded recording.
func TestRecorderSpool(t *testing.T) {
	ctx := context.Background()
	storeDir := t.TempDir()
	store, err := file.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	spool, err := recorder.Open(ctx, &recorder.Config{Dir: t.TempDir(), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	names := make(chan string, 1)
	e := startEnv(t, func(c *sshserver.Config) {
		c.Recorder = func(ctx context.Context, s sshserver.SessionInfo) (sshserver.Recording, error) {
			rec, err := spool.NewSession(ctx, recorder.Meta{ID: s.ID, User: s.User, Login: s.Login, Node: s.Node,
				Remote: s.RemoteAddr, Command: s.Command, Start: s.Start, Width: s.Width, Height: s.Height, Term: s.Term})
			if err == nil {
				names <- rec.Name()
			}
			return rec, err
		}
	})
	cfg := e.sshConfig(t, e.userIdentity(t), e.hostCA.PublicKey())

	// ssh -tt in a Go pseudo-terminal of 33x101, resized to 40x120 during
	// the session (the kernel sends ssh SIGWINCH, ssh sends window-change).
	cmd := exec.Command(testservice.Bin(t, "ssh"), "-F", cfg, "-tt", "node",
		`stty size; echo recorded-$((6*7)); while [ "$(stty size)" = "33 101" ]; do sleep 0.05; done; stty size; echo done-$((1+1))`)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 101})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var mu sync.Mutex
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitOut := func(want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			mu.Lock()
			got := out.String()
			mu.Unlock()
			if strings.Contains(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("client output %q lacks %q", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitOut("recorded-42")
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	waitOut("done-2")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ssh: %v", err)
	}
	<-copied
	mu.Lock()
	got := out.String()
	mu.Unlock()
	if !strings.Contains(got, "33 101") || !strings.Contains(got, "40 120") {
		t.Fatalf("client output %q: want sizes 33 101 then 40 120", got)
	}
	e.audit.wait(t, "session.end", func(ev sshserver.Event) bool { return ev.Type == sshserver.EventSessionEnd })
	name := <-names
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := spool.Shutdown(sctx); err != nil {
		t.Fatalf("spool shutdown: %v", err)
	}
	var cast bytes.Buffer
	if _, err := recorder.Export(ctx, &cast, store, name); err != nil {
		t.Fatalf("export %s: %v", name, err)
	}
	rec := cast.String()
	for _, want := range []string{`"width":101`, `"height":33`, "recorded-42", "33 101", `"r", "120x40"`, "40 120", `"user":"alice"`, `"login":"` + testLogin + `"`, "sallyport:end"} {
		if !strings.Contains(rec, want) {
			t.Errorf("recording lacks %q:\n%s", want, rec)
		}
	}
}

// TestShutdownWaitsForSessions: Shutdown lets a running command finish,
// refuses new connections, and a second Close reports net.ErrClosed.
func TestShutdownWaitsForSessions(t *testing.T) {
	e := startEnv(t, nil)
	id := e.userIdentity(t)
	c, err := e.goClient(t, testLogin, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sess.Stdout = &out
	if err := sess.Start("sleep 0.5; echo finished"); err != nil {
		t.Fatal(err)
	}
	e.audit.wait(t, "session.start", func(ev sshserver.Event) bool { return ev.Type == sshserver.EventSessionStart })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := sess.Wait(); err != nil {
		t.Fatalf("session: %v", err)
	}
	if out.String() != "finished\n" {
		t.Fatalf("output %q", out.String())
	}
	if _, err := e.goClient(t, testLogin, id); err == nil {
		t.Fatal("connected after Shutdown")
	}
	if err := e.srv.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Close after Shutdown: %v, want net.ErrClosed", err)
	}
}

// TestShutdownDeadline: when ctx ends first, Shutdown closes the
// connection, the command is ended and Shutdown returns ctx's error.
func TestShutdownDeadline(t *testing.T) {
	e := startEnv(t, func(c *sshserver.Config) { c.KillGrace = 100 * time.Millisecond })
	c, err := e.goClient(t, testLogin, e.userIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("sleep 60"); err != nil {
		t.Fatal(err)
	}
	e.audit.wait(t, "session.start", func(ev sshserver.Event) bool { return ev.Type == sshserver.EventSessionStart })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	ev := e.audit.wait(t, "session.end", func(ev sshserver.Event) bool { return ev.Type == sshserver.EventSessionEnd })
	if ev.ExitSignal != "HUP" && ev.ExitSignal != "KILL" {
		t.Fatalf("session.end %+v, want ended by HUP or KILL", ev)
	}
}

// remoteConn is a conn whose RemoteAddr is the original client's, as a
// reverse-tunnel stream reports it.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// TestServeConn serves a single connection handed over by a caller (as
// the reverse tunnel does): its RemoteAddr is what audit events, the
// source-address option and SSH_CONNECTION see, and cancelling its
// context closes it.
func TestServeConn(t *testing.T) {
	e := startEnv(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client := &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 5555}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- e.srv.ServeConn(ctx, remoteConn{nc, client})
	}()
	e2 := *e
	e2.addr = l.Addr().String()
	id := e.newIdentity(t, "tunnel", e.userCA, certOpts{keyID: "tunnel-user", principals: []string{testLogin}, exts: fullExts(""),
		crit: map[string]string{sshserver.OptSourceAddress: "203.0.113.0/24"}})
	c, err := e2.goClient(t, testLogin, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := mustSession(t, c).Output("echo via-serveconn ${SSH_CONNECTION%% *}")
	if err != nil || string(out) != "via-serveconn 203.0.113.7\n" {
		t.Fatalf("output %q, %v", out, err)
	}
	ev := e.audit.wait(t, "session.start", func(ev sshserver.Event) bool { return ev.Type == sshserver.EventSessionStart })
	if ev.RemoteAddr != client.String() {
		t.Fatalf("audit remote %q, want %q", ev.RemoteAddr, client)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeConn: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return after cancel")
	}
	if err := c.Wait(); err == nil {
		t.Fatal("client connection still up after cancel")
	}
}

// TestServeConnAuthError: ServeConn returns the *AuthError of a refused
// login, with the reason.
func TestServeConnAuthError(t *testing.T) {
	e := startEnv(t, nil)
	tests := []struct {
		name string
		opts certOpts
		want error
	}{
		{name: "login not in principals", opts: certOpts{keyID: "zed", principals: []string{"not-granted"}}, want: sshserver.ErrLoginNotAllowed},
		{name: "no principals", opts: certOpts{keyID: "zed"}, want: sshserver.ErrLoginNotAllowed},
		{name: "host certificate", opts: certOpts{keyID: "zed", principals: []string{testLogin}, certType: ssh.HostCert}, want: sshserver.ErrNotUserCert},
		{name: "not yet valid", opts: certOpts{keyID: "zed", principals: []string{testLogin},
			validAfter: time.Now().Add(time.Hour), validBefore: time.Now().Add(2 * time.Hour)}, want: sshserver.ErrCertNotYetValid},
		{name: "unknown critical option", opts: certOpts{keyID: "zed", principals: []string{testLogin},
			crit: map[string]string{"verify-required": ""}}, want: sshserver.ErrCriticalOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			done := make(chan error, 1)
			go func() {
				sconn, err := l.Accept()
				if err != nil {
					done <- err
					return
				}
				done <- e.srv.ServeConn(context.Background(), sconn)
			}()
			cconn, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			id := e.newIdentity(t, "wrong", e.userCA, tt.opts)
			cs, _ := ssh.NewCertSigner(id.cert, id.signer)
			_, _, _, err = ssh.NewClientConn(cconn, "pipe", &ssh.ClientConfig{User: testLogin, Auth: []ssh.AuthMethod{ssh.PublicKeys(cs)},
				HostKeyCallback: ssh.InsecureIgnoreHostKey()})
			if err == nil {
				t.Fatal("login accepted")
			}
			cconn.Close()
			var ae *sshserver.AuthError
			if err := <-done; !errors.As(err, &ae) || !errors.Is(err, tt.want) || ae.User != "zed" || ae.Login != testLogin {
				t.Fatalf("ServeConn: %v, want *AuthError for zed wrapping %v", err, tt.want)
			}
		})
	}
}

// TestIdleTimeout closes a connection whose channels carry no data.
func TestIdleTimeout(t *testing.T) {
	e := startEnv(t, func(c *sshserver.Config) { c.IdleTimeout = 300 * time.Millisecond })
	c, err := e.goClient(t, testLogin, e.userIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection was not closed")
	}
}

// TestKeepAlive: the server's keepalive requests reach the client.
func TestKeepAlive(t *testing.T) {
	e := startEnv(t, func(c *sshserver.Config) { c.KeepAliveInterval = 50 * time.Millisecond })
	id := e.userIdentity(t)
	cs, _ := ssh.NewCertSigner(id.cert, id.signer)
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, e.addr, &ssh.ClientConfig{User: testLogin, Auth: []ssh.AuthMethod{ssh.PublicKeys(cs)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for ch := range chans {
			ch.Reject(ssh.Prohibited, "")
		}
	}()
	select {
	case r := <-reqs:
		if r.Type != "keepalive@openssh.com" || !r.WantReply {
			t.Fatalf("request %q want-reply %v", r.Type, r.WantReply)
		}
		r.Reply(false, nil)
	case <-time.After(5 * time.Second):
		t.Fatal("no keepalive")
	}
	conn.Close()
	for range reqs {
	}
}

func mustSession(t testing.TB, c *ssh.Client) *ssh.Session {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSFTPInProcess serves sftp with github.com/pkg/sftp
// (SFTPServer "internal-sftp") to OpenSSH's sftp, logged in as the
// server's own user; for another login it is refused, since the process
// cannot switch users for an in-process server.
func TestSFTPInProcess(t *testing.T) {
	e := startEnv(t, func(c *sshserver.Config) { c.SFTPServer = sshserver.InternalSFTP })
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	id := e.newIdentity(t, "self", e.userCA, certOpts{keyID: "self", principals: []string{me.Username, testLogin}, exts: fullExts("")})
	cfg := e.sshConfig(t, id, e.hostCA.PublicKey())
	dir := t.TempDir()
	src := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(src, []byte("in-process sftp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	batch := filepath.Join(dir, "batch")
	script := fmt.Sprintf("put %s %s/up.txt\nget %s/up.txt %s/down.txt\n", src, dir, dir, dir)
	if err := os.WriteFile(batch, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "sftp", "-F", cfg, "-o", "User="+me.Username, "-b", batch, "node")
	if code != 0 {
		t.Fatalf("sftp: exit %d: %s %s", code, out, stderr)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "down.txt")); err != nil || string(got) != "in-process sftp\n" {
		t.Fatalf("downloaded %q, %v", got, err)
	}
	if me.Username == testLogin {
		return
	}
	_, _, code = run(t, "sftp", "-F", cfg, "-b", "/dev/null", "node")
	if code == 0 {
		t.Fatalf("in-process sftp as another login %s succeeded", testLogin)
	}
}

// TestKeepAliveTimeout: a client that stops answering keepalives is
// disconnected after KeepAliveCountMax intervals.
func TestKeepAliveTimeout(t *testing.T) {
	e := startEnv(t, func(c *sshserver.Config) {
		c.KeepAliveInterval = 50 * time.Millisecond
		c.KeepAliveCountMax = 2
	})
	id := e.userIdentity(t)
	cs, _ := ssh.NewCertSigner(id.cert, id.signer)
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, e.addr, &ssh.ClientConfig{User: testLogin, Auth: []ssh.AuthMethod{ssh.PublicKeys(cs)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		for ch := range chans {
			ch.Reject(ssh.Prohibited, "")
		}
	}()
	// Take the keepalive requests but never answer them.
	var unanswered []*ssh.Request
	done := make(chan error, 1)
	go func() { done <- conn.Wait() }()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r, ok := <-reqs:
			if ok {
				unanswered = append(unanswered, r)
			}
			continue
		case <-done:
		case <-deadline:
			t.Fatal("unresponsive client not disconnected")
		}
		break
	}
	if len(unanswered) == 0 {
		t.Fatal("no keepalive seen before the disconnect")
	}
}

// TestHandshakeTimeout: a client that never speaks is disconnected.
func TestHandshakeTimeout(t *testing.T) {
	e := startEnv(t, func(c *sshserver.Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

// TestSignal delivers a "signal" request to the command, which reports
// exit-signal.
func TestSignal(t *testing.T) {
	e := startEnv(t, nil)
	c, err := e.goClient(t, testLogin, e.userIdentity(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := mustSession(t, c)
	if err := s.Start("sleep 30"); err != nil {
		t.Fatal(err)
	}
	e.audit.wait(t, "session.start", func(ev sshserver.Event) bool { return ev.Type == sshserver.EventSessionStart })
	if err := s.Signal(ssh.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	err = s.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "USR1" {
		t.Fatalf("Wait: %v, want exit by signal USR1", err)
	}
}

// TestPTYBackgroundProcess: a shell that leaves a background process
// holding the terminal still ends the session.
func TestPTYBackgroundProcess(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.sshConfig(t, e.userIdentity(t), e.hostCA.PublicKey())
	start := time.Now()
	out, stderr, code := run(t, "ssh", "-F", cfg, "-tt", "node", "sleep 30 & echo started-bg")
	if code != 0 || !strings.Contains(out, "started-bg") {
		t.Fatalf("exit %d, out %q, stderr %s", code, out, stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("session took %v", d)
	}
}
