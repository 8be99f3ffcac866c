package authapi

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/internal/testservice"
)

// sshServer is a minimal SSH server (x/crypto/ssh) that presents a host
// certificate and accepts user certificates of one CA; "exec" requests are
// answered with "login=<user> cmd=<command>".
func sshServer(t *testing.T, host *Credentials) string {
	t.Helper()
	checker := &ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool {
		return bytes.Equal(k.Marshal(), host.SSHUserCAs[0].Marshal())
	}}
	conf := &ssh.ServerConfig{PublicKeyCallback: checker.Authenticate}
	conf.AddHostKey(host.SSHSigner)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				sc, chans, reqs, err := ssh.NewServerConn(c, conf)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					ch, creqs, err := nc.Accept()
					if err != nil {
						return
					}
					for r := range creqs {
						if r.Type != "exec" {
							r.Reply(false, nil)
							continue
						}
						var cmd struct{ Command string }
						ssh.Unmarshal(r.Payload, &cmd)
						r.Reply(true, nil)
						fmt.Fprintf(ch, "login=%s cmd=%s\n", sc.User(), cmd.Command)
						ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
						ch.Close()
						break
					}
					go ssh.DiscardRequests(creqs)
				}
			}()
		}
	}()
	return l.Addr().String()
}

// TestOpenSSH checks the SSH certificates against the real OpenSSH client:
// it accepts the joined host's certificate through a @cert-authority line
// for the host CA, and logs in with the user's certificate as one of the
// logins of the user's roles, and only those.
func TestOpenSSH(t *testing.T) {
	sshBin := testservice.Bin(t, "ssh")
	ts := startServer(t, nil, &Config{RateLimit: -1})
	ctx := testCtx(t)
	admin := ts.client(t, ts.Admin).API()
	tok, err := admin.CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{Roles: []string{RoleAgent}})
	if err != nil {
		t.Fatal(err)
	}
	host, err := Join(ctx, JoinConfig{Addrs: []string{ts.Addr}, Token: tok.Token, CAPin: ts.CAPin(), HostID: "node-1", NodeName: "db01"})
	if err != nil {
		t.Fatal(err)
	}
	addr := sshServer(t, host)
	_, port, _ := net.SplitHostPort(addr)

	if _, err := admin.UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: &authv1.Role{Name: "dev", Logins: []string{"ubuntu", "deploy"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "alice", Roles: []string{"dev"}, Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	user, err := ts.client(t, nil).Login(ctx, LoginRequest{User: "alice", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	pk, err := ssh.MarshalPrivateKey(user.SSHKey, "alice")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(pk), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile+"-cert.pub", ssh.MarshalAuthorizedKey(user.SSHCert), 0o644); err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	caLine := "@cert-authority node-1,db01 " + string(ssh.MarshalAuthorizedKey(user.SSHHostCAs[0]))
	if err := os.WriteFile(knownHosts, []byte(caLine), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(alias, login string) (string, error) {
		cmd := exec.CommandContext(ctx, sshBin, "-F", "/dev/null",
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+knownHosts,
			"-o", "GlobalKnownHostsFile=/dev/null", "-o", "HostKeyAlias="+alias,
			"-o", "IdentitiesOnly=yes", "-i", keyFile, "-o", "CertificateFile="+keyFile+"-cert.pub",
			"-p", port, "-l", login, "127.0.0.1", "hello")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	cases := []struct {
		name, alias, login string
		ok                 bool
		wantOut            string
	}{
		{"login by host ID", "node-1", "ubuntu", true, "login=ubuntu cmd=hello"},
		{"login by node name", "db01", "deploy", true, "login=deploy cmd=hello"},
		{"login not granted", "node-1", "root", false, "Permission denied"},
		{"host name not in the certificate", "other", "ubuntu", false, "Host key verification failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.alias, tc.login)
			if tc.ok != (err == nil) || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("ssh -l %s (alias %s): err %v, output:\n%s", tc.login, tc.alias, err, out)
			}
		})
	}
}
