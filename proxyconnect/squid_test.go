package proxyconnect

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSquidTunnel dials through a real squid with Basic auth, chosen by
// the environment, and proves from squid's access.log that the tunnel
// crossed squid as the authenticated user while a NO_PROXY target did not.
func TestSquidTunnel(t *testing.T) {
	squid, _ := startSquid(t, false)
	viaProxy := startTarget(t, nil)
	direct := startTarget(t, nil)

	t.Setenv("HTTPS_PROXY", "http://"+userinfo(testUser, testPassword)+squid.Addr)
	t.Setenv("NO_PROXY", "example.com,tunnel.test:"+direct.Port)
	var logs bytes.Buffer
	d := &Dialer{
		Forward: &testResolver{},
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx := context.Background()

	c, err := d.DialContext(ctx, "tcp", "tunnel.test:"+viaProxy.Port)
	if err != nil {
		t.Fatalf("dial through squid: %v", err)
	}
	roundTrip(t, c, "hello through squid")
	u, ok := Via(c)
	if !ok || u.Host != squid.Addr || u.Scheme != "http" || u.User.Username() != testUser {
		t.Fatalf("Via = %v, %v; want http://%s@%s", u, ok, testUser, squid.Addr)
	}
	if _, has := u.User.Password(); has {
		t.Fatalf("Via URL carries a password")
	}
	if c.RemoteAddr().String() != squid.Addr {
		t.Fatalf("RemoteAddr = %v, want squid %v", c.RemoteAddr(), squid.Addr)
	}
	srv := <-viaProxy.Accepted
	if srv.RemoteAddr().String() == c.LocalAddr().String() {
		t.Fatalf("target saw our own socket %v: not proxied", c.LocalAddr())
	}
	c.Close()
	line := squid.WaitAccessLog(t, 10*time.Second, "TCP_TUNNEL/200", "CONNECT tunnel.test:"+viaProxy.Port, " "+testUser+" ")
	t.Logf("squid: %s", line)

	c2, err := d.DialContext(ctx, "tcp", "tunnel.test:"+direct.Port)
	if err != nil {
		t.Fatalf("direct dial: %v", err)
	}
	roundTrip(t, c2, "hello direct")
	if u, ok := Via(c2); ok {
		t.Fatalf("NO_PROXY target went via %v", u)
	}
	if _, isTCP := c2.(*net.TCPConn); !isTCP {
		t.Fatalf("direct conn is %T, want *net.TCPConn", c2)
	}
	srv2 := <-direct.Accepted
	if srv2.RemoteAddr().String() != c2.LocalAddr().String() {
		t.Fatalf("direct target saw %v, want our socket %v", srv2.RemoteAddr(), c2.LocalAddr())
	}
	c2.Close()
	// A second proxied tunnel, closed after the direct one: once its line
	// is in the log, the direct dial would have been logged before it.
	c3, err := d.DialContext(ctx, "tcp", "tunnel.test:"+viaProxy.Port)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c3, "again")
	c3.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		n := 0
		for _, l := range squid.AccessLogLines(t) {
			if strings.Contains(l, "CONNECT tunnel.test:"+viaProxy.Port) {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second tunnel not in access.log")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, l := range squid.AccessLogLines(t) {
		if strings.Contains(l, ":"+direct.Port) {
			t.Fatalf("NO_PROXY target crossed squid: %s", l)
		}
	}
	noSecret(t, logs.String())
	if !strings.Contains(logs.String(), squid.Addr) || !strings.Contains(logs.String(), "dial direct") {
		t.Fatalf("debug log lacks the proxy or the direct dial:\n%s", logs.String())
	}
}

// TestSquidErrors covers squid's refusals: wrong password (407 with the
// realm), no credentials (407), an ACL deny (403).
func TestSquidErrors(t *testing.T) {
	squid, _ := startSquid(t, false)
	tg := startTarget(t, nil)
	for _, tc := range []struct {
		name       string
		proxy      string
		target     string
		kind       error
		code       int
		wantInMsg  []string
		wantAccess string
	}{
		{
			name:       "wrong password",
			proxy:      "http://" + userinfo(testUser, "not-"+testPassword) + squid.Addr,
			target:     "tunnel.test:" + tg.Port,
			kind:       ErrProxyAuth,
			code:       407,
			wantInMsg:  []string{"407", `realm "sallyport test proxy"`, "tunnel.test:" + tg.Port, squid.Addr, "xxxxx"},
			wantAccess: "TCP_DENIED/407",
		},
		{
			name:      "no credentials",
			proxy:     squid.Addr, // bare host:port means http://
			target:    "tunnel.test:" + tg.Port,
			kind:      ErrProxyAuth,
			code:      407,
			wantInMsg: []string{"407", "no credentials", "http://" + squid.Addr},
		},
		{
			name:       "ACL deny",
			proxy:      "http://" + userinfo(testUser, testPassword) + squid.Addr,
			target:     "denied.test:" + tg.Port,
			kind:       ErrProxyRefused,
			code:       403,
			wantInMsg:  []string{"403", "denied.test:" + tg.Port},
			wantAccess: "TCP_DENIED/403",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			d := &Dialer{
				Config: &Config{HTTPSProxy: tc.proxy},
				Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}
			c, err := d.DialContext(context.Background(), "tcp", tc.target)
			if c != nil {
				c.Close()
			}
			pe := mustProxyError(t, err, tc.kind)
			t.Logf("error: %v", err)
			if pe.StatusCode != tc.code {
				t.Fatalf("StatusCode = %d, want %d (%v)", pe.StatusCode, tc.code, err)
			}
			for _, w := range tc.wantInMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(logs.String(), "dial via proxy failed") || !strings.Contains(logs.String(), tc.target) {
				t.Errorf("debug log lacks the failure:\n%s", logs.String())
			}
			noSecret(t, logs.String())
			if tc.wantAccess != "" {
				squid.WaitAccessLog(t, 10*time.Second, tc.wantAccess, "CONNECT "+tc.target)
			}
		})
	}
}

// TestSquidHTTPS dials squid's https_port: TLS to the proxy, verified
// against the test CA, then CONNECT inside it.
func TestSquidHTTPS(t *testing.T) {
	squid, pool := startSquid(t, true)
	tg := startTarget(t, nil)
	_, port, _ := net.SplitHostPort(squid.TLSAddr)
	proxy := "https://" + userinfo(testUser, testPassword) + "localhost:" + port

	d := &Dialer{Config: &Config{HTTPSProxy: proxy}, TLSConfig: &tls.Config{RootCAs: pool}}
	c, err := d.DialContext(context.Background(), "tcp", "tunnel.test:"+tg.Port)
	if err != nil {
		t.Fatalf("dial through https proxy: %v", err)
	}
	roundTrip(t, c, "over TLS to squid")
	if _, ok := c.(*Conn).NetConn().(*tls.Conn); !ok {
		t.Fatalf("underlying conn is %T, want *tls.Conn", c.(*Conn).NetConn())
	}
	if u, ok := Via(c); !ok || u.Scheme != "https" {
		t.Fatalf("Via = %v, %v", u, ok)
	}
	c.Close()
	squid.WaitAccessLog(t, 10*time.Second, "TCP_TUNNEL/200", "CONNECT tunnel.test:"+tg.Port, testUser)

	t.Run("untrusted certificate", func(t *testing.T) {
		d := &Dialer{Config: &Config{HTTPSProxy: proxy}}
		_, err := d.DialContext(context.Background(), "tcp", "tunnel.test:"+tg.Port)
		pe := mustProxyError(t, err, ErrProxyTLS)
		t.Logf("error: %v", err)
		if pe.Op != "tls" {
			t.Fatalf("Op = %q", pe.Op)
		}
	})
}
