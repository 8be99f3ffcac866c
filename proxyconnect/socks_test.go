package proxyconnect

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"testing"

	"github.com/sallyport/sallyport/internal/testservice"
)

// TestSOCKS5 dials through a real SOCKS5 server (microsocks) with
// username/password authentication.
func TestSOCKS5(t *testing.T) {
	const socksPassword = "socks-" + testPassword
	ms := testservice.StartSOCKS5(t, testUser, socksPassword)
	tg := startTarget(t, nil)
	creds := userinfo(testUser, socksPassword)

	for _, tc := range []struct {
		name   string
		dialer func() *Dialer
		target string
	}{
		{
			// socks5:// resolves locally and sends an IPv4 address. The
			// target 0.0.0.0 reaches the local host on Linux without
			// being treated as loopback by proxy selection.
			name:   "socks5 from environment",
			dialer: func() *Dialer { t.Setenv("HTTPS_PROXY", "socks5://"+creds+ms.Addr); return &Dialer{} },
			target: "0.0.0.0:" + tg.Port,
		},
		{
			// socks5h:// sends the name; microsocks resolves it. Proxy
			// selection is replaced by Dialer.Proxy so that "localhost"
			// goes through the proxy.
			name: "socks5h with host name",
			dialer: func() *Dialer {
				u, _ := url.Parse("socks5h://" + creds + ms.Addr)
				return &Dialer{Proxy: func(string) (*url.URL, error) { return u, nil }}
			},
			target: "localhost:" + tg.Port,
		},
		{
			name: "socks5 resolves locally",
			dialer: func() *Dialer {
				return &Dialer{Proxy: func(string) (*url.URL, error) { return url.Parse("socks5://" + creds + ms.Addr) }}
			},
			target: "localhost:" + tg.Port,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.dialer()
			c, err := d.DialContext(context.Background(), "tcp", tc.target)
			if err != nil {
				t.Fatalf("dial through microsocks: %v", err)
			}
			defer c.Close()
			roundTrip(t, c, "hello through socks")
			if c.RemoteAddr().String() != ms.Addr {
				t.Fatalf("RemoteAddr = %v, want microsocks %v", c.RemoteAddr(), ms.Addr)
			}
			srv := <-tg.Accepted
			if srv.RemoteAddr().String() == c.LocalAddr().String() {
				t.Fatal("target saw our own socket: not proxied")
			}
			if u, ok := Via(c); !ok || u.Host != ms.Addr {
				t.Fatalf("Via = %v, %v", u, ok)
			}
			if _, ok := c.(*Conn).NetConn().(*net.TCPConn); !ok {
				t.Fatalf("underlying conn is %T", c.(*Conn).NetConn())
			}
		})
	}

	for _, tc := range []struct{ name, proxy string }{
		{"wrong password", "socks5h://" + userinfo(testUser, testPassword) + ms.Addr},
		{"no credentials", "socks5h://" + ms.Addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Dialer{Config: &Config{HTTPSProxy: tc.proxy}}
			_, err := d.DialContext(context.Background(), "tcp", "0.0.0.0:"+tg.Port)
			pe := mustProxyError(t, err, ErrProxyAuth)
			t.Logf("error: %v", err)
			if pe.Op != "socks5" {
				t.Fatalf("Op = %q", pe.Op)
			}
		})
	}

	t.Run("target refused", func(t *testing.T) {
		closed := testservice.FreePort(t)
		d := &Dialer{Config: &Config{HTTPSProxy: "socks5://" + creds + ms.Addr}}
		_, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(closed)))
		mustProxyError(t, err, ErrProxyRefused)
		t.Logf("error: %v", err)
	})
}
