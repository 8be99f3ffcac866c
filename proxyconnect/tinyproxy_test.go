package proxyconnect

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testservice"
)

// tinyproxy's configuration grammar limits BasicAuth to [-a-z0-9._].
const tinyPassword = "tiny-pass.123"

// TestTinyproxy dials through a real tinyproxy with Basic auth. tinyproxy
// resolves targets with the system resolver, so the target is named
// 0.0.0.0, which Linux connects to the local host and which, unlike
// 127.0.0.1, proxy selection does not treat as loopback.
func TestTinyproxy(t *testing.T) {
	tp := testservice.StartTinyproxy(t, testUser, tinyPassword)
	tg := startTarget(t, nil)
	target := "0.0.0.0:" + tg.Port

	t.Run("tunnel", func(t *testing.T) {
		t.Setenv("HTTPS_PROXY", "http://"+userinfo(testUser, tinyPassword)+tp.Addr)
		t.Setenv("NO_PROXY", "")
		var d Dialer
		c, err := d.DialContext(context.Background(), "tcp", target)
		if err != nil {
			t.Fatalf("dial through tinyproxy: %v", err)
		}
		defer c.Close()
		roundTrip(t, c, "hello through tinyproxy")
		if u, ok := Via(c); !ok || u.Host != tp.Addr {
			t.Fatalf("Via = %v, %v", u, ok)
		}
		srv := <-tg.Accepted
		if srv.RemoteAddr().String() == c.LocalAddr().String() {
			t.Fatal("target saw our own socket: not proxied")
		}
		waitFile(t, tp.Log, "CONNECT", "0.0.0.0:"+tg.Port)
	})
	t.Run("wrong password", func(t *testing.T) {
		d := &Dialer{Config: &Config{HTTPSProxy: "http://" + userinfo(testUser, testPassword) + tp.Addr}}
		_, err := d.DialContext(context.Background(), "tcp", target)
		pe := mustProxyError(t, err, ErrProxyAuth)
		t.Logf("error: %v", err)
		// tinyproxy 1.11 answers 401 with WWW-Authenticate; newer ones 407.
		if pe.StatusCode != 407 && pe.StatusCode != 401 || pe.Realm != "Tinyproxy" {
			t.Fatalf("StatusCode = %d, Realm = %q", pe.StatusCode, pe.Realm)
		}
	})
}

// waitFile waits for a line of the file at path containing all substrings.
func waitFile(t testing.TB, path string, substrings ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			all := true
			for _, s := range substrings {
				all = all && strings.Contains(l, s)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q in %s:\n%s", substrings, path, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
