package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/internal/testservice"
)

var authBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "authbin")
	if err != nil {
		panic(err)
	}
	authBin = filepath.Join(dir, "auth")
	if out, err := exec.Command("go", "build", "-o", authBin, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	// goleak.VerifyTestMain exits; clean the binary up first through a
	// wrapper run.
	code := func() int {
		defer os.RemoveAll(dir)
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// authCmd runs an admin subcommand and returns its output.
func authCmd(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(authBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("auth %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var tokenRe = regexp.MustCompile(`(?m)^token: (\S+)$`)
var pinRe = regexp.MustCompile(`(?m)^ca-pin: (\S+)$`)

// TestCommand runs the service on SQLite in a data directory and drives
// it with the admin subcommands, then stops it with SIGTERM.
func TestCommand(t *testing.T) {
	dir := t.TempDir()
	addr := testservice.FreeAddr(t)
	p := testservice.Start(t, authBin, []string{"start", "--listen", addr, "--data-dir", dir, "--cluster-name", "cmdtest"}, nil, addr)
	flags := []string{"--auth-server", addr, "--data-dir", dir}
	ctx := ctxT(t)

	out := authCmd(t, "", append([]string{"tokens", "add", "--roles", "agent", "--uses", "2"}, flags...)...)
	tok, pin := tokenRe.FindStringSubmatch(out), pinRe.FindStringSubmatch(out)
	if tok == nil || pin == nil {
		t.Fatalf("tokens add printed:\n%s", out)
	}
	filePin, _ := os.ReadFile(filepath.Join(dir, "ca-pin"))
	if strings.TrimSpace(string(filePin)) != pin[1] {
		t.Fatalf("ca-pin file %q, printed %q", filePin, pin[1])
	}
	creds, err := authapi.Join(ctx, authapi.JoinConfig{Addrs: []string{addr}, Token: tok[1], CAPin: pin[1], HostID: "agent-7"})
	if err != nil {
		t.Fatal(err)
	}
	if creds.Identity.Cluster != "cmdtest" || creds.Identity.Name != "agent-7" {
		t.Fatalf("joined identity %+v", creds.Identity)
	}
	if out := authCmd(t, "", append([]string{"tokens", "ls"}, flags...)...); !strings.Contains(out, "agent") || !regexp.MustCompile(`\s1\s`).MatchString(out) {
		t.Fatalf("tokens ls:\n%s", out)
	}

	roleFile := testservice.WriteFile(t, dir, "roles.yaml", `
- name: dev
  logins: [ubuntu]
  node_labels:
    env: [staging]
  max_session_ttl: 1h
- name: dba
  db_names: ["*"]
  db_users: [reader]
`)
	if out := authCmd(t, "", append([]string{"roles", "add", roleFile}, flags...)...); !strings.Contains(out, "role dev saved") || !strings.Contains(out, "role dba saved") {
		t.Fatalf("roles add:\n%s", out)
	}
	if out := authCmd(t, "", append([]string{"roles", "ls"}, flags...)...); !strings.Contains(out, "ubuntu") || !strings.Contains(out, "1h0m0s") {
		t.Fatalf("roles ls:\n%s", out)
	}
	authCmd(t, "s3cret-password\n", append([]string{"users", "add", "alice", "--roles", "dev,dba", "--password-stdin"}, flags...)...)
	if out := authCmd(t, "", append([]string{"users", "add", "bob", "--roles", "dev"}, flags...)...); !strings.Contains(out, "sign-up token") {
		t.Fatalf("users add without password:\n%s", out)
	}
	if out := authCmd(t, "", append([]string{"users", "ls"}, flags...)...); !strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
		t.Fatalf("users ls:\n%s", out)
	}
	c, err := authapi.NewClient(&authapi.ClientConfig{Addrs: []string{addr}, CAPin: pin[1]})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	user, err := c.Login(ctx, authapi.LoginRequest{User: "alice", Password: "s3cret-password"})
	if err != nil {
		t.Fatal(err)
	}
	if !user.Identity.CanLogin("ubuntu", map[string]string{"env": "staging"}) || !user.Identity.CanDatabase("orders", "reader") {
		t.Fatalf("alice's identity %+v", user.Identity)
	}

	// A long-lived identity for automation.
	idFile := filepath.Join(dir, "bot.json")
	authCmd(t, "", append([]string{"sign", "--kind", "proxy", "--name", "proxy-bot", "--ttl", "2160h", "--out", idFile}, flags...)...)
	bot, err := authapi.LoadCredentials(idFile)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(bot.Certificate.Leaf.NotAfter); d < 2000*time.Hour {
		t.Fatalf("signed identity lives %v", d)
	}
	bc, err := authapi.NewClient(&authapi.ClientConfig{Addrs: []string{addr}, Credentials: bot})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	if p, err := bc.API().Ping(ctx, &authv1.PingRequest{}); err != nil || p.CallerKind != "proxy" {
		t.Fatalf("Ping as the signed proxy identity: %v, %v", p, err)
	}
	if out := authCmd(t, "", append([]string{"events", "--type", "host.join"}, flags...)...); !strings.Contains(out, "agent-7") {
		t.Fatalf("events:\n%s", out)
	}

	// SIGTERM: a graceful exit with status 0.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := p.Wait(wctx); err != nil {
		t.Fatalf("auth did not exit after SIGTERM: %v", err)
	}
	if !strings.Contains(p.Output(), "shutting down") {
		t.Fatalf("output:\n%s", p.Output())
	}

	// A restart on the same data directory keeps the CAs and the admin
	// identity.
	p.Restart(addr)
	if out := authCmd(t, "", append([]string{"users", "ls"}, flags...)...); !strings.Contains(out, "alice") {
		t.Fatalf("users ls after restart:\n%s", out)
	}
	filePin2, _ := os.ReadFile(filepath.Join(dir, "ca-pin"))
	if string(filePin2) != string(filePin) {
		t.Fatal("CA pin changed across a restart")
	}
}
