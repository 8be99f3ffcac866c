package proxyconnect

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
)

// TestProxyFor is the table of proxy selection over Config values.
func TestProxyFor(t *testing.T) {
	const (
		httpsProxy = "http://https-proxy:3128"
		httpProxy  = "http://http-proxy:3128"
	)
	both := Config{HTTPSProxy: httpsProxy, HTTPProxy: httpProxy}
	with := func(c Config, noProxy string) Config { c.NoProxy = noProxy; return c }
	for _, tc := range []struct {
		name   string
		cfg    Config
		target string
		want   string // "" means direct
	}{
		{"zero config is direct", Config{}, "example.com:443", ""},
		{"https by default", both, "example.com:443", httpsProxy},
		{"https default on any port", both, "example.com:80", httpsProxy},
		{"http when asked", Config{HTTPSProxy: httpsProxy, HTTPProxy: httpProxy, TargetScheme: "http"}, "example.com:443", httpProxy},
		{"scheme is case-insensitive", Config{HTTPProxy: httpProxy, TargetScheme: "HTTP"}, "example.com:443", httpProxy},
		{"only HTTP_PROXY set: https targets direct", Config{HTTPProxy: httpProxy}, "example.com:443", ""},
		{"bare host:port means http", Config{HTTPSProxy: "proxy.corp:8080"}, "example.com:443", "http://proxy.corp:8080"},
		{"bare IP:port means http", Config{HTTPSProxy: "10.0.0.1:8080"}, "example.com:443", "http://10.0.0.1:8080"},
		{"bare userinfo", Config{HTTPSProxy: "u:p@proxy.corp:8080"}, "example.com:443", "http://u:p@proxy.corp:8080"},
		{"https proxy", Config{HTTPSProxy: "https://proxy.corp"}, "example.com:443", "https://proxy.corp"},
		{"socks5h proxy", Config{HTTPSProxy: "SOCKS5H://proxy.corp:1080"}, "example.com:443", "socks5h://proxy.corp:1080"},
		{"localhost never proxied", both, "localhost:443", ""},
		{"loopback v4 never proxied", both, "127.0.0.1:443", ""},
		{"loopback v6 never proxied", both, "[::1]:443", ""},
		{"no_proxy host", with(both, "example.com"), "example.com:443", ""},
		{"no_proxy host matches subdomain", with(both, "example.com"), "api.example.com:443", ""},
		{"no_proxy host other domain", with(both, "example.com"), "example.org:443", httpsProxy},
		{"no_proxy host is not a suffix match", with(both, "example.com"), "badexample.com:443", httpsProxy},
		{"no_proxy .domain subdomain", with(both, ".example.com"), "api.example.com:443", ""},
		{"no_proxy .domain not apex", with(both, ".example.com"), "example.com:443", httpsProxy},
		{"no_proxy *.domain", with(both, "*.example.com"), "api.example.com:443", ""},
		{"no_proxy host:port matching", with(both, "example.com:8443"), "example.com:8443", ""},
		{"no_proxy host:port other port", with(both, "example.com:8443"), "example.com:443", httpsProxy},
		{"no_proxy CIDR inside", with(both, "10.0.0.0/8"), "10.1.2.3:443", ""},
		{"no_proxy CIDR outside", with(both, "10.0.0.0/8"), "192.168.1.1:443", httpsProxy},
		{"no_proxy IPv6 CIDR", with(both, "fd00::/8"), "[fd00::5]:443", ""},
		{"no_proxy IP", with(both, "192.168.1.1"), "192.168.1.1:22", ""},
		{"no_proxy IP:port other port", with(both, "192.168.1.1:22"), "192.168.1.1:443", httpsProxy},
		{"no_proxy list with spaces", with(both, " a.com , example.com "), "example.com:443", ""},
		{"no_proxy star", with(both, "*"), "example.com:443", ""},
		{"no_proxy case-insensitive", with(both, "EXAMPLE.com"), "Example.COM:443", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			d := &Dialer{Config: &cfg}
			got, err := d.ProxyFor(tc.target)
			if err != nil {
				t.Fatalf("ProxyFor: %v", err)
			}
			if s := urlString(got); s != tc.want {
				t.Fatalf("ProxyFor(%q) = %q, want %q", tc.target, s, tc.want)
			}
		})
	}
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// TestFromEnvironment sets the variables with t.Setenv and checks both
// what FromEnvironment reads and what the zero Dialer does with it.
func TestFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    map[string]string
		want   Config
		target string
		proxy  string
	}{
		{"nothing set", nil, Config{}, "example.com:443", ""},
		{"uppercase", map[string]string{"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://q:2", "NO_PROXY": "x.com"},
			Config{HTTPSProxy: "http://p:1", HTTPProxy: "http://q:2", NoProxy: "x.com"}, "example.com:443", "http://p:1"},
		{"lowercase", map[string]string{"https_proxy": "socks5://p:1", "no_proxy": "example.com"},
			Config{HTTPSProxy: "socks5://p:1", NoProxy: "example.com"}, "example.com:443", ""},
		{"uppercase wins", map[string]string{"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1"},
			Config{HTTPSProxy: "http://upper:1"}, "example.com:443", "http://upper:1"},
		{"HTTP_PROXY alone does not apply", map[string]string{"HTTP_PROXY": "http://q:2"},
			Config{HTTPProxy: "http://q:2"}, "example.com:443", ""},
		{"no_proxy port", map[string]string{"HTTPS_PROXY": "p:1", "NO_PROXY": "example.com:22"},
			Config{HTTPSProxy: "p:1", NoProxy: "example.com:22"}, "example.com:22", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"} {
				t.Setenv(k, "")
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if got := *FromEnvironment(); got != tc.want {
				t.Fatalf("FromEnvironment = %+v, want %+v", got, tc.want)
			}
			var d Dialer
			got, err := d.ProxyFor(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if s := urlString(got); s != tc.proxy {
				t.Fatalf("zero Dialer ProxyFor = %q, want %q", s, tc.proxy)
			}
		})
	}

	t.Run("explicit config overrides environment", func(t *testing.T) {
		t.Setenv("HTTPS_PROXY", "http://env-proxy:3128")
		d := &Dialer{Config: &Config{}}
		if got, _ := d.ProxyFor("example.com:443"); got != nil {
			t.Fatalf("ProxyFor = %v, want direct", got)
		}
		d = &Dialer{Config: &Config{HTTPSProxy: "http://cfg-proxy:3128"}}
		if got, _ := d.ProxyFor("example.com:443"); urlString(got) != "http://cfg-proxy:3128" {
			t.Fatalf("ProxyFor = %v, want cfg-proxy", got)
		}
	})
	t.Run("invalid environment value", func(t *testing.T) {
		t.Setenv("HTTPS_PROXY", "ftp://"+userinfo(testUser, testPassword)+"p:21")
		var d Dialer
		_, err := d.ProxyFor("example.com:443")
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("err = %v", err)
		}
		noSecret(t, err.Error())
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *Config
		ok   bool
	}{
		{"nil", nil, true},
		{"zero", &Config{}, true},
		{"all schemes", &Config{HTTPSProxy: "https://a", HTTPProxy: "socks5://b"}, true},
		{"bad target scheme", &Config{TargetScheme: "ftp"}, false},
		{"unsupported proxy scheme", &Config{HTTPSProxy: "socks4://a:1"}, false},
		{"port zero", &Config{HTTPProxy: "http://a:0"}, false},
		{"query", &Config{HTTPProxy: "http://a:1?x=y"}, false},
		{"socks user too long", &Config{HTTPSProxy: "socks5://" + longUser() + "@a:1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v is not ErrInvalidConfig", err)
			}
		})
	}
}

func longUser() string {
	b := make([]byte, 300)
	for i := range b {
		b[i] = 'u'
	}
	return string(b)
}

func TestParseProxyURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		user     string
		pass     string
	}{
		{"", "", "", ""},
		{"proxy:3128", "http://proxy:3128", "", ""},
		{"http://" + userinfo(testUser, testPassword) + "proxy:3128", "", testUser, testPassword},
		{"socks5h://a%40b:c%3Ad@proxy", "", "a@b", "c:d"},
		{" https://proxy/ ", "https://proxy", "", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			u, err := ParseProxyURL(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && urlString(u) != tc.want {
				t.Fatalf("= %q, want %q", urlString(u), tc.want)
			}
			if tc.user != "" {
				p, _ := u.User.Password()
				if u.User.Username() != tc.user || p != tc.pass {
					t.Fatalf("userinfo = %q %q", u.User.Username(), p)
				}
			}
		})
	}
}

// recordingDialer records the addresses it is asked to dial and fails.
type recordingDialer struct{ got []string }

func (r *recordingDialer) DialContext(_ context.Context, network, addr string) (net.Conn, error) {
	r.got = append(r.got, network+" "+addr)
	return nil, errors.New("recorded")
}

func TestDialerProxyFuncAndNetworks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxy   func(string) (*url.URL, error)
		network string
		wantErr error
		want    string // what Forward was asked to dial
	}{
		{"func says direct", func(string) (*url.URL, error) { return nil, nil }, "tcp", nil, "tcp example.com:443"},
		{"func picks proxy", func(string) (*url.URL, error) { return url.Parse("http://proxy.corp:3128") }, "tcp", ErrProxyUnreachable, "tcp proxy.corp:3128"},
		{"default ports", func(string) (*url.URL, error) { return url.Parse("socks5h://proxy.corp") }, "tcp4", ErrProxyUnreachable, "tcp proxy.corp:1080"},
		{"func returns bad scheme", func(string) (*url.URL, error) { return url.Parse("ftp://proxy.corp") }, "tcp", ErrInvalidConfig, ""},
		{"func error", func(string) (*url.URL, error) { return nil, errTest }, "tcp", errTest, ""},
		{"non-TCP network is direct", func(string) (*url.URL, error) { return url.Parse("http://proxy.corp:3128") }, "udp", nil, "udp example.com:443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingDialer{}
			d := &Dialer{Proxy: tc.proxy, Forward: rec}
			_, err := d.DialContext(context.Background(), tc.network, "example.com:443")
			if err == nil {
				t.Fatal("dial succeeded through a dialer that always fails")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v is not %v", err, tc.wantErr)
			}
			if got := strings.Join(rec.got, ","); got != tc.want {
				t.Fatalf("Forward dialed %q, want %q", got, tc.want)
			}
		})
	}
}

var errTest = errors.New("test error")
