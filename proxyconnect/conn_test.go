package proxyconnect

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// TestConnNettest runs the net.Conn conformance suite on connections
// tunneled through a real squid.
func TestConnNettest(t *testing.T) {
	squid, _ := startSquid(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	d := &Dialer{Config: &Config{HTTPSProxy: "http://" + userinfo(testUser, testPassword) + squid.Addr}}
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := ln.Accept()
			ch <- res{c, err}
		}()
		c1, err = d.DialContext(context.Background(), "tcp", "tunnel.test:"+port)
		if err != nil {
			ln.(*net.TCPListener).SetDeadline(time.Now())
			<-ch
			ln.(*net.TCPListener).SetDeadline(time.Time{})
			return nil, nil, nil, err
		}
		r := <-ch
		if r.err != nil {
			c1.Close()
			return nil, nil, nil, r.err
		}
		if _, ok := c1.(*Conn); !ok {
			t.Fatalf("dial returned %T, want *Conn", c1)
		}
		return c1, r.c, func() { c1.Close(); r.c.Close() }, nil
	})
}

// TestConnCopy checks io.Copy in both directions between a tunneled Conn
// and plain TCP, including the splice paths through ReadFrom and WriteTo.
func TestConnCopy(t *testing.T) {
	const early = "early bytes"
	fp := startFakeProxy(t, func(c net.Conn, req string) {
		c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n" + early))
		io.Copy(c, c) // then echo
	})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB

	c, err := fakeDialer(fp.Addr).DialContext(context.Background(), "tcp", "tunnel.test:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc := c.(*Conn)
	c.SetDeadline(time.Now().Add(20 * time.Second))

	// TCP pairs standing for the other side of a relay: src feeds the
	// tunnel, sink receives from it.
	srcR, srcW := tcpPair(t)
	defer srcR.Close()
	defer srcW.Close()
	sinkR, sinkW := tcpPair(t)
	defer sinkR.Close()
	defer sinkW.Close()
	go func() {
		srcW.Write(payload)
		srcW.(*net.TCPConn).CloseWrite()
	}()
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(sinkR)
		got <- all
	}()
	// io.Copy(pc, srcR): a *net.TCPConn source into the Conn.
	if n, err := io.Copy(pc, srcR); err != nil || n != int64(len(payload)) {
		t.Fatalf("copy into Conn: %d, %v", n, err)
	}
	if err := pc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// io.Copy(sinkW, pc): Conn source (WriteTo) into a *net.TCPConn
	// (ReadFrom, splice): early bytes first, then the echo.
	if _, err := io.Copy(sinkW, pc); err != nil {
		t.Fatalf("copy out of Conn: %v", err)
	}
	sinkW.(*net.TCPConn).CloseWrite()
	want := append([]byte(early), payload...)
	if g := <-got; !bytes.Equal(g, want) {
		t.Fatalf("relay lost or reordered bytes: got %d bytes, want %d", len(g), len(want))
	}
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestVia(t *testing.T) {
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	proxy, _ := url.Parse("https://" + userinfo(testUser, testPassword) + "proxy.corp:443")
	pc := newConn(b, proxy, nil)
	for _, tc := range []struct {
		name string
		conn net.Conn
		want string
	}{
		{"direct", b, ""},
		{"tunneled", pc, "https://agent@proxy.corp:443"},
		{"TLS over tunnel", tls.Client(pc, &tls.Config{}), "https://agent@proxy.corp:443"},
		{"TLS over direct", tls.Client(b, &tls.Config{}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := Via(tc.conn)
			if ok != (tc.want != "") || urlString(u) != tc.want {
				t.Fatalf("Via = %v, %v; want %q", u, ok, tc.want)
			}
			if ok {
				noSecret(t, u.String())
				u.Host = "changed" // a copy: must not affect the conn
				if u2, _ := Via(tc.conn); u2.Host != "proxy.corp:443" {
					t.Fatal("Via returned the conn's own URL")
				}
			}
		})
	}
}
