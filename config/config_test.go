package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const pin = "sha256:2f3a7c1e4b5d6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f"

func parseFileT(t testing.TB, name string) *Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(name, data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return cfg
}

func TestParseTestdata(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, c *Config)
	}{
		{"single.yaml", func(t *testing.T, c *Config) {
			if !c.Auth.Enabled || !c.Proxy.Enabled || !c.SSH.Enabled {
				t.Errorf("enabled = %v %v %v, want all", c.Auth.Enabled, c.Proxy.Enabled, c.SSH.Enabled)
			}
			if c.Joining() {
				t.Error("single-machine file reports Joining")
			}
			if got := c.AuthAddrs(); !slices.Equal(got, []string{"127.0.0.1:3025"}) {
				t.Errorf("AuthAddrs = %v", got)
			}
			if c.Auth.ClusterName != "demo.example.com" || c.Common.NodeName != "demo" {
				t.Errorf("names = %q %q", c.Auth.ClusterName, c.Common.NodeName)
			}
			if len(c.Auth.Tokens) != 1 || !slices.Equal(c.Auth.Tokens[0].Roles, []string{"proxy", "node"}) || c.Auth.Tokens[0].Token.File() != "/etc/sallyport/static-token" {
				t.Errorf("tokens = %#v", c.Auth.Tokens)
			}
			if !c.Proxy.ACME.Enabled || c.Proxy.ACME.Email != "admin@example.com" {
				t.Errorf("acme = %+v", c.Proxy.ACME)
			}
			if c.Proxy.TunnelListenAddr != DefaultTunnelListenAddr || c.Proxy.ListenerMode != "multiplex" {
				t.Errorf("proxy defaults = %q %q", c.Proxy.TunnelListenAddr, c.Proxy.ListenerMode)
			}
			if c.SSH.Labels["role"] != "all-in-one" || c.SSH.SessionRecording != "node" {
				t.Errorf("ssh = %+v", c.SSH)
			}
			if c.Common.Storage.Type != "sqlite" || c.Common.Storage.URI != "sqlite:///var/lib/sallyport/state.db" {
				t.Errorf("storage = %+v", c.Common.Storage)
			}
		}},
		{"ha-auth.yaml", func(t *testing.T, c *Config) {
			if !c.Auth.Enabled || c.Proxy.Enabled || c.SSH.Enabled {
				t.Errorf("enabled = %v %v %v", c.Auth.Enabled, c.Proxy.Enabled, c.SSH.Enabled)
			}
			if c.Common.Storage.Type != "postgres" || c.Common.Log.Format != "json" {
				t.Errorf("storage/log = %+v %+v", c.Common.Storage, c.Common.Log)
			}
			if !slices.Equal(c.Auth.PublicAddrs, []string{"auth.internal:3025"}) {
				t.Errorf("public_addr = %v", c.Auth.PublicAddrs)
			}
		}},
		{"ha-proxy.yaml", func(t *testing.T, c *Config) {
			if c.Auth.Enabled || !c.Proxy.Enabled || !c.Joining() {
				t.Errorf("enabled = %v %v joining=%v", c.Auth.Enabled, c.Proxy.Enabled, c.Joining())
			}
			if got := c.AuthAddrs(); !slices.Equal(got, []string{"auth.internal:3025"}) {
				t.Errorf("AuthAddrs = %v", got)
			}
			if c.Common.JoinParams.TokenName.File() != "/var/lib/sallyport/join-token" || c.Common.JoinParams.TokenName.Value() != "" {
				t.Errorf("token file = %q", c.Common.JoinParams.TokenName.File())
			}
			if c.Proxy.ProxyProtocol != "on" || !slices.Equal(c.Proxy.ProxyProtocolTrustedNetworks, []string{"10.0.0.0/8"}) {
				t.Errorf("proxy protocol = %q %v", c.Proxy.ProxyProtocol, c.Proxy.ProxyProtocolTrustedNetworks)
			}
			if len(c.Proxy.HTTPSKeyPairs) != 1 || c.Proxy.HTTPSKeyPairs[0].CertFile != "/etc/sallyport/tls/proxy.crt" {
				t.Errorf("keypairs = %+v", c.Proxy.HTTPSKeyPairs)
			}
			if !slices.Equal(c.Proxy.PublicAddrs, []string{"proxy.example.com:443"}) {
				t.Errorf("public_addr = %v", c.Proxy.PublicAddrs)
			}
		}},
		{"ha-agent.yaml", func(t *testing.T, c *Config) {
			if c.Auth.Enabled || c.Proxy.Enabled || !c.SSH.Enabled || !c.Joining() {
				t.Errorf("enabled = %v %v %v", c.Auth.Enabled, c.Proxy.Enabled, c.SSH.Enabled)
			}
			if c.Common.ProxyServer != "proxy.example.com:443" || c.AuthAddrs() != nil {
				t.Errorf("proxy_server = %q auth addrs %v", c.Common.ProxyServer, c.AuthAddrs())
			}
			if c.SSH.ListenAddr != DefaultSSHListenAddr || c.SSH.Labels["team"] != "data" {
				t.Errorf("ssh = %+v", c.SSH)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := parseFileT(t, tt.file)
			tt.check(t, c)
			// The file round-trips through Marshal.
			out, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := Parse("marshaled", out)
			if err != nil {
				t.Fatalf("reparse: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(c, c2) {
				t.Errorf("round trip differs:\n%#v\n%#v", c, c2)
			}
		})
	}
}

func TestParseEmptyFileDefaults(t *testing.T) {
	for _, data := range []string{"", "# nothing\n", "---\n", "version: v3\n"} {
		c, err := Parse("empty.yaml", []byte(data))
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		host, _ := os.Hostname()
		want := &Config{Version: "v3"}
		want.Common.NodeName = hostname()
		want.Common.DataDir = "/var/lib/sallyport"
		want.Common.JoinParams.Method = "token"
		want.Common.Log = Log{Severity: "info", Format: "text"}
		want.Common.Storage = Storage{Type: "sqlite", URI: "sqlite:///var/lib/sallyport/state.db", AuditSessionsURI: "file:///var/lib/sallyport/records"}
		want.Auth = Auth{ListenAddr: "0.0.0.0:3025", ClusterName: hostname(), Authentication: Authentication{SecondFactor: "otp"}, KeepAliveInterval: 5 * time.Minute, KeepAliveCountMax: 3}
		want.Proxy = Proxy{WebListenAddr: "0.0.0.0:3080", TunnelListenAddr: "0.0.0.0:3024", ListenAddr: "0.0.0.0:3023", PeerListenAddr: "0.0.0.0:3021", ListenerMode: "multiplex"}
		want.SSH = SSH{ListenAddr: "0.0.0.0:3022", SessionRecording: "node"}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("%q (host %q):\n got %#v\nwant %#v", data, host, c, want)
		}
	}
}

func TestParseForms(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(c *Config) bool
	}{
		{"section present means enabled", "proxy_service:\n  web_listen_addr: :3080\nauth_service: {}\n", func(c *Config) bool { return c.Proxy.Enabled && c.Auth.Enabled && !c.SSH.Enabled }},
		{"empty section means enabled", "auth_service:\n", func(c *Config) bool { return c.Auth.Enabled }},
		{"enabled off", "auth_service:\n  enabled: off\n", func(c *Config) bool { return !c.Auth.Enabled }},
		{"token synonym", "sallyport:\n  join_params: {token: abc}\n", func(c *Config) bool { return c.Common.JoinParams.TokenName.Value() == "abc" }},
		{"ca_pin list", "sallyport:\n  ca_pin: [" + pin + ", /etc/pin]\n", func(c *Config) bool { return len(c.Common.CAPins) == 2 }},
		{"public_addr string", "auth_service: {}\nproxy_service:\n  public_addr: p.example.com\n", func(c *Config) bool { return slices.Equal(c.Proxy.PublicAddrs, []string{"p.example.com"}) }},
		{"public_addr ipv6", "auth_service: {}\nproxy_service:\n  public_addr: ['[::1]:443', '::1', '[fe80::1]']\n", func(c *Config) bool { return len(c.Proxy.PublicAddrs) == 3 }},
		{"severity upper case", "sallyport:\n  log: {severity: DEBUG}\n", func(c *Config) bool { return c.Common.Log.Severity == "debug" }},
		{"storage type from uri", "sallyport:\n  storage: {uri: 'etcd://10.0.0.1:2379,10.0.0.2:2379'}\n", func(c *Config) bool { return c.Common.Storage.Type == "etcd" }},
		{"postgresql scheme", "sallyport:\n  storage: {uri: 'postgresql://u@db/x'}\n", func(c *Config) bool { return c.Common.Storage.Type == "postgres" }},
		{"memory type", "sallyport:\n  storage: {type: memory}\n", func(c *Config) bool { return c.Common.Storage.URI == "memory://" }},
		{"durations", "auth_service:\n  keep_alive_interval: 30s\n  client_idle_timeout: 1h30m\n", func(c *Config) bool {
			return c.Auth.KeepAliveInterval == 30*time.Second && c.Auth.ClientIdleTimeout == 90*time.Minute
		}},
		{"anchors and aliases", "x: &a 127.0.0.1:4000\n", nil},
		{"separate mode", "auth_service: {}\nproxy_service:\n  proxy_listener_mode: separate\n  ssh_public_addr: p:3023\n  tunnel_public_addr: [p:3024]\n", func(c *Config) bool {
			return c.Proxy.ListenerMode == "separate" && c.Proxy.SSHPublicAddrs[0] == "p:3023" && c.Proxy.TunnelPublicAddrs[0] == "p:3024"
		}},
		{"port zero listen", "auth_service:\n  listen_addr: 127.0.0.1:0\nproxy_service:\n  web_listen_addr: 127.0.0.1:0\n  peer_listen_addr: 127.0.0.1:0\n", func(c *Config) bool { return c.Auth.ListenAddr == "127.0.0.1:0" }},
		{"off words", "auth_service:\n  authentication: {second_factor: off}\nproxy_service:\n  proxy_protocol: off\n", func(c *Config) bool {
			return c.Auth.Authentication.SecondFactor == "off" && c.Proxy.ProxyProtocol == "off"
		}},
		{"quoted on", "auth_service: {}\nproxy_service:\n  proxy_protocol: 'on'\n  proxy_protocol_trusted_networks: [10.1.2.3, 'fd00::/8']\n", func(c *Config) bool {
			return c.Proxy.ProxyProtocol == "on" && len(c.Proxy.ProxyProtocolTrustedNetworks) == 2
		}},
		{"data dir derives storage", "sallyport:\n  data_dir: /srv/sp/\n", func(c *Config) bool {
			return c.Common.Storage.URI == "sqlite:///srv/sp/state.db" && c.Common.Storage.AuditSessionsURI == "file:///srv/sp/records"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("f.yaml", []byte(tt.yaml))
			if tt.check == nil {
				// anchors at top level of unknown keys must still be rejected
				if err == nil {
					t.Fatal("unknown key accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config:\n%s", c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		line     int
		path     string
		sentinel error
		reason   string
	}{
		{"unknown top-level key", "version: v3\nteleport:\n  nodename: x\n", 2, "teleport", ErrUnknownKey, `unknown key; the common section is called "sallyport"`},
		{"top-level cluster_name", "version: v3\ncluster_name: example.com\n", 2, "cluster_name", ErrUnknownKey, "belongs under auth_service"},
		{"unknown key without hint", "versoin: v3\n", 1, "versoin", ErrUnknownKey, "allowed: version, sallyport, auth_service, proxy_service, ssh_service"},
		{"unknown nested key", "proxy_service:\n  enabled: yes\n  web_listen: 1.2.3.4:3080\n", 3, "proxy_service.web_listen", ErrUnknownKey, "allowed: enabled, web_listen_addr"},
		{"listener mode typo", "version: v3\nproxy_service:\n  enabled: true\n  proxy_listener_mode: multipex\n", 4, "proxy_service.proxy_listener_mode", ErrInvalid, `"multipex" is not one of multiplex, separate`},
		{"bad version", "version: v2\n", 1, "version", ErrInvalid, `"v2" is not one of v3`},
		{"bad listen port", "auth_service:\n  listen_addr: 0.0.0.0:99999\n", 2, "auth_service.listen_addr", ErrInvalid, "port"},
		{"listen without port", "ssh_service:\n  listen_addr: 0.0.0.0\n", 2, "ssh_service.listen_addr", ErrInvalid, "host:port"},
		{"bad host", "sallyport:\n  auth_server: 'bad host:3025'\n  ca_pin: " + pin + "\n", 2, "sallyport.auth_server[0]", ErrInvalid, "host"},
		{"dial without host", "sallyport:\n  proxy_server: ':443'\n", 2, "sallyport.proxy_server", ErrInvalid, "no host"},
		{"second list item", "proxy_service:\n  public_addr:\n    - ok.example.com:443\n    - 'no good:443'\n", 4, "proxy_service.public_addr[1]", ErrInvalid, "host"},
		{"bad bool", "auth_service:\n  enabled: maybe\n", 2, "auth_service.enabled", ErrInvalid, "not one of true, false"},
		{"bad duration", "auth_service:\n  keep_alive_interval: 5 minutes\n", 2, "auth_service.keep_alive_interval", ErrInvalid, "duration"},
		{"negative duration", "auth_service:\n  client_idle_timeout: -1s\n", 2, "auth_service.client_idle_timeout", ErrInvalid, "duration"},
		{"bad int", "auth_service:\n  keep_alive_count_max: lots\n", 2, "auth_service.keep_alive_count_max", ErrInvalid, "whole number"},
		{"bad second factor", "auth_service:\n  authentication:\n    second_factor: webauthn\n", 3, "auth_service.authentication.second_factor", ErrInvalid, "off, otp"},
		{"bad severity", "sallyport:\n  log:\n    severity: loud\n", 3, "sallyport.log.severity", ErrInvalid, "debug, info, warn, error"},
		{"bad session recording", "ssh_service:\n  session_recording: proxy\n", 2, "ssh_service.session_recording", ErrInvalid, "node, off"},
		{"bad proxy protocol", "proxy_service:\n  proxy_protocol: maybe\n", 2, "proxy_service.proxy_protocol", ErrInvalid, "on, off"},
		{"bad cidr", "proxy_service:\n  proxy_protocol_trusted_networks: [10.0.0.0/33]\n", 2, "proxy_service.proxy_protocol_trusted_networks[0]", ErrInvalid, "CIDR"},
		{"bad pin", "sallyport:\n  ca_pin: sha1:abcd\n", 2, "sallyport.ca_pin[0]", ErrInvalid, "sha256"},
		{"relative data dir", "sallyport:\n  data_dir: data\n", 2, "sallyport.data_dir", ErrInvalid, "absolute"},
		{"bad storage scheme", "sallyport:\n  storage:\n    uri: mysql://db/x\n", 3, "sallyport.storage.uri", ErrInvalid, "scheme"},
		{"relative sqlite", "sallyport:\n  storage:\n    uri: sqlite://state.db\n", 3, "sallyport.storage.uri", ErrInvalid, "absolute"},
		{"bad etcd endpoint", "sallyport:\n  storage:\n    uri: etcd://a:1,b\n", 3, "sallyport.storage.uri", ErrInvalid, "endpoint"},
		{"storage type mismatch", "sallyport:\n  storage:\n    type: etcd\n    uri: postgres://db/x\n", 3, "sallyport.storage.type", ErrConflict, "does not match"},
		{"postgres without uri", "sallyport:\n  storage:\n    type: postgres\n", 2, "sallyport.storage.uri", ErrMissing, "uri is required"},
		{"bad sessions uri", "sallyport:\n  storage:\n    audit_sessions_uri: s3:///nobucket\n", 3, "sallyport.storage.audit_sessions_uri", ErrInvalid, "bucket"},
		{"bad events uri", "sallyport:\n  storage:\n    audit_events_uri: [stdout://, 'ftp://x']\n", 3, "sallyport.storage.audit_events_uri[1]", ErrInvalid, "scheme"},
		{"bad join method", "sallyport:\n  join_params:\n    method: iam\n", 3, "sallyport.join_params.method", ErrInvalid, "token"},
		{"token and token_name", "sallyport:\n  join_params:\n    token_name: a\n    token: b\n", 4, "sallyport.join_params.token", ErrConflict, "already set on line 3"},
		{"duplicate key", "auth_service:\n  listen_addr: :1\n  listen_addr: :2\n", 3, "auth_service.listen_addr", ErrConflict, "already set on line 2"},
		{"duplicate label", "ssh_service:\n  labels:\n    a: x\n    a: y\n", 4, "ssh_service.labels.a", ErrConflict, "already set"},
		{"bad label name", "ssh_service:\n  labels:\n    'a b': x\n", 3, "ssh_service.labels.a b", ErrInvalid, "label name"},
		{"section is a list", "proxy_service:\n  - enabled\n", 2, "proxy_service", ErrSyntax, "mapping"},
		{"list where value", "sallyport:\n  nodename: [a, b]\n", 2, "sallyport.nodename", ErrSyntax, "single value"},
		{"bad nodename", "sallyport:\n  nodename: 'a b'\n", 2, "sallyport.nodename", ErrInvalid, "letters"},
		{"control character", "sallyport:\n  nodename: \"a\\x07b\"\n", 2, "sallyport.nodename", ErrInvalid, "non-printable"},
		{"custom tag", "sallyport:\n  nodename: !env HOST\n", 2, "sallyport.nodename", ErrInvalid, "custom tag"},
		{"top level list", "- a\n- b\n", 1, "", ErrSyntax, "mapping"},
		{"yaml syntax", "sallyport:\n  nodename: x\n data_dir: /x\n", 2, "", ErrSyntax, ""},
		{"two documents", "version: v3\n---\nversion: v3\n", 2, "", ErrSyntax, "more than one"},
		{"empty list entry", "auth_service:\n  public_addr:\n    -\n", 3, "auth_service.public_addr[0]", ErrInvalid, "empty"},
		{"keypair half", "proxy_service:\n  enabled: no\n  https_keypairs:\n    - key_file: /k\n", 4, "proxy_service.https_keypairs[0]", ErrMissing, "together"},
		{"keypair unknown key", "proxy_service:\n  https_keypairs:\n    - key_file: /k\n      cert: /c\n", 4, "proxy_service.https_keypairs[0].cert", ErrUnknownKey, "cert_file"},
		{"acme with keypairs", "proxy_service:\n  enabled: no\n  public_addr: p.example.com\n  https_keypairs: [{key_file: /k, cert_file: /c}]\n  acme:\n    enabled: yes\n", 6, "proxy_service.acme.enabled", ErrConflict, "https_keypairs"},
		{"acme without public addr", "proxy_service:\n  enabled: no\n  acme:\n    enabled: yes\n    email: a@b.c\n", 4, "proxy_service.acme.enabled", ErrMissing, "public_addr"},
		{"acme bad email", "proxy_service:\n  acme:\n    email: nobody\n", 3, "proxy_service.acme.email", ErrInvalid, "email"},
		{"joining without token", "sallyport:\n  proxy_server: p.example.com:443\nssh_service:\n  enabled: yes\n", 1, "sallyport.join_params.token_name", ErrMissing, "join token is required"},
		{"joining without server", "sallyport:\n  join_params:\n    token_name: abc\nssh_service: {}\n", 1, "sallyport", ErrMissing, "auth_server or proxy_server"},
		{"joining auth without pin", "sallyport:\n  join_params: {token_name: abc}\n  auth_server: auth.internal:3025\nproxy_service: {}\n", 3, "sallyport.auth_server", ErrMissing, "ca_pin"},
		{"auth and proxy server", "sallyport:\n  auth_server: a:3025\n  proxy_server: p:443\n", 3, "sallyport.proxy_server", ErrConflict, "not both"},
		{"listen address clash", "auth_service:\n  listen_addr: 127.0.0.1:3080\nproxy_service:\n  web_listen_addr: 127.0.0.1:3080\n", 4, "proxy_service.web_listen_addr", ErrConflict, "auth_service.listen_addr"},
		{"static token no roles", "auth_service:\n  tokens: [justatoken]\n", 2, "auth_service.tokens[0]", ErrInvalid, "role"},
		{"static token bad role", "auth_service:\n  tokens: ['wizard:abc']\n", 2, "auth_service.tokens[0]", ErrInvalid, `"wizard"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("config.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; parsed:\n%s", c)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("error %q does not wrap %v", err, tt.sentinel)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %q is not an *Error", err)
			}
			if e.Line != tt.line || e.Path != tt.path || e.File != "config.yaml" {
				t.Errorf("error at %s:%d %q, want line %d path %q: %v", e.File, e.Line, e.Path, tt.line, tt.path, err)
			}
			if !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", e.Reason, tt.reason)
			}
			prefix := fmt.Sprintf("config.yaml:%d: ", tt.line)
			if tt.line == 0 {
				prefix = "config.yaml: "
			}
			if tt.path != "" {
				prefix += tt.path + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("message %q does not start with %q", err.Error(), prefix)
			}
		})
	}
}

func TestParseReportsSeveralErrors(t *testing.T) {
	_, err := Parse("c.yaml", []byte("auth_service:\n  listen_addr: x\n  bogus: 1\nproxy_service:\n  proxy_listener_mode: both\n"))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	// Unknown keys are found while decoding; values after. Decoding errors stop before validation.
	if !strings.Contains(msg, "c.yaml:3: auth_service.bogus: unknown key") {
		t.Errorf("message: %s", msg)
	}
	_, err = Parse("c.yaml", []byte("auth_service:\n  listen_addr: x\nproxy_service:\n  proxy_listener_mode: both\n"))
	for _, want := range []string{"c.yaml:2: auth_service.listen_addr:", "c.yaml:4: proxy_service.proxy_listener_mode:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "sallyport.yaml", `version: v3
sallyport:
  nodename: from-file
  data_dir: /file/data
  join_params:
    token_name: file-token
  ca_pin: `+pin+`
  auth_server: file-auth:3025
  diag_addr: 127.0.0.1:3000
  log:
    severity: warn
proxy_service:
  enabled: yes
`)
	envPin := "sha256:" + strings.Repeat("ab", 32)
	flagPin := "sha256:" + strings.Repeat("cd", 32)
	tests := []struct {
		name  string
		env   map[string]string
		flags []string
		check func(t *testing.T, c *Config)
	}{
		{"file only", nil, nil, func(t *testing.T, c *Config) {
			want(t, c.Common.NodeName, "from-file")
			want(t, c.Common.DataDir, "/file/data")
			want(t, c.Common.JoinParams.TokenName.Value(), "file-token")
			want(t, c.Common.AuthServers[0], "file-auth:3025")
			want(t, c.Common.Log.Severity, "warn")
			want(t, c.Proxy.WebListenAddr, DefaultWebListenAddr) // default
		}},
		{"environment over file", map[string]string{
			"SALLYPORT_NODENAME":     "from-env",
			"SALLYPORT_DATA_DIR":     "/env/data",
			"SALLYPORT_AUTH_TOKEN":   "env-token",
			"SALLYPORT_CA_PIN":       envPin + "," + pin,
			"SALLYPORT_AUTH_SERVER":  "env-auth-1:3025, env-auth-2:3025",
			"SALLYPORT_DIAG_ADDR":    "127.0.0.1:3001",
			"SALLYPORT_LOG_SEVERITY": "debug",
		}, nil, func(t *testing.T, c *Config) {
			want(t, c.Common.NodeName, "from-env")
			want(t, c.Common.DataDir, "/env/data")
			want(t, c.Common.Storage.URI, "sqlite:///env/data/state.db") // defaults follow overrides
			want(t, c.Common.JoinParams.TokenName.Value(), "env-token")
			want(t, strings.Join(c.Common.CAPins, ","), envPin+","+pin)
			want(t, strings.Join(c.Common.AuthServers, ","), "env-auth-1:3025,env-auth-2:3025")
			want(t, c.Common.DiagAddr, "127.0.0.1:3001")
			want(t, c.Common.Log.Severity, "debug")
		}},
		{"flags over environment", map[string]string{
			"SALLYPORT_NODENAME":   "from-env",
			"SALLYPORT_AUTH_TOKEN": "env-token",
			"SALLYPORT_CA_PIN":     envPin,
		}, []string{"-nodename", "from-flag", "-token", "flag-token", "-ca-pin", flagPin, "-data-dir", "/flag/data"}, func(t *testing.T, c *Config) {
			want(t, c.Common.NodeName, "from-flag")
			want(t, c.Common.JoinParams.TokenName.Value(), "flag-token")
			want(t, strings.Join(c.Common.CAPins, ","), flagPin)
			want(t, c.Common.DataDir, "/flag/data")
			want(t, c.Common.AuthServers[0], "file-auth:3025") // untouched
		}},
		{"proxy server replaces auth server", map[string]string{"SALLYPORT_PROXY_SERVER": "lb.example.com:443"}, nil, func(t *testing.T, c *Config) {
			want(t, c.Common.ProxyServer, "lb.example.com:443")
			if len(c.Common.AuthServers) != 0 {
				t.Errorf("auth servers kept: %v", c.Common.AuthServers)
			}
		}},
		{"flag auth server replaces env proxy server", map[string]string{"SALLYPORT_PROXY_SERVER": "lb.example.com:443"}, []string{"-auth-server", "a1:3025", "-auth-server", "a2:3025"}, func(t *testing.T, c *Config) {
			want(t, c.Common.ProxyServer, "")
			want(t, strings.Join(c.Common.AuthServers, ","), "a1:3025,a2:3025")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			o := BindFlags(fs)
			if err := fs.Parse(append([]string{"-config", file}, tt.flags...)); err != nil {
				t.Fatal(err)
			}
			c, err := Load("", o)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func want[T comparable](t testing.TB, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLoadConfigPath(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", "sallyport:\n  nodename: a\n")
	b := writeFile(t, dir, "b.yaml", "sallyport:\n  nodename: b\n")
	c := writeFile(t, dir, "c.yaml", "sallyport:\n  nodename: c\n")

	cfg, err := Load(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	want(t, cfg.Common.NodeName, "a")

	t.Setenv("SALLYPORT_CONFIG", b)
	cfg, err = Load(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	want(t, cfg.Common.NodeName, "b")

	cfg, err = Load(a, &Overrides{ConfigPath: c})
	if err != nil {
		t.Fatal(err)
	}
	want(t, cfg.Common.NodeName, "c")

	_, err = Load(filepath.Join(dir, "missing.yaml"), &Overrides{ConfigPath: filepath.Join(dir, "missing.yaml")})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	t.Setenv("SALLYPORT_CONFIG", "")
	cfg, err = Load("", &Overrides{NodeName: "nofile"})
	if err != nil {
		t.Fatal(err)
	}
	want(t, cfg.Common.NodeName, "nofile")
}

func TestLoadErrorsNameTheSource(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "c.yaml", "sallyport:\n  diag_addr: 127.0.0.1:3000\n")
	t.Setenv("SALLYPORT_DIAG_ADDR", "nonsense")
	_, err := Load(file, nil)
	var e *Error
	if !errors.As(err, &e) || e.Origin != "environment SALLYPORT_DIAG_ADDR" || e.Line != 0 || e.Path != "sallyport.diag_addr" {
		t.Fatalf("env error = %#v (%v)", e, err)
	}
	if !strings.HasPrefix(err.Error(), "environment SALLYPORT_DIAG_ADDR: sallyport.diag_addr: ") {
		t.Errorf("message %q", err)
	}

	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o := BindFlags(fs)
	if err := fs.Parse([]string{"-log-severity", "chatty"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SALLYPORT_DIAG_ADDR", "")
	_, err = Load(file, o)
	if !errors.As(err, &e) || e.Origin != "flag -log-severity" {
		t.Fatalf("flag error = %v", err)
	}
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "  s3cret-join-token\n")
	staticFile := writeFile(t, dir, "static", "static-from-file\n")
	pinFile := writeFile(t, dir, "pins", pin+"\n"+"sha256:"+strings.Repeat("0", 64)+"\n")
	file := writeFile(t, dir, "c.yaml", fmt.Sprintf(`sallyport:
  join_params:
    token_name: %s
  ca_pin: %s
  auth_server: auth:3025
auth_service:
  tokens:
    - "proxy:%s"
    - "node,db:inline-static"
`, tokenFile, pinFile, staticFile))
	c, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	want(t, c.Common.JoinParams.TokenName.Value(), "s3cret-join-token")
	want(t, c.Common.JoinParams.TokenName.File(), tokenFile)
	want(t, c.Auth.Tokens[0].Token.Value(), "static-from-file")
	want(t, c.Auth.Tokens[1].Token.Value(), "inline-static")
	want(t, strings.Join(c.Common.CAPins, " "), pin+" sha256:"+strings.Repeat("0", 64))

	// Marshal writes the path, not the content.
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret-join-token") || !strings.Contains(string(out), tokenFile) {
		t.Errorf("Marshal:\n%s", out)
	}

	// The environment can name a token file too.
	t.Setenv("SALLYPORT_AUTH_TOKEN", staticFile)
	c, err = Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	want(t, c.Common.JoinParams.TokenName.Value(), "static-from-file")

	tests := []struct {
		name, content, path, reason string
		env                         map[string]string
	}{
		{"missing token file", "sallyport:\n  join_params:\n    token_name: " + filepath.Join(dir, "nope") + "\n", "sallyport.join_params.token_name", "no such file", nil},
		{"empty token file", "sallyport:\n  join_params:\n    token_name: " + writeFile(t, dir, "empty", "\n\n") + "\n", "sallyport.join_params.token_name", "empty", nil},
		{"bad pin in file", "sallyport:\n  ca_pin: " + writeFile(t, dir, "badpin", "sha256:xyz\n") + "\n", "sallyport.ca_pin[0]", "sha256", nil},
		{"missing static token file", "auth_service:\n  tokens: ['node:" + filepath.Join(dir, "nope") + "']\n", "auth_service.tokens[0]", "no such file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SALLYPORT_AUTH_TOKEN", "")
			f := writeFile(t, t.TempDir(), "c.yaml", tt.content)
			_, err := Load(f, nil)
			var e *Error
			if !errors.As(err, &e) || e.Path != tt.path || !strings.Contains(e.Reason, tt.reason) || e.File != f || e.Line == 0 {
				t.Fatalf("err = %v (%#v)", err, e)
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	const secret = "TOPSECRET-42"
	dir := t.TempDir()
	file := writeFile(t, dir, "c.yaml", `sallyport:
  join_params:
    token_name: `+secret+`
  proxy_server: p.example.com:443
  storage:
    uri: postgres://user:`+secret+`@db.example.com/x?password=`+secret+`
    audit_sessions_uri: s3://bucket/p?secret=`+secret+`
auth_service:
  tokens: ["proxy:`+secret+`"]
ssh_service: {}
`)
	c, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Common.JoinParams.TokenName.Value() != secret {
		t.Fatal("token not read")
	}
	var logBuf strings.Builder
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("cfg", "token", c.Common.JoinParams.TokenName, "tokens", c.Auth.Tokens)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String":  c.String(),
		"%v":      fmt.Sprintf("%v", c),
		"%+v *":   fmt.Sprintf("%+v", *c),
		"%#v":     fmt.Sprintf("%#v", c.Common.JoinParams),
		"%s":      fmt.Sprintf("%s", c.Common.JoinParams.TokenName),
		"%q":      fmt.Sprintf("%q", c.Common.JoinParams.TokenName),
		"%x":      fmt.Sprintf("%x", c.Common.JoinParams.TokenName),
		"%d":      fmt.Sprintf("%d", c.Common.JoinParams.TokenName),
		"tokens":  fmt.Sprintf("%+v %#v", c.Auth.Tokens, c.Auth.Tokens),
		"slog":    logBuf.String(),
		"json":    string(js),
		"section": fmt.Sprintf("%v", c.Common),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the secret: %s", name, out)
		}
		if name != "section" && name != "%+v *" && name != "json" && !strings.Contains(out, redacted) {
			t.Errorf("%s does not say %s: %s", name, redacted, out)
		}
	}
	o := &Overrides{AuthToken: secret, NodeName: "n"}
	for _, out := range []string{fmt.Sprintf("%v", o), fmt.Sprintf("%+v", *o), fmt.Sprintf("%#v", o), fmt.Sprintf("%s", o)} {
		if strings.Contains(out, secret) || !strings.Contains(out, redacted) || !strings.Contains(out, "NodeName:n") {
			t.Errorf("Overrides printed as %s", out)
		}
	}
	if !strings.Contains(c.String(), "postgres://user:redacted@db.example.com/x") {
		t.Errorf("String does not show a redacted URI:\n%s", c)
	}

	// Errors about secret values never quote them.
	bad := []string{
		"sallyport:\n  join_params:\n    token_name: \"" + secret + "\\x01\"\n",
		"auth_service:\n  tokens: [\"" + secret + "\"]\n",
		"sallyport:\n  storage:\n    uri: \"postgres://u:" + secret + "@:bad/\"\n",
		"sallyport:\n  storage:\n    uri: \"postgres://u:" + secret + "@db:99999/\"\n",
		"sallyport:\n  storage:\n    uri: \"mysql://u:" + secret + "@db/\"\n",
	}
	for _, b := range bad {
		_, err := Parse("c.yaml", []byte(b))
		if err == nil {
			t.Errorf("accepted %q", b)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestValidate(t *testing.T) {
	c := &Config{}
	c.Common.NodeName = "n1"
	c.Proxy.Enabled = true
	c.Proxy.ListenerMode = "both"
	err := c.Validate()
	var e *Error
	if !errors.As(err, &e) || e.Line != 0 {
		t.Fatalf("Validate = %v", err)
	}
	if !strings.Contains(err.Error(), "proxy_service.proxy_listener_mode") || !strings.Contains(err.Error(), "join token is required") {
		t.Errorf("Validate = %v", err)
	}
	c.Proxy.ListenerMode = ""
	c.Proxy.Enabled = false
	if err := c.Validate(); err != nil {
		t.Errorf("defaulted config: %v", err)
	}
	want(t, c.Proxy.ListenerMode, "multiplex")
}

// TestDocumentsEveryKey keeps the file reference in doc.go complete.
func TestDocumentsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(rt reflect.Type, path string)
	walk = func(rt reflect.Type, path string) {
		for _, f := range fieldsOf(rt) {
			ft := rt.Field(f.index).Type
			p := join(path, f.key)
			keys = append(keys, p)
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != secretType && ft != staticTokenType {
				walk(ft, p)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	for _, k := range keys {
		last := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(doc), last+":") {
			t.Errorf("doc.go does not document %s", k)
		}
	}
	for _, ov := range overrides {
		if !strings.Contains(string(doc), ov.env) || !strings.Contains(string(doc), "-"+ov.flag) {
			t.Errorf("doc.go does not document %s / -%s", ov.env, ov.flag)
		}
	}
}

// TestDocExamples parses the example files shown in doc.go.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	for _, line := range strings.Split(string(doc), "\n") {
		if s, ok := strings.CutPrefix(line, "//\t"); ok {
			cur = append(cur, s)
			continue
		}
		if line == "//" && len(cur) > 0 {
			cur = append(cur, "")
			continue
		}
		if len(cur) > 0 {
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
			cur = nil
		}
	}
	n := 0
	for _, b := range blocks {
		if !strings.HasPrefix(b, "version: v3") {
			continue
		}
		if strings.Contains(b, "<64 hex>") {
			// The reference lists every key (some exclusive with each other):
			// it must decode with no unknown key or malformed value.
			b = strings.ReplaceAll(b, "sha256:<64 hex>", pin)
			if _, _, err := parseFile("reference", []byte(b)); err != nil {
				t.Errorf("reference: %v", err)
			}
			continue
		}
		n++
		if _, err := Parse("doc.go example", []byte(b)); err != nil {
			t.Errorf("%v\n%s", err, b)
		}
	}
	if n != 4 {
		t.Errorf("found %d example files in doc.go, want 4", n)
	}
}

func TestLogHandler(t *testing.T) {
	tests := []struct {
		name string
		log  Log
		want string // substring of the output of an Info and a Debug record
		none string
	}{
		{"text info", Log{Severity: "info", Format: "text"}, "level=INFO msg=shown", "hidden"},
		{"json debug", Log{Severity: "debug", Format: "json"}, `"msg":"hidden"`, "level=INFO"},
		{"error only", Log{Severity: "error"}, "", "shown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			l := slog.New(tt.log.Handler(&b))
			l.Info("shown")
			l.Debug("hidden")
			if !strings.Contains(b.String(), tt.want) || strings.Contains(b.String(), tt.none) {
				t.Errorf("output %q", b.String())
			}
		})
	}
	want(t, Log{Severity: "warn"}.Level(), slog.LevelWarn)
}

func TestParseLimits(t *testing.T) {
	big := []byte("sallyport:\n  nodename: " + strings.Repeat("a", MaxFileSize) + "\n")
	if _, err := Parse("big.yaml", big); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
	var b strings.Builder
	for i := 0; b.Len() < MaxFileSize-100; i++ {
		fmt.Fprintf(&b, "k%d: v\n", i)
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("many unknown keys: %v", err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n > maxErrors {
		t.Errorf("%d errors reported, want at most %d", n, maxErrors)
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "single.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("single.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
