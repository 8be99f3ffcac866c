package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/config"
	"github.com/sallyport/sallyport/internal/testservice"
)

func TestFileSettings(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want map[string]string
	}{
		{
			name: "ha auth instance",
			yaml: `version: v3
sallyport:
  data_dir: /var/lib/sp
  storage:
    uri: postgres://sp@db.internal:5432/sp
    audit_events_uri: [postgres://sp@db.internal:5432/sp_audit]
  diag_addr: 0.0.0.0:3000
auth_service:
  listen_addr: 0.0.0.0:3025
  cluster_name: example.com
  public_addr: [auth.internal:3025, 10.0.0.5]
`,
			want: map[string]string{"listen": "0.0.0.0:3025", "data-dir": "/var/lib/sp", "backend": "postgres://sp@db.internal:5432/sp",
				"cluster-name": "example.com", "server-names": "auth.internal,10.0.0.5", "audit": "postgres://sp@db.internal:5432/sp_audit", "diag-addr": "0.0.0.0:3000"},
		},
		{
			name: "defaults and a file audit log",
			yaml: `version: v3
sallyport:
  nodename: n1
  data_dir: /d
  storage: {audit_events_uri: ["file:///var/log/sp"]}
auth_service: {}
`,
			want: map[string]string{"listen": config.DefaultAuthListenAddr, "data-dir": "/d", "backend": "sqlite:///d/state.db",
				"cluster-name": "n1", "server-names": "", "audit": "file:///var/log/sp/events.jsonl", "diag-addr": ""},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc, err := config.Parse("a.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := fileSettings(fc)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestConfigFileEtcd runs the service from a configuration file whose
// backend is a real etcd, and checks that flags win over the file.
func TestConfigFileEtcd(t *testing.T) {
	e := testservice.StartEtcd(t)
	dir := t.TempDir()
	addr, diag := testservice.FreeAddr(t), testservice.FreeAddr(t)
	file := testservice.WriteFile(t, dir, "auth.yaml", fmt.Sprintf(`version: v3
sallyport:
  data_dir: %s
  storage: {uri: "etcd://%s/sp-test"}
auth_service:
  listen_addr: 127.0.0.1:1
  cluster_name: etcdfile
`, filepath.Join(dir, "data"), e.Addr))
	p := testservice.Start(t, authBin, []string{"start", "--config", file, "--listen", addr, "--diag-addr", diag}, nil, addr)
	if err := testservice.WaitTCP(diag, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	out := authCmd(t, "", "tokens", "add", "--roles", "agent", "--auth-server", addr, "--data-dir", filepath.Join(dir, "data"))
	if !tokenRe.MatchString(out) {
		t.Fatalf("tokens add: %s", out)
	}
	if !strings.Contains(p.Output(), "cluster=etcdfile") {
		t.Fatalf("cluster name not from the file:\n%s", p.Output())
	}
	bad := testservice.WriteFile(t, dir, "bad.yaml", "version: v3\nauth_service:\n  listen_adr: x\n")
	if _, err := runAuth(t, "start", "--config", bad); err == nil || !strings.Contains(err.Error(), "bad.yaml:3") {
		t.Fatalf("bad file: %v", err)
	}
}

// runAuth runs the binary and returns its output and error.
func runAuth(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(authBin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, out)
	}
	return string(out), nil
}

// TestReferenceFile maps the HA guide's auth pool instance.
func TestReferenceFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", "ha-auth.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fc, err := config.Parse("ha-auth.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	m := fileSettings(fc)
	if !strings.HasPrefix(m["backend"], "postgres://") || !strings.HasPrefix(m["audit"], "postgres://") || m["cluster-name"] != "example.com" || m["server-names"] != "auth.internal" {
		t.Fatalf("settings %v", m)
	}
}
