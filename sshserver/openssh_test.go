package sshserver_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/sshserver"
)

// TestOpenSSHExec runs commands with the OpenSSH client, which verifies
// the node's host certificate through the host CA.
func TestOpenSSHExec(t *testing.T) {
	e := startEnv(t, nil)
	id := e.userIdentity(t)
	cfg := e.sshConfig(t, id, e.hostCA.PublicKey())

	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantCode int
	}{
		{name: "output and login", args: []string{"echo hello; id -un; echo $HOME"}, wantOut: "hello\n" + testLogin + "\n" + homeOf(t, testLogin) + "\n"},
		{name: "stderr and stdout", args: []string{"echo out; echo err >&2; exit 0"}, wantOut: "out\n"},
		{name: "exit status", args: []string{"exit 7"}, wantCode: 7},
		{name: "env allow-list", args: []string{"-o", "SetEnv=LC_FOO=bar LANG=C.UTF-8 EVIL=x", "echo $LC_FOO-$LANG-$EVIL-"}, wantOut: "bar-C.UTF-8--\n"},
		{name: "stdin", args: []string{"-o", "LogLevel=ERROR", "wc -c"}, wantOut: "0\n"},
		{name: "ssh connection variable", args: []string{"echo ${SSH_CONNECTION%% *}"}, wantOut: "127.0.0.1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-F", cfg, "-n", "node"}, tt.args...)
			if tt.args[0] == "-o" {
				args = append([]string{"-F", cfg, "-n", tt.args[0], tt.args[1], "node"}, tt.args[2:]...)
			}
			out, stderr, code := run(t, "ssh", args...)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tt.wantCode, stderr)
			}
			if out != tt.wantOut {
				t.Fatalf("stdout %q, want %q; stderr: %s", out, tt.wantOut, stderr)
			}
		})
	}

	// The audit trail of the "exit 7" session: start, exec, end with 7,
	// the client's address and the certificate's key ID.
	end := e.audit.wait(t, "session.end with exit 7", func(ev sshserver.Event) bool {
		return ev.Type == sshserver.EventSessionEnd && ev.ExitCode == 7
	})
	exec := e.audit.wait(t, "exec of exit 7", func(ev sshserver.Event) bool {
		return ev.Type == sshserver.EventExec && ev.Command == "exit 7"
	})
	start := e.audit.wait(t, "session.start", func(ev sshserver.Event) bool {
		return ev.Type == sshserver.EventSessionStart && ev.SessionID == end.SessionID
	})
	for _, ev := range []sshserver.Event{start, exec, end} {
		if ev.User != "alice" || ev.Login != testLogin || ev.Node != "node-1" || ev.SessionID != end.SessionID {
			t.Errorf("event %+v: want user alice, login %s, node node-1, session %s", ev, testLogin, end.SessionID)
		}
		if h, _, _ := net.SplitHostPort(ev.RemoteAddr); h != "127.0.0.1" {
			t.Errorf("event %s remote %q, want the client's 127.0.0.1 address", ev.Type, ev.RemoteAddr)
		}
	}
}

// TestOpenSSHCipher checks that the OpenSSH client, which lists
// chacha20-poly1305 first, ends up on an AES cipher by default, and on a
// configured cipher when Config.Ciphers names one.
func TestOpenSSHCipher(t *testing.T) {
	tests := []struct {
		name    string
		ciphers []string
		args    []string
		want    string
	}{
		// OpenSSH lists aes128-ctr before GCM; the server offers a
		// client that has GCM nothing else.
		{name: "default: GCM for a stock client", want: "aes128-gcm@openssh.com"},
		{name: "default: GCM for a client preferring it", args: []string{"-o", "Ciphers=chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes128-ctr"}, want: "aes128-gcm@openssh.com"},
		{name: "default: a client with CTR only", args: []string{"-o", "Ciphers=aes256-ctr"}, want: "aes256-ctr"},
		{name: "configured list: client order", ciphers: []string{"aes128-gcm@openssh.com", "aes128-ctr"}, want: "aes128-ctr"},
		{name: "configured chacha20", ciphers: []string{"chacha20-poly1305@openssh.com"}, want: "chacha20-poly1305@openssh.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, func(c *sshserver.Config) { c.Ciphers = tt.ciphers })
			cfg := e.sshConfig(t, e.userIdentity(t), e.hostCA.PublicKey())
			args := append([]string{"-F", cfg, "-n", "-v"}, tt.args...)
			_, stderr, code := run(t, "ssh", append(args, "node", "true")...)
			if code != 0 {
				t.Fatalf("ssh exit %d: %s", code, stderr)
			}
			want := "kex: server->client cipher: " + tt.want + " "
			if !strings.Contains(stderr, want) {
				t.Fatalf("ssh -v does not show %q:\n%s", want, stderr)
			}
		})
	}
}

func homeOf(t *testing.T, login string) string {
	out, _, code := run(t, "getent", "passwd", login)
	if code != 0 {
		t.Fatalf("getent passwd %s failed", login)
	}
	f := strings.Split(strings.TrimSpace(out), ":")
	return f[5]
}

// TestOpenSSHExitSignal: a command killed by a signal is reported as
// exit-signal and audited with the signal's name.
func TestOpenSSHExitSignal(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.sshConfig(t, e.userIdentity(t), e.hostCA.PublicKey())
	_, stderr, code := run(t, "ssh", "-F", cfg, "-n", "node", "kill -TERM $$")
	if code != 255 {
		t.Fatalf("exit code %d, want 255 (killed by a signal); stderr %s", code, stderr)
	}
	ev := e.audit.wait(t, "session.end by signal", func(ev sshserver.Event) bool { return ev.Type == sshserver.EventSessionEnd })
	if ev.ExitSignal != "TERM" || ev.ExitCode != -1 {
		t.Fatalf("session.end %+v, want signal TERM, code -1", ev)
	}
}

// TestOpenSSHRefused: each refusal fails the client with "Permission
// denied" and leaves an auth.failure event that says why.
func TestOpenSSHRefused(t *testing.T) {
	e := startEnv(t, nil)
	otherCA, _ := newSigner(t)
	tests := []struct {
		name   string
		id     func() *identity
		hostCA ssh.PublicKey
		want   string // client stderr
		reason error  // audit reason
	}{
		{name: "login not in principals", id: func() *identity {
			return e.newIdentity(t, "np", e.userCA, certOpts{keyID: "bob", principals: []string{"someoneelse"}, exts: fullExts("")})
		}, want: "Permission denied (publickey)", reason: sshserver.ErrLoginNotAllowed},
		{name: "expired certificate", id: func() *identity {
			return e.newIdentity(t, "exp", e.userCA, certOpts{keyID: "carol", principals: []string{testLogin}, exts: fullExts(""),
				validAfter: time.Now().Add(-2 * time.Hour), validBefore: time.Now().Add(-time.Hour)})
		}, want: "Permission denied (publickey)", reason: sshserver.ErrCertExpired},
		{name: "certificate from another CA", id: func() *identity {
			return e.newIdentity(t, "other", otherCA, certOpts{keyID: "mallory", principals: []string{testLogin}, exts: fullExts("")})
		}, want: "Permission denied (publickey)", reason: sshserver.ErrUnknownAuthority},
		{name: "plain key", id: func() *identity {
			return e.newIdentity(t, "plain", nil, certOpts{})
		}, want: "Permission denied (publickey)", reason: sshserver.ErrNotCertificate},
		{name: "another cluster", id: func() *identity {
			exts := fullExts("")
			exts[sshserver.ExtCluster] = "other.cluster"
			return e.newIdentity(t, "cluster", e.userCA, certOpts{keyID: "dave", principals: []string{testLogin}, exts: exts})
		}, want: "Permission denied (publickey)", reason: sshserver.ErrClusterMismatch},
		{name: "source address", id: func() *identity {
			return e.newIdentity(t, "src", e.userCA, certOpts{keyID: "erin", principals: []string{testLogin}, exts: fullExts(""),
				crit: map[string]string{sshserver.OptSourceAddress: "10.0.0.0/8"}})
		}, want: "Permission denied (publickey)", reason: sshserver.ErrSourceAddress},
		{name: "host certificate from an untrusted host CA", id: func() *identity {
			return e.userIdentity(t)
		}, hostCA: otherCA.PublicKey(), want: "Host key verification failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.id()
			hostCA := tt.hostCA
			if hostCA == nil {
				hostCA = e.hostCA.PublicKey()
			}
			cfg := e.sshConfig(t, id, hostCA)
			out, stderr, code := run(t, "ssh", "-F", cfg, "-n", "node", "echo SHOULD-NOT-RUN")
			if code != 255 || strings.Contains(out, "SHOULD-NOT-RUN") {
				t.Fatalf("exit %d, stdout %q: want refusal", code, out)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr %q, want %q", stderr, tt.want)
			}
			if tt.reason == nil {
				return
			}
			e.audit.wait(t, "auth.failure "+tt.reason.Error(), func(ev sshserver.Event) bool {
				return ev.Type == sshserver.EventAuthFailure && ev.Reason == tt.reason.Error() && ev.Login == testLogin &&
					(id.cert == nil || ev.User == id.cert.KeyId)
			})
		})
	}
}

// TestOpenSSHPTY drives an interactive shell through tmux: the prompt,
// the terminal size seen by the remote side, a window change and the exit
// status.
func TestOpenSSHPTY(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.sshConfig(t, e.userIdentity(t), e.hostCA.PublicKey())
	tmux := testservice.Bin(t, "tmux")
	sock := filepath.Join(e.dir, "tmux.sock")
	statusFile := filepath.Join(e.dir, "status")
	sshCmd := fmt.Sprintf("%s -F %s -tt node; echo $? > %s; sleep 30", testservice.Bin(t, "ssh"), cfg, statusFile)
	tm := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	tm("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", sshCmd)
	t.Cleanup(func() { _ = exec.Command(tmux, "-S", sock, "kill-server").Run() })
	waitPane := func(want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		var pane string
		for time.Now().Before(deadline) {
			pane = tm("capture-pane", "-p", "-t", "t")
			if strings.Contains(pane, want) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("pane never showed %q:\n%s", want, pane)
	}
	tm("send-keys", "-t", "t", "echo tty=$(tty | cut -c1-8) term=$TERM; echo SIZE $(stty size) $((40+2))", "Enter")
	waitPane("SIZE 30 100 42")
	waitPane("tty=/dev/pts term=")
	tm("resize-window", "-t", "t", "-x", "120", "-y", "40")
	tm("send-keys", "-t", "t", "clear; echo SIZE $(stty size) $((40+3))", "Enter")
	waitPane("SIZE 40 120 43")
	tm("send-keys", "-t", "t", "exit 3", "Enter")
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(statusFile)
		if strings.TrimSpace(string(b)) == "3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh exit status %q, want 3", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ev := e.audit.wait(t, "pty session.end", func(ev sshserver.Event) bool { return ev.Type == sshserver.EventSessionEnd })
	if !ev.PTY || ev.ExitCode != 3 {
		t.Fatalf("session.end %+v, want PTY and exit 3", ev)
	}
}

func writeRandomFile(t *testing.T, path string, size int) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	seed := uint64(time.Now().UnixNano())
	for written := 0; written < size; written += len(buf) {
		for i := 0; i < len(buf); i += 8 {
			seed = seed*6364136223846793005 + 1442695040888963407
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(seed >> (8 * j))
			}
		}
		f.Write(buf)
		h.Write(buf)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// remoteDir makes a directory the login owns (sessions run as the login).
func remoteDir(t *testing.T, e *env) string {
	t.Helper()
	dir := filepath.Join(e.dir, "remote")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", testLogin, dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	for _, d := range []string{e.dir, filepath.Dir(e.dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestOpenSSHSCP copies a 10 MiB file to the node and back with scp
// (OpenSSH 9 scp speaks SFTP) and compares checksums.
func TestOpenSSHSCP(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.sshConfig(t, e.userIdentity(t), e.hostCA.PublicKey())
	rdir := remoteDir(t, e)
	src := filepath.Join(e.dir, "src.bin")
	sum := writeRandomFile(t, src, 10<<20)

	if _, stderr, code := run(t, "scp", "-F", cfg, "-q", src, "node:"+rdir+"/up.bin"); code != 0 {
		t.Fatalf("scp upload: exit %d: %s", code, stderr)
	}
	if got := sha256File(t, filepath.Join(rdir, "up.bin")); got != sum {
		t.Fatalf("uploaded file checksum %s, want %s", got, sum)
	}
	out, _, _ := run(t, "stat", "-c", "%U", filepath.Join(rdir, "up.bin"))
	if strings.TrimSpace(out) != testLogin {
		t.Fatalf("uploaded file owned by %q, want %q", out, testLogin)
	}
	back := filepath.Join(e.dir, "back.bin")
	if _, stderr, code := run(t, "scp", "-F", cfg, "-q", "node:"+rdir+"/up.bin", back); code != 0 {
		t.Fatalf("scp download: exit %d: %s", code, stderr)
	}
	if got := sha256File(t, back); got != sum {
		t.Fatalf("downloaded file checksum %s, want %s", got, sum)
	}
	e.audit.wait(t, "sftp subsystem session", func(ev sshserver.Event) bool {
		return ev.Type == sshserver.EventSessionStart && ev.Action == sshserver.ActionSubsystem && ev.Command == "sftp"
	})
}

// TestOpenSSHSFTPBatch runs sftp in batch mode.
func TestOpenSSHSFTPBatch(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.sshConfig(t, e.userIdentity(t), e.hostCA.PublicKey())
	rdir := remoteDir(t, e)
	src := filepath.Join(e.dir, "a.txt")
	if err := os.WriteFile(src, []byte("sftp batch content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(e.dir, "b.txt")
	batch := filepath.Join(e.dir, "batch")
	script := fmt.Sprintf("cd %s\nput %s a.txt\nmkdir sub\nrename a.txt sub/c.txt\nls sub\nget sub/c.txt %s\nrm sub/c.txt\nrmdir sub\n", rdir, src, back)
	if err := os.WriteFile(batch, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "sftp", "-F", cfg, "-b", batch, "node")
	if code != 0 {
		t.Fatalf("sftp: exit %d: %s %s", code, out, stderr)
	}
	if !strings.Contains(out, "sub/c.txt") {
		t.Fatalf("sftp ls output %q lacks sub/c.txt", out)
	}
	got, err := os.ReadFile(back)
	if err != nil || string(got) != "sftp batch content\n" {
		t.Fatalf("downloaded %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(rdir, "sub")); !os.IsNotExist(err) {
		t.Fatalf("sub still exists: %v", err)
	}
}

// TestOpenSSHPortForward: ssh -L to a local HTTP server works with
// permit-port-forwarding and is refused (with an audit event) without it.
func TestOpenSSHPortForward(t *testing.T) {
	e := startEnv(t, nil)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello through the tunnel")
	})}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })

	noFwd := fullExts("")
	delete(noFwd, sshserver.ExtPermitPortForwarding)
	tests := []struct {
		name  string
		exts  map[string]string
		allow bool
	}{
		{name: "allowed with permit-port-forwarding", exts: fullExts(""), allow: true},
		{name: "refused without permit-port-forwarding", exts: noFwd},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := e.newIdentity(t, "fwd"+strconv.Itoa(i), e.userCA, certOpts{keyID: "fwd" + strconv.Itoa(i), principals: []string{testLogin}, exts: tt.exts})
			cfg := e.sshConfig(t, id, e.hostCA.PublicKey())
			lport := testservice.FreePort(t)
			p := testservice.Start(t, testservice.Bin(t, "ssh"), []string{"-F", cfg, "-N", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=INFO",
				"-L", fmt.Sprintf("127.0.0.1:%d:%s", lport, hl.Addr()), "node"}, nil, fmt.Sprintf("127.0.0.1:%d", lport))
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", lport))
			if tt.allow {
				if err != nil {
					t.Fatalf("GET through ssh -L: %v\n%s", err, p.Output())
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != "hello through the tunnel" {
					t.Fatalf("body %q", body)
				}
				ev := e.audit.wait(t, "port-forward", func(ev sshserver.Event) bool {
					return ev.Type == sshserver.EventPortForward && ev.User == id.cert.KeyId
				})
				if ev.Target != hl.Addr().String() {
					t.Fatalf("port-forward target %q, want %q", ev.Target, hl.Addr())
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET through a refused forward succeeded: %s", resp.Status)
			}
			e.audit.wait(t, "access.denied port-forward", func(ev sshserver.Event) bool {
				return ev.Type == sshserver.EventAccessDenied && ev.Action == sshserver.ActionPortForward && ev.User == id.cert.KeyId &&
					strings.Contains(ev.Reason, sshserver.ExtPermitPortForwarding)
			})
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(p.Output(), "administratively prohibited") {
				if time.Now().After(deadline) {
					t.Fatalf("ssh output lacks the refusal: %s", p.Output())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
