package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/audit"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/proxy"
)

// TestPingFieldNames reads /webapi/ping as raw JSON and checks the field
// names of the Networking reference.
func TestPingFieldNames(t *testing.T) {
	c := startCluster(t)
	hc := webClient(t, c)
	for _, mode := range []proxy.Mode{proxy.Multiplex, proxy.Separate} {
		t.Run(mode.String(), func(t *testing.T) {
			p := startProxy(t, c, proxy.Config{Mode: mode})
			resp, err := hc.Get("https://" + p.webAddr + proxy.PingPath)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			get := func(path string) any {
				var cur any = doc
				for _, k := range strings.Split(path, ".") {
					m, ok := cur.(map[string]any)
					if !ok {
						return nil
					}
					cur, ok = m[k]
					if !ok {
						t.Errorf("ping JSON has no %s: %s", path, body)
						return nil
					}
				}
				return cur
			}
			want := map[string]any{
				"cluster_name":                     "example.test",
				"auth.type":                        "local",
				"auth.second_factor":               "optional",
				"proxy.ssh.listen_addr":            p.sshAddr,
				"proxy.ssh.tunnel_listen_addr":     p.tunnelAddr,
				"proxy.ssh.web_listen_addr":        p.webAddr,
				"proxy.ssh.public_addr":            p.webAddr,
				"proxy.db.postgres_listen_addr":    "",
				"proxy.db.mysql_listen_addr":       "",
				"proxy.kube.enabled":               false,
				"proxy.tls_routing_enabled":        mode == proxy.Multiplex,
				"dial_timeout":                     "10s",
				"server_version":                   get("server_version"),
				"min_client_version":               proxy.MinClientVersion,
				"proxy.ssh.ssh_public_addr":        p.sshAddr,
				"proxy.ssh.ssh_tunnel_public_addr": p.tunnelAddr,
			}
			for path, v := range want {
				if got := get(path); got != v {
					t.Errorf("%s = %#v, want %#v", path, got, v)
				}
			}
			if v, _ := get("server_version").(string); v == "" {
				t.Errorf("server_version empty")
			}
		})
	}
}

// TestLoginRateLimit: failed logins are limited per client address; the
// refusal is audited with the address, and other addresses still get in.
func TestLoginRateLimit(t *testing.T) {
	c := startCluster(t)
	c.role(t, "dev", []string{"root"}, map[string][]string{"env": {"dev"}})
	c.user(t, "bob", "pw-of-bob", "dev")
	p := startProxy(t, c, proxy.Config{LoginRateLimit: 2})
	from := func(ip net.IP) *http.Client {
		hc := webClient(t, c)
		hc.Transport.(*http.Transport).DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}).DialContext
		return hc
	}
	a, b := from(net.IPv4(127, 0, 0, 4)), from(net.IPv4(127, 0, 0, 5))
	steps := []struct {
		name     string
		client   *http.Client
		password string
		status   int
	}{
		{"first-failure", a, "bad", http.StatusUnauthorized},
		{"second-failure", a, "bad", http.StatusUnauthorized},
		{"limited-even-with-the-right-password", a, "pw-of-bob", http.StatusTooManyRequests},
		{"other-address-unaffected", b, "pw-of-bob", http.StatusOK},
	}
	for _, st := range steps {
		status, _, msg := login(t, st.client, p.webAddr, proxy.LoginRequest{User: "bob", Password: st.password})
		if status != st.status {
			t.Fatalf("%s: status %d (%q), want %d", st.name, status, msg, st.status)
		}
	}
	c.waitEvent(t, audit.TypeLoginFailed, func(e *authv1.AuditEvent) bool {
		return strings.HasPrefix(e.GetSource(), "127.0.0.4:") && e.GetFields()["reason"] == "rate limited by the proxy"
	})
	c.waitEvent(t, audit.TypeLogin, func(e *authv1.AuditEvent) bool {
		return e.GetActor() == "bob" && strings.HasPrefix(e.GetSource(), "127.0.0.5:") && e.GetSuccess()
	})
}

// TestLoginBadRequests checks the answers to malformed requests.
func TestLoginBadRequests(t *testing.T) {
	c := startCluster(t)
	p := startProxy(t, c, proxy.Config{})
	hc := webClient(t, c)
	cases := []struct {
		name, method, body string
		status             int
	}{
		{"not-json", http.MethodPost, "{", http.StatusBadRequest},
		{"no-user", http.MethodPost, `{"password":"x"}`, http.StatusBadRequest},
		{"too-large", http.MethodPost, `{"user":"` + strings.Repeat("a", proxy.MaxLoginRequest) + `"}`, http.StatusRequestEntityTooLarge},
		{"get", http.MethodGet, "", http.StatusMethodNotAllowed},
		{"unknown-user", http.MethodPost, `{"user":"nobody","password":"x"}`, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tc.method, "https://"+p.webAddr+proxy.LoginPath, strings.NewReader(tc.body))
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}
