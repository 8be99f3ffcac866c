package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sallyport/sallyport/config"
	"github.com/sallyport/sallyport/mux"
	"github.com/sallyport/sallyport/proxy"
)

func TestProxyConfig(t *testing.T) {
	dir := t.TempDir()
	kp := writeKeyPair(t, dir, nil, "proxy.example.com")
	cases := []struct {
		name    string
		yaml    string
		wantErr string
		check   func(t *testing.T, pc *proxy.Config)
	}{
		{
			name: "ha pool instance",
			yaml: `version: v3
sallyport:
  nodename: proxy-1
  data_dir: /var/lib/sallyport
  join_params: {token_name: tok123}
  ca_pin: sha256:2f3a7c1e4b5d6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f
  auth_server: [auth.internal:3025]
  ciphers: aes128-gcm@openssh.com
proxy_service:
  enabled: yes
  web_listen_addr: 0.0.0.0:443
  public_addr: proxy.example.com:443
  https_keypairs:
    - {key_file: ` + kp.KeyFile + `, cert_file: ` + kp.CertFile + `}
  proxy_protocol: on
  proxy_protocol_trusted_networks: [10.0.0.0/8, 192.168.1.7]
`,
			check: func(t *testing.T, pc *proxy.Config) {
				if pc.JoinToken != "tok123" || pc.CAPin != "sha256:2f3a7c1e4b5d6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f" {
					t.Errorf("join: %q %q", pc.JoinToken, pc.CAPin)
				}
				if strings.Join(pc.AuthAddrs, ",") != "auth.internal:3025" || pc.NodeName != "proxy-1" {
					t.Errorf("auth %v node %q", pc.AuthAddrs, pc.NodeName)
				}
				if strings.Join(pc.SSHCiphers, ",") != "aes128-gcm@openssh.com" {
					t.Errorf("SSH ciphers %v", pc.SSHCiphers)
				}
				if pc.Mode != proxy.Multiplex || pc.WebListenAddr != "0.0.0.0:443" || strings.Join(pc.PublicAddrs, ",") != "proxy.example.com:443" {
					t.Errorf("listen %v %q %v", pc.Mode, pc.WebListenAddr, pc.PublicAddrs)
				}
				want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}
				if pc.ProxyProtocol != mux.ProxyRequired || len(pc.TrustedNetworks) != 2 || pc.TrustedNetworks[0] != want[0] || pc.TrustedNetworks[1] != want[1] {
					t.Errorf("proxy protocol %v %v", pc.ProxyProtocol, pc.TrustedNetworks)
				}
				if pc.TLSConfig == nil || pc.TLSConfig.GetCertificate == nil {
					t.Fatal("no TLS config from https_keypairs")
				}
				c, err := pc.TLSConfig.GetCertificate(nil)
				if err != nil || c.Leaf == nil || c.Leaf.Subject.CommonName != "proxy.example.com" {
					t.Errorf("certificate %v %v", c, err)
				}
			},
		},
		{
			name: "single machine file, separate ports",
			yaml: `version: v3
sallyport:
  data_dir: ` + dir + `
auth_service:
  listen_addr: 0.0.0.0:3025
  authentication: {second_factor: "off"}
proxy_service:
  proxy_listener_mode: separate
  listen_addr: 127.0.0.1:4023
  tunnel_listen_addr: 127.0.0.1:4024
  proxy_protocol: "off"
`,
			check: func(t *testing.T, pc *proxy.Config) {
				if strings.Join(pc.AuthAddrs, ",") != "127.0.0.1:3025" {
					t.Errorf("auth addrs %v, want the local auth service", pc.AuthAddrs)
				}
				if pc.JoinToken != "" || pc.TLSConfig != nil {
					t.Errorf("token %q tls %v", pc.JoinToken, pc.TLSConfig)
				}
				if pc.Mode != proxy.Separate || pc.SSHListenAddr != "127.0.0.1:4023" || pc.TunnelListenAddr != "127.0.0.1:4024" || pc.WebListenAddr != config.DefaultWebListenAddr {
					t.Errorf("mode %v ssh %q tunnel %q web %q", pc.Mode, pc.SSHListenAddr, pc.TunnelListenAddr, pc.WebListenAddr)
				}
				if pc.ProxyProtocol != mux.ProxyOff || pc.SecondFactor != "off" {
					t.Errorf("proxy protocol %v second factor %q", pc.ProxyProtocol, pc.SecondFactor)
				}
			},
		},
		{
			name: "joins through a proxy: refused",
			yaml: `version: v3
sallyport:
  join_params: {token_name: x}
  ca_pin: sha256:2f3a7c1e4b5d6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f
  proxy_server: other:443
proxy_service: {enabled: yes}
`,
			wantErr: "sallyport.auth_server",
		},
		{
			name: "acme: refused with advice",
			yaml: `version: v3
sallyport:
  data_dir: /x
auth_service: {enabled: yes}
proxy_service:
  public_addr: a.example.com:443
  acme: {enabled: yes, email: a@example.com}
`,
			wantErr: "https_keypairs",
		},
		{
			name: "unreadable keypair",
			yaml: `version: v3
sallyport:
  data_dir: /x
auth_service: {enabled: yes}
proxy_service:
  https_keypairs: [{key_file: /nonexistent.key, cert_file: /nonexistent.crt}]
`,
			wantErr: "proxy_service.https_keypairs",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse(filepath.Join(dir, "x.yaml"), []byte(tc.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			pc, _, err := proxyConfig(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, pc)
		})
	}
}

// TestFileErrors checks that the binary reports a bad file with its line.
func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "version: v3\nsallyport:\n  data_dir: /x\nproxy_service:\n  web_listen: 1.2.3.4:1\n", "bad.yaml:5: proxy_service.web_listen: unknown key"},
		{"bad value", "version: v3\nsallyport:\n  data_dir: /x\nauth_service: {enabled: yes}\nproxy_service:\n  proxy_listener_mode: sideways\n", "bad.yaml:6"},
		{"section off", "version: v3\nsallyport:\n  data_dir: /x\nauth_service: {enabled: yes}\n", "proxy_service is not enabled"},
		{"unknown cipher", "version: v3\nsallyport:\n  data_dir: /x\n  ciphers: [aes128-gcm@openssh.com, rot13]\nauth_service: {enabled: yes}\nproxy_service: {enabled: yes}\n", `bad.yaml:4: sallyport.ciphers[1]: "rot13" is not a supported SSH cipher`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.yaml")
			if err := writeFile(path, tc.yaml); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			err := run(t.Context(), []string{"-config", path}, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReferenceFiles translates the reference files of package config:
// the HA guide's proxy pool instance and the single-machine file.
func TestReferenceFiles(t *testing.T) {
	cases := []struct{ file, wantErr string }{
		// Its keypair files exist only on a real machine.
		{"ha-proxy.yaml", "/etc/sallyport/tls/proxy.crt"},
		// ACME is not built in.
		{"single.yaml", "proxy_service.acme"},
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
			_, _, err = proxyConfig(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("proxyConfig: %v, want %q", err, tc.wantErr)
			}
			// Without the parts this machine lacks, the rest translates.
			cfg.Proxy.HTTPSKeyPairs, cfg.Proxy.ACME.Enabled = nil, false
			pc, _, err := proxyConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(pc.AuthAddrs) == 0 || pc.WebListenAddr != cfg.Proxy.WebListenAddr || len(pc.PublicAddrs) == 0 {
				t.Fatalf("translated %+v", pc)
			}
		})
	}
}
