package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testservice"
)

var (
	tokenRe = regexp.MustCompile(`(?m)^token: (\S+)$`)
	pinRe   = regexp.MustCompile(`(?m)^ca-pin: (\S+)$`)
)

// TestProcesses runs cmd/auth, cmd/proxy and cmd/agent as separate
// processes, each from its own configuration file; joins the proxy and
// the agent with tokens; logs in with cmd/sallyport; runs the stock
// OpenSSH client to the agent through the proxy; reloads the proxy's web
// keypair with SIGHUP while a session runs; and drains the proxy with
// SIGTERM while another session runs.
func TestProcesses(t *testing.T) {
	sshBin := testservice.Bin(t, "ssh")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dirs := map[string]string{}
	for _, n := range []string{"auth", "proxy", "agent", "home", "web"} {
		dirs[n] = filepath.Join(root, n)
		if err := os.MkdirAll(dirs[n], 0o700); err != nil {
			t.Fatal(err)
		}
	}
	authAddr, webAddr := testservice.FreeAddr(t), testservice.FreeAddr(t)
	authDiag, proxyDiag, agentDiag := testservice.FreeAddr(t), testservice.FreeAddr(t), testservice.FreeAddr(t)
	const cluster = "e2e.test"

	// Auth.
	authYAML := fmt.Sprintf(`version: v3
sallyport:
  nodename: auth-1
  data_dir: %s
  diag_addr: %s
auth_service:
  enabled: yes
  listen_addr: %s
  cluster_name: %s
  authentication: {second_factor: "off"}
proxy_service: {enabled: no}
ssh_service: {enabled: no}
`, dirs["auth"], authDiag, authAddr, cluster)
	authFile := filepath.Join(root, "auth.yaml")
	writeFile(authFile, authYAML)
	authProc := startProc(t, "auth", bins.auth, nil, "start", "--config", authFile)
	if err := testservice.WaitTCP(authAddr, 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, authProc.out.String())
	}
	waitHTTP(t, "http://"+authDiag+"/readyz", 200, 10*time.Second)
	admin := []string{"--auth-server", authAddr, "--data-dir", dirs["auth"]}
	adminCmd := func(stdin string, args ...string) string {
		return mustRun(t, nil, stdin, bins.auth, append(args, admin...)...)
	}
	tokenFor := func(role, path string) string {
		out := adminCmd("", "tokens", "add", "--roles", role)
		tok, pin := tokenRe.FindStringSubmatch(out), pinRe.FindStringSubmatch(out)
		if tok == nil || pin == nil {
			t.Fatalf("tokens add: %s", out)
		}
		if err := writeFile(path, tok[1]+"\n"); err != nil {
			t.Fatal(err)
		}
		return pin[1]
	}
	pin := tokenFor("proxy", filepath.Join(root, "proxy-token"))
	tokenFor("agent", filepath.Join(root, "agent-token"))
	roleFile := filepath.Join(root, "role.json")
	writeFile(roleFile, fmt.Sprintf(`{"name": "access", "logins": [%q], "node_labels": {"*": ["*"]}}`, me.Username))
	adminCmd("", "roles", "add", roleFile)
	adminCmd("s3cret-pass\n", "users", "add", "alice", "--roles", "access", "--password-stdin")

	// Proxy, with a web keypair from a CA the agent and the CLI trust
	// through SSL_CERT_FILE.
	ca := newCA(t, dirs["web"])
	kp := writeKeyPair(t, dirs["web"], ca, "proxy-old")
	trustEnv := []string{"SSL_CERT_FILE=" + ca.file}
	proxyYAML := fmt.Sprintf(`version: v3
sallyport:
  nodename: proxy-1
  data_dir: %s
  join_params:
    token_name: %s
  ca_pin: %s
  auth_server: [%s]
  diag_addr: %s
proxy_service:
  enabled: yes
  web_listen_addr: %s
  public_addr: %s
  https_keypairs:
    - key_file: %s
      cert_file: %s
`, dirs["proxy"], filepath.Join(root, "proxy-token"), pin, authAddr, proxyDiag, webAddr, webAddr, kp.KeyFile, kp.CertFile)
	proxyFile := filepath.Join(root, "proxy.yaml")
	writeFile(proxyFile, proxyYAML)
	pidFile := filepath.Join(root, "proxy.pid")
	proxyProc := startProc(t, "proxy", bins.proxy, nil, "-config", proxyFile, "-pid-file", pidFile, "-drain-timeout", "20s")
	waitHTTP(t, "http://"+proxyDiag+"/readyz", 200, 30*time.Second)
	if b, err := os.ReadFile(pidFile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(proxyProc.cmd.Process.Pid) {
		t.Fatalf("pid file: %q %v, want %d", b, err, proxyProc.cmd.Process.Pid)
	}
	if _, err := os.Stat(filepath.Join(dirs["proxy"], "proxy", "identity.json")); err != nil {
		t.Fatalf("proxy identity not saved: %v", err)
	}

	// Agent: joins through the proxy, tunnels to it.
	agentYAML := fmt.Sprintf(`version: v3
sallyport:
  nodename: node1
  data_dir: %s
  join_params: {token_name: %s}
  ca_pin: %s
  proxy_server: %s
  diag_addr: %s
ssh_service:
  enabled: yes
  labels: {env: test}
`, dirs["agent"], filepath.Join(root, "agent-token"), pin, webAddr, agentDiag)
	agentFile := filepath.Join(root, "agent.yaml")
	writeFile(agentFile, agentYAML)
	agentProc := startProc(t, "agent", bins.agent, trustEnv, "-config", agentFile)
	waitHTTP(t, "http://"+agentDiag+"/readyz", 200, 30*time.Second)
	if m := httpGet(t, "http://"+agentDiag+"/metrics"); !strings.Contains(m, "sallyport_agent_tunnels 1\n") {
		t.Fatalf("agent metrics:\n%s", m)
	}

	// Login with the CLI.
	cliEnv := append([]string{"HOME=" + dirs["home"], "SALLYPORT_HOME="}, trustEnv...)
	pwFile := filepath.Join(root, "pw")
	writeFile(pwFile, "s3cret-pass\n")
	out, err := runCmd(t, cliEnv, "", bins.cli, "login", "--proxy", webAddr, "--user", "alice", "--password-file", filepath.Join(root, "nope"))
	if err == nil || !strings.Contains(out, "no such file") {
		t.Fatalf("login with a missing password file: %v\n%s", err, out)
	}
	out, err = runCmd(t, cliEnv, "wrong\n", bins.cli, "login", "--proxy", webAddr, "--user", "alice")
	if err == nil || !strings.Contains(out, "login refused") {
		t.Fatalf("login with a wrong password: %v\n%s", err, out)
	}
	out = mustRun(t, cliEnv, "", bins.cli, "login", "--proxy", webAddr, "--user", "alice", "--password-file", pwFile)
	snippet := filepath.Join(dirs["home"], ".sallyport", "keys", strings.ReplaceAll(webAddr, ":", "_"), "ssh_config")
	if !strings.Contains(out, "Include "+snippet) || !strings.Contains(out, "cluster "+cluster) {
		t.Fatalf("login output:\n%s", out)
	}
	kh, _ := os.ReadFile(filepath.Join(filepath.Dir(snippet), "known_hosts"))
	if !strings.HasPrefix(string(kh), "@cert-authority *."+cluster+",") {
		t.Fatalf("known_hosts:\n%s", kh)
	}
	if out := mustRun(t, cliEnv, "", bins.cli, "status"); !strings.Contains(out, "alice") || !strings.Contains(out, "valid until") {
		t.Fatalf("status:\n%s", out)
	}
	if out := mustRun(t, cliEnv, "", bins.cli, "ls"); !regexp.MustCompile(`(?m)^node1\s+\S+\s+env=test\s+node1\.` + regexp.QuoteMeta(cluster)).MatchString(out) {
		t.Fatalf("ls:\n%s", out)
	}

	// The CLI through an HTTP CONNECT proxy with Basic authentication
	// (HTTPS_PROXY): squid resolves the made-up proxy name.
	squid := testservice.StartSquid(t, testservice.SquidConfig{Users: map[string]string{"corp": "corp-pw"}, Hosts: map[string]string{"proxy.e2e.test": "127.0.0.1"}})
	_, webPort, _ := strings.Cut(webAddr, ":")
	viaSquid := append([]string{"HOME=" + filepath.Join(root, "home2"), "SALLYPORT_HOME=", "HTTPS_PROXY=http://corp:corp-pw@" + squid.Addr, "NO_PROXY="}, trustEnv...)
	mustRun(t, viaSquid, "", bins.cli, "login", "--proxy", "proxy.e2e.test:"+webPort, "--user", "alice", "--password-file", pwFile)
	if out := mustRun(t, viaSquid, "", bins.cli, "ls"); !strings.Contains(out, "node1."+cluster) {
		t.Fatalf("ls through squid:\n%s", out)
	}
	squid.WaitAccessLog(t, 5*time.Second, "CONNECT proxy.e2e.test:"+webPort, "corp")
	badSquid := append([]string{"HOME=" + filepath.Join(root, "home3"), "SALLYPORT_HOME=", "HTTPS_PROXY=http://corp:wrong@" + squid.Addr, "NO_PROXY="}, trustEnv...)
	if out, err := runCmd(t, badSquid, "", bins.cli, "login", "--proxy", "proxy.e2e.test:"+webPort, "--user", "alice", "--password-file", pwFile); err == nil || !strings.Contains(out, "HTTPS_PROXY") {
		t.Fatalf("login through squid with a wrong password: %v\n%s", err, out)
	}

	// The stock OpenSSH client with the snippet.
	sshArgs := func(cmd string) []string {
		return []string{"-F", snippet, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", me.Username + "@node1." + cluster, cmd}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := runCmd(t, nil, "", sshBin, sshArgs("echo hello from $(hostname)")...)
		if err == nil && strings.Contains(out, "hello from") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh node1.%s: %v\n%s", cluster, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := mustRun(t, cliEnv, "", bins.cli, "ssh", me.Username+"@node1", "echo", "via-cli"); strings.TrimSpace(out) != "via-cli" {
		t.Fatalf("sallyport ssh: %q", out)
	}

	// SIGHUP: the next handshake shows the new certificate; an open
	// session survives.
	if cn := webCN(t, webAddr); cn != "proxy-old" {
		t.Fatalf("web certificate %q before reload", cn)
	}
	first := startSession(t, sshBin, sshArgs("echo started; sleep 2; echo survived"))
	writeKeyPair(t, dirs["web"], ca, "proxy-new")
	if err := proxyProc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "new web certificate after SIGHUP", func() bool { return webCN(t, webAddr) == "proxy-new" })
	if out, code := first.finish(t); code != 0 || !strings.Contains(out, "survived") {
		t.Fatalf("session across SIGHUP: exit %d\n%s", code, out)
	}
	if m := httpGet(t, "http://"+proxyDiag+"/metrics"); !strings.Contains(m, "sallyport_tls_reloads_total 1\n") || !strings.Contains(m, "sallyport_proxy_tunnels 1\n") {
		t.Fatalf("proxy metrics:\n%s", m)
	}
	// The CLI still trusts the proxy (same CA) after the reload.
	mustRun(t, cliEnv, "", bins.cli, "ls")

	// SIGTERM: the running session finishes, then the proxy exits 0.
	second := startSession(t, sshBin, sshArgs("echo started; sleep 3; echo drained"))
	if err := proxyProc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, "http://"+proxyDiag+"/readyz", 503, 5*time.Second)
	if out, code := second.finish(t); code != 0 || !strings.Contains(out, "drained") {
		t.Fatalf("session across SIGTERM: exit %d\n%s", code, out)
	}
	if code := proxyProc.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("proxy exit code %d after SIGTERM\n%s", code, proxyProc.out.String())
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("pid file left behind: %v", err)
	}
	for _, p := range []*proc{agentProc, authProc} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("%s exit code %d after SIGTERM\n%s", p.name, code, p.out.String())
		}
	}
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// session is an ssh command running in the background.
type session struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// startSession starts ssh and returns once the remote command printed
// "started".
func startSession(t testing.TB, sshBin string, args []string) *session {
	t.Helper()
	cmd := exec.Command(sshBin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &session{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			fmt.Fprintln(s.out, sc.Text())
			if sc.Text() == "started" && !once {
				once = true
				close(started)
			}
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatalf("session did not start:\n%s", s.out.String())
	}
	return s
}

func (s *session) finish(t testing.TB) (string, int) {
	t.Helper()
	select {
	case err := <-s.done:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return s.out.String(), code
	case <-time.After(30 * time.Second):
		t.Fatalf("session did not end:\n%s", s.out.String())
	}
	return "", -1
}
