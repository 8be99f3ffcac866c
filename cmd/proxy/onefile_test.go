package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testservice"
)

// TestOneFile runs cmd/auth, cmd/proxy and cmd/agent from one file that
// describes a single-machine cluster: the proxy and the agent join with
// tokens they make from the local auth service's admin identity, and the
// stock OpenSSH client reaches the agent after a CLI login.
func TestOneFile(t *testing.T) {
	sshBin := testservice.Bin(t, "ssh")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	data, home := filepath.Join(root, "data"), filepath.Join(root, "home")
	authAddr, webAddr := testservice.FreeAddr(t), testservice.FreeAddr(t)
	diags := []string{testservice.FreeAddr(t), testservice.FreeAddr(t), testservice.FreeAddr(t)}
	const cluster = "one.test"
	file := filepath.Join(root, "sallyport.yaml")
	writeFile(file, fmt.Sprintf(`version: v3
sallyport:
  nodename: box
  data_dir: %s
  storage:
    uri: sqlite://%s/state.db
    audit_sessions_uri: file://%s/records
auth_service:
  enabled: yes
  listen_addr: %s
  cluster_name: %s
  authentication: {second_factor: "off"}
proxy_service:
  enabled: yes
  web_listen_addr: %s
  public_addr: %s
ssh_service:
  enabled: yes
  labels: {env: single}
`, data, data, data, authAddr, cluster, webAddr, webAddr))
	env := []string{"SALLYPORT_CONFIG=" + file}
	auth := startProc(t, "auth", bins.auth, env, "start", "--diag-addr", diags[0])
	prox := startProc(t, "proxy", bins.proxy, env, "-diag-addr", diags[1])
	agent := startProc(t, "agent", bins.agent, env, "-diag-addr", diags[2])
	for _, d := range diags {
		waitHTTP(t, "http://"+d+"/readyz", 200, 60*time.Second)
	}

	pin, err := os.ReadFile(filepath.Join(data, "ca-pin"))
	if err != nil {
		t.Fatal(err)
	}
	admin := []string{"--auth-server", authAddr, "--data-dir", data}
	roleFile := filepath.Join(root, "role.yaml")
	writeFile(roleFile, "name: ops\nlogins: ["+me.Username+"]\nnode_labels: {env: [single]}\n")
	mustRun(t, nil, "", bins.auth, append([]string{"roles", "add", roleFile}, admin...)...)
	mustRun(t, nil, "pw-1234567\n", bins.auth, append([]string{"users", "add", "bob", "--roles", "ops", "--password-stdin"}, admin...)...)

	cliEnv := []string{"HOME=" + home, "SALLYPORT_HOME="}
	pw := filepath.Join(root, "pw")
	writeFile(pw, "pw-1234567\n")
	// Without the pin the cluster-signed web certificate is not trusted.
	if out, err := runCmd(t, cliEnv, "", bins.cli, "login", "--proxy", webAddr, "--user", "bob", "--password-file", pw); err == nil || !strings.Contains(out, "--ca-pin") {
		t.Fatalf("login without a pin: %v\n%s", err, out)
	}
	if out, err := runCmd(t, cliEnv, "", bins.cli, "login", "--proxy", webAddr, "--user", "bob", "--password-file", pw, "--ca-pin", "sha256:"+strings.Repeat("0", 64)); err == nil || !strings.Contains(out, "does not match --ca-pin") {
		t.Fatalf("login with a wrong pin: %v\n%s", err, out)
	}
	mustRun(t, cliEnv, "", bins.cli, "login", "--proxy", webAddr, "--user", "bob", "--password-file", pw, "--ca-pin", strings.TrimSpace(string(pin)))
	snippet := filepath.Join(home, ".sallyport", "keys", strings.ReplaceAll(webAddr, ":", "_"), "ssh_config")
	target := me.Username + "@box." + cluster
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := runCmd(t, nil, "", sshBin, "-F", snippet, "-o", "BatchMode=yes", target, "echo one-file-ok")
		if err == nil && strings.TrimSpace(out) == "one-file-ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh %s: %v\n%s", target, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Restarted services reuse their saved identities (the tokens were
	// for one use).
	for _, n := range []string{"proxy", "agent"} {
		if _, err := os.Stat(filepath.Join(data, n, "identity.json")); err != nil {
			t.Fatalf("%s identity: %v", n, err)
		}
	}
	for _, p := range []*proc{agent, prox, auth} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("%s exit %d\n%s", p.name, code, p.out.String())
		}
	}
	agent = startProc(t, "agent again", bins.agent, env, "-diag-addr", diags[2])
	auth = startProc(t, "auth again", bins.auth, env, "start", "--diag-addr", diags[0])
	prox = startProc(t, "proxy again", bins.proxy, env, "-diag-addr", diags[1])
	for _, d := range diags {
		waitHTTP(t, "http://"+d+"/readyz", 200, 60*time.Second)
	}
	if !strings.Contains(prox.out.String(), "using the saved host identity") || !strings.Contains(agent.out.String(), "using the saved host identity") {
		t.Fatalf("restart did not reuse identities:\nproxy:\n%s\nagent:\n%s", prox.out.String(), agent.out.String())
	}
}

// TestSystemdUnits checks the shipped units for what operators rely on.
func TestSystemdUnits(t *testing.T) {
	for _, n := range []string{"auth", "proxy", "agent"} {
		t.Run(n, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "sallyport-"+n+".service"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"EnvironmentFile=-/etc/default/sallyport-" + n + "\n",
				"Restart=always\n",
				"LimitNOFILE=524288\n",
				"ExecReload=/bin/kill -HUP $MAINPID\n",
				"KillSignal=SIGTERM\n",
				"-pid-file /run/sallyport/" + n + ".pid",
				"--config /etc/sallyport.yaml",
			} {
				want = strings.Replace(want, "--config", map[bool]string{true: "--config", false: "-config"}[n == "auth"], 1)
				if !strings.Contains(string(b), want) {
					t.Errorf("sallyport-%s.service lacks %q", n, want)
				}
			}
		})
	}
}
