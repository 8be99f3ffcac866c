package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/config"
	"github.com/sallyport/sallyport/sshserver"
)

func TestAgentConfig(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tok-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const pin = "sha256:2f3a7c1e4b5d6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f"
	cases := []struct {
		name                 string
		yaml                 string
		wantErr              string
		proxy, direct, token string
		auth                 []string
		labels               map[string]string
		ciphers              []string
	}{
		{
			name: "behind a firewall (HA guide agent)",
			yaml: `version: v3
sallyport:
  nodename: db-host-7
  data_dir: ` + dir + `
  join_params: {token_name: ` + tokenFile + `}
  ca_pin: ` + pin + `
  proxy_server: proxy.example.com:443
ssh_service:
  enabled: yes
  labels: {env: prod, team: data}
`,
			proxy: "proxy.example.com:443", token: "tok-from-file", labels: map[string]string{"env": "prod", "team": "data"},
		},
		{
			name: "SSH ciphers",
			yaml: `version: v3
sallyport:
  data_dir: ` + dir + `
  join_params: {token_name: abc}
  ca_pin: ` + pin + `
  proxy_server: proxy.example.com:443
  ciphers: [aes256-gcm@openssh.com, aes256-ctr]
ssh_service: {enabled: yes}
`,
			proxy: "proxy.example.com:443", token: "abc", ciphers: []string{"aes256-gcm@openssh.com", "aes256-ctr"},
		},
		{
			name: "single machine file: tunnel to the local proxy",
			yaml: `version: v3
sallyport:
  data_dir: ` + dir + `
auth_service: {listen_addr: 127.0.0.1:3025}
proxy_service: {web_listen_addr: 0.0.0.0:3080}
ssh_service: {enabled: yes}
`,
			proxy: "127.0.0.1:3080",
		},
		{
			name: "direct mode with an auth server",
			yaml: `version: v3
sallyport:
  data_dir: ` + dir + `
  join_params: {token_name: abc}
  ca_pin: ` + pin + `
  auth_server: [auth.internal:3025]
ssh_service:
  listen_addr: 0.0.0.0:3022
`,
			direct: "0.0.0.0:3022", token: "abc", auth: []string{"auth.internal:3025"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "a.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o600)
			cfg, err := config.Load(path, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			ac, err := agentConfig(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ac.ProxyAddr != tc.proxy || ac.DirectAddr != tc.direct || ac.JoinToken != tc.token || !reflect.DeepEqual(ac.AuthAddrs, tc.auth) {
				t.Fatalf("proxy %q direct %q token %q auth %v; want %q %q %q %v", ac.ProxyAddr, ac.DirectAddr, ac.JoinToken, ac.AuthAddrs, tc.proxy, tc.direct, tc.token, tc.auth)
			}
			if tc.labels != nil && !reflect.DeepEqual(ac.Labels, tc.labels) {
				t.Fatalf("labels %v", ac.Labels)
			}
			if !reflect.DeepEqual(ac.SSH.Ciphers, tc.ciphers) {
				t.Fatalf("SSH ciphers %v, want %v", ac.SSH.Ciphers, tc.ciphers)
			}
			if ac.NodeName != cfg.Common.NodeName || ac.NodeName == "" {
				t.Fatalf("node name %q", ac.NodeName)
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	cases := []struct{ in, want string }{
		{"0.0.0.0:3080", "127.0.0.1:3080"},
		{"[::]:443", "127.0.0.1:443"},
		{":3080", "127.0.0.1:3080"},
		{"10.1.2.3:3080", "10.1.2.3:3080"},
		{"proxy:3080", "proxy:3080"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := loopback(tc.in); got != tc.want {
				t.Fatalf("loopback(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestRecording checks that sessions go to the spool and the store the
// file names.
func TestRecording(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("x.yaml", []byte("version: v3\nsallyport:\n  data_dir: "+dir+"\nauth_service: {}\nssh_service: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spool, err := openSpool(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := spoolRecorder(spool)(ctx, sshserver.SessionInfo{ID: "s1", User: "alice", Login: "root", Node: "n1", Start: time.Now(), Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(rec, "hello recording\r\n")
	rec.Close()
	if err := spool.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var found []string
	filepath.Walk(filepath.Join(dir, "records"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			found = append(found, p)
		}
		return nil
	})
	if len(found) == 0 {
		t.Fatalf("no recording uploaded to %s/records", dir)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, yaml, want string }{
		{"section off", "version: v3\nsallyport:\n  data_dir: /x\nauth_service: {enabled: yes}\n", "ssh_service is not enabled"},
		{"bad label", "version: v3\nsallyport:\n  data_dir: /x\nauth_service: {}\nssh_service:\n  labels:\n    \"bad key!\": x\n", "a.yaml:7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "a.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o600)
			err := run(t.Context(), []string{"-config", path}, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReferenceFiles translates the reference files of package config.
func TestReferenceFiles(t *testing.T) {
	cases := []struct{ file, proxy string }{
		{"ha-agent.yaml", "proxy.example.com:443"},
		{"single.yaml", "127.0.0.1:443"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(tc.file, b)
			if err != nil {
				t.Fatal(err)
			}
			ac, err := agentConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if ac.ProxyAddr != tc.proxy || ac.DirectAddr != "" || len(ac.Labels) == 0 {
				t.Fatalf("proxy %q direct %q labels %v", ac.ProxyAddr, ac.DirectAddr, ac.Labels)
			}
		})
	}
}
