package sshserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
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

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/sshserver"
)

// testLogin is the OS login the tests use: a throwaway account created by
// TestMain when the tests run as root, else the current user.
var testLogin string

// setupLogin creates the throwaway account when running as root. It
// returns a cleanup function.
func setupLogin() (func(), error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, err
		}
		testLogin = u.Username
		return func() {}, nil
	}
	testLogin = "sallyportsshtest"
	if _, err := user.Lookup(testLogin); err == nil {
		return func() {}, nil
	}
	useradd, err := testservice.LookBin("useradd")
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command(useradd, "-m", "-s", "/bin/bash", testLogin).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("useradd: %v: %s", err, out)
	}
	return func() {
		if userdel, err := testservice.LookBin("userdel"); err == nil {
			_ = exec.Command(userdel, "-r", testLogin).Run()
		}
	}, nil
}

func newSigner(tb testing.TB) (ssh.Signer, ed25519.PrivateKey) {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return s, priv
}

// certOpts describes a certificate to sign.
type certOpts struct {
	keyID       string
	principals  []string
	exts        map[string]string
	crit        map[string]string
	validAfter  time.Time
	validBefore time.Time
	certType    uint32
}

func signCert(tb testing.TB, ca ssh.Signer, key ssh.PublicKey, o certOpts) *ssh.Certificate {
	tb.Helper()
	if o.validAfter.IsZero() {
		o.validAfter = time.Now().Add(-time.Minute)
	}
	if o.validBefore.IsZero() {
		o.validBefore = time.Now().Add(time.Hour)
	}
	if o.certType == 0 {
		o.certType = ssh.UserCert
	}
	c := &ssh.Certificate{
		Key:             key,
		Serial:          42,
		CertType:        o.certType,
		KeyId:           o.keyID,
		ValidPrincipals: o.principals,
		ValidAfter:      uint64(o.validAfter.Unix()),
		ValidBefore:     uint64(o.validBefore.Unix()),
		Permissions:     ssh.Permissions{CriticalOptions: o.crit, Extensions: o.exts},
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		tb.Fatal(err)
	}
	return c
}

// fullExts are the extensions a normal user certificate carries.
func fullExts(roles string) map[string]string {
	return map[string]string{
		sshserver.ExtPermitPTY:            "",
		sshserver.ExtPermitPortForwarding: "",
		sshserver.ExtRoles:                roles,
		sshserver.ExtCluster:              "test.cluster",
	}
}

// auditLog collects audit events.
type auditLog struct {
	mu     sync.Mutex
	events []sshserver.Event
	cond   chan struct{}
}

func newAuditLog() *auditLog { return &auditLog{cond: make(chan struct{})} }

func (a *auditLog) add(_ context.Context, ev sshserver.Event) {
	a.mu.Lock()
	a.events = append(a.events, ev)
	close(a.cond)
	a.cond = make(chan struct{})
	a.mu.Unlock()
}

// wait returns the first event that matches, waiting up to 10s.
func (a *auditLog) wait(tb testing.TB, what string, match func(sshserver.Event) bool) sshserver.Event {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		a.mu.Lock()
		for _, ev := range a.events {
			if match(ev) {
				a.mu.Unlock()
				return ev
			}
		}
		c := a.cond
		all := slices.Clone(a.events)
		a.mu.Unlock()
		select {
		case <-c:
		case <-deadline:
			tb.Fatalf("no audit event %s; have %+v", what, all)
		}
	}
}

// env is a running server with its CAs and a client directory.
type env struct {
	srv     *sshserver.Server
	addr    string
	hostCA  ssh.Signer
	userCA  ssh.Signer
	audit   *auditLog
	dir     string
	logs    *bytes.Buffer
	logMu   *sync.Mutex
	nodeKey ssh.Signer
}

// startEnv starts a server on loopback. mod may adjust the config.
func startEnv(tb testing.TB, mod func(*sshserver.Config)) *env {
	tb.Helper()
	e := &env{audit: newAuditLog(), dir: tb.TempDir(), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	e.hostCA, _ = newSigner(tb)
	e.userCA, _ = newSigner(tb)
	e.nodeKey, _ = newSigner(tb)
	hostCert := signCert(tb, e.hostCA, e.nodeKey.PublicKey(), certOpts{keyID: "node-1", principals: []string{"127.0.0.1", "localhost", "node-1"}, certType: ssh.HostCert})
	cfg := &sshserver.Config{
		HostKey:     e.nodeKey,
		HostCert:    hostCert,
		UserCAs:     []ssh.PublicKey{e.userCA.PublicKey()},
		ClusterName: "test.cluster",
		NodeName:    "node-1",
		Labels:      map[string]string{"env": "test"},
		Logger:      testLogger(e),
		Audit:       e.audit.add,
	}
	if mod != nil {
		mod(cfg)
	}
	srv, err := sshserver.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e.srv, e.addr = srv, l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	tb.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, sshserver.ErrServerClosed) {
			tb.Errorf("Serve: %v", err)
		}
		if tb.Failed() {
			e.logMu.Lock()
			tb.Logf("server log:\n%s", e.logs.String())
			e.logMu.Unlock()
		}
	})
	return e
}

// identity is a user key with its certificate, written for OpenSSH.
type identity struct {
	signer   ssh.Signer
	cert     *ssh.Certificate
	keyFile  string
	certFile string
}

// newIdentity makes a key and a certificate signed by ca (nil: no
// certificate, a plain key).
func (e *env) newIdentity(tb testing.TB, name string, ca ssh.Signer, o certOpts) *identity {
	tb.Helper()
	signer, priv := newSigner(tb)
	id := &identity{signer: signer, keyFile: filepath.Join(e.dir, name)}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(id.keyFile, pem.EncodeToMemory(blk), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(id.keyFile+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		tb.Fatal(err)
	}
	if ca != nil {
		id.cert = signCert(tb, ca, signer.PublicKey(), o)
		id.certFile = id.keyFile + "-cert.pub"
		if err := os.WriteFile(id.certFile, ssh.MarshalAuthorizedKey(id.cert), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return id
}

// userIdentity is a normal user: key ID alice, principal testLogin, full
// extensions.
func (e *env) userIdentity(tb testing.TB) *identity {
	return e.newIdentity(tb, "alice", e.userCA, certOpts{keyID: "alice", principals: []string{testLogin}, exts: fullExts("dev")})
}

// sshConfig writes an OpenSSH client config for host "node" and returns
// its path. The known_hosts file trusts hostCA for every host.
func (e *env) sshConfig(tb testing.TB, id *identity, hostCA ssh.PublicKey) string {
	tb.Helper()
	host, port, _ := net.SplitHostPort(e.addr)
	kh := filepath.Join(e.dir, fmt.Sprintf("known_hosts-%p", id))
	if err := os.WriteFile(kh, []byte("@cert-authority * "+string(ssh.MarshalAuthorizedKey(hostCA))), 0o644); err != nil {
		tb.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Host node\n  HostName %s\n  Port %s\n  User %s\n", host, port, testLogin)
	fmt.Fprintf(&b, "  IdentityFile %s\n  IdentitiesOnly yes\n", id.keyFile)
	if id.certFile != "" {
		fmt.Fprintf(&b, "  CertificateFile %s\n", id.certFile)
	}
	fmt.Fprintf(&b, "  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n", kh)
	b.WriteString("  BatchMode yes\n  PasswordAuthentication no\n  KbdInteractiveAuthentication no\n  LogLevel ERROR\n  ConnectTimeout 10\n  ControlMaster no\n  ControlPath none\n  AddKeysToAgent no\n  IdentityAgent none\n")
	path := filepath.Join(e.dir, fmt.Sprintf("ssh_config-%p", id))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// run runs a program with a timeout and returns stdout, stderr and the
// exit code.
func run(tb testing.TB, name string, args ...string) (string, string, int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testservice.Bin(tb, name), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			tb.Fatalf("%s %v: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// goClient dials the server with a Go SSH client using id.
func (e *env) goClient(tb testing.TB, login string, id *identity) (*ssh.Client, error) {
	tb.Helper()
	signer := id.signer
	if id.cert != nil {
		cs, err := ssh.NewCertSigner(id.cert, id.signer)
		if err != nil {
			tb.Fatal(err)
		}
		signer = cs
	}
	hostCA := e.hostCA.PublicKey()
	hk := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
		return string(auth.Marshal()) == string(hostCA.Marshal())
	}}
	return ssh.Dial("tcp", e.addr, &ssh.ClientConfig{
		User:              login,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   hk.CheckHostKey,
		HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01},
		Timeout:           10 * time.Second,
	})
}
