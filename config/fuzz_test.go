package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, and that every file it
// accepts survives Marshal and Parse again unchanged.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"version: v3\n",
		"auth_service: {}\n",
		"proxy_service:\n  public_addr: ['[::1]:443', '::1']\nauth_service:\n",
		"sallyport:\n  join_params: {token: 'x:y'}\n  proxy_server: p:1\nssh_service: {labels: {a: '1', 'b/c': ''}}\n",
		"auth_service:\n  tokens: 'node,proxy:abc'\n  keep_alive_interval: 1h2m3.5s\n",
		"a: &x {b: *x}\n",
		"sallyport: &s\n  nodename: n\nauth_service: *s\n",
		"sallyport:\n  storage: {uri: 'etcd://h:1,h:2/p', audit_events_uri: stdout://}\n",
		"- [\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		c2, err := Parse("marshaled.yaml", out)
		if err != nil {
			t.Fatalf("reparse: %v\ninput:\n%s\nmarshaled:\n%s", err, data, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs\ninput:\n%s\nmarshaled:\n%s\nfirst:  %#v\nsecond: %#v", data, out, c, c2)
		}
		_ = c.String()
	})
}

// FuzzMarshal builds configurations with arbitrary values in the free-form
// fields and checks that every valid one survives Marshal and Parse.
func FuzzMarshal(f *testing.F) {
	f.Add("node-1", "env", "prod", "tok", "a@b.c", "/var/lib/x", "p.example.com:443", "postgres://u@db/x?sslmode=disable", "key.pem", int64(5e9))
	f.Add("x", "a/b:c", "- [ ] # : ' \"", "/run/tok", "", "/a b/'c'", "[::1]:8", "etcd://a:1,b:2", "/k", int64(1))
	f.Add("1e3", "yes", "null", "~", "on@off", "/~", "0.0.0.0", "sqlite:///x y.db", "", int64(0))
	f.Fuzz(func(t *testing.T, node, lk, lv, token, email, dir, addr, uri, keyFile string, idle int64) {
		c := &Config{}
		c.Common.NodeName = node
		c.Common.DataDir = dir
		c.Common.JoinParams.TokenName = NewSecret(token)
		c.Common.ProxyServer = addr
		c.SSH.Enabled = true
		c.SSH.Labels = map[string]string{lk: lv}
		c.SSH.PublicAddrs = []string{addr}
		c.Proxy.ACME.Email = email
		c.Auth.Tokens = []StaticToken{{Roles: []string{"node"}, Token: NewSecret(token)}}
		c.Auth.ClientIdleTimeout = time.Duration(idle)
		c.Common.Storage.URI = uri
		c.Common.Storage.AuditEventsURI = []string{uri}
		c.Proxy.HTTPSKeyPairs = []KeyPair{{KeyFile: keyFile, CertFile: keyFile + ".crt"}}
		if token == "" || c.Validate() != nil {
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse("m.yaml", out)
		if err != nil {
			t.Fatalf("reparse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs\n%s\n%#v\n%#v", out, c, c2)
		}
	})
}
