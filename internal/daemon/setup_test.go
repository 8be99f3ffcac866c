package daemon_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/config"
	"github.com/sallyport/sallyport/internal/daemon"
)

func TestSetup(t *testing.T) {
	dir := t.TempDir()
	single := filepath.Join(dir, "single.yaml")
	if err := os.WriteFile(single, []byte("version: v3\nauth_service:\n  cluster_name: example.test\nproxy_service:\n  enabled: yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noProxy := filepath.Join(dir, "auth-only.yaml")
	if err := os.WriteFile(noProxy, []byte("version: v3\nauth_service:\n  cluster_name: example.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proxyOn := func(c *config.Config) bool { return c.Proxy.Enabled }
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, cfg *config.Config, o *daemon.Options)
	}{
		{name: "defaults", args: []string{"-config", single}, check: func(t *testing.T, cfg *config.Config, o *daemon.Options) {
			if o.PIDFile != "" || o.DrainTimeout != 30*time.Second || o.JoinTimeout != 2*time.Minute {
				t.Errorf("options %+v", o)
			}
			if !cfg.Proxy.Enabled {
				t.Error("proxy section not enabled")
			}
		}},
		{name: "flags", args: []string{"-config", single, "-pid-file", "/run/p.pid", "-drain-timeout", "5s", "-join-timeout", "1m", "-data-dir", "/srv/sp"}, check: func(t *testing.T, cfg *config.Config, o *daemon.Options) {
			if o.PIDFile != "/run/p.pid" || o.DrainTimeout != 5*time.Second || o.JoinTimeout != time.Minute {
				t.Errorf("options %+v", o)
			}
			if cfg.Common.DataDir != "/srv/sp" {
				t.Errorf("data dir %q, want the flag's", cfg.Common.DataDir)
			}
		}},
		{name: "section-disabled", args: []string{"-config", noProxy}, wantErr: `proxy_service is not enabled in the configuration (add "proxy_service: {enabled: yes}")`},
		{name: "unknown-flag", args: []string{"-no-such-flag"}, wantErr: "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SALLYPORT_CONFIG", "")
			cfg, o, err := daemon.Setup("proxy", tc.args, io.Discard, "proxy_service", proxyOn)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Setup error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg, o)
		})
	}
}

// TestStartAndDrain: Start writes the PID file and Close removes it;
// Drain marks the diagnostics endpoint draining and logs a drain that the
// timeout cut short.
func TestStartAndDrain(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("version: v3\nauth_service:\n  cluster_name: example.test\nproxy_service:\n  enabled: yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SALLYPORT_CONFIG", "")
	pid := filepath.Join(dir, "p.pid")
	var logs strings.Builder
	p, err := daemon.Start("proxy", []string{"-config", file, "-pid-file", pid, "-drain-timeout", "20ms"}, &logs, "proxy_service",
		func(c *config.Config) bool { return c.Proxy.Enabled })
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(pid); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("PID file %q, %v", b, err)
	}
	diag := daemon.NewDiag(daemon.DiagConfig{Logger: p.Log})
	var deadline time.Time
	p.Drain(diag, "sessions", func(ctx context.Context) error {
		deadline, _ = ctx.Deadline()
		<-ctx.Done()
		return ctx.Err()
	})
	if err := diag.ReadyErr(); err == nil {
		t.Error("diag ready after Drain, want draining")
	}
	if deadline.IsZero() || !strings.Contains(logs.String(), "drain ended by timeout; remaining sessions closed") {
		t.Errorf("deadline %v, logs %q", deadline, logs.String())
	}
	p.Close()
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Fatalf("PID file after Close: %v", err)
	}
}
