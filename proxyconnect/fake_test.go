package proxyconnect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testservice"
)

// fakeProxy is a loopback listener whose every connection is handled by
// script. It stands in for a proxy only in tests of error paths and of
// exact byte placement that a real proxy cannot be made to produce.
type fakeProxy struct {
	Addr string
	reqs chan string // the request header each connection sent
}

func startFakeProxy(t testing.TB, script func(c net.Conn, req string)) *fakeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakeProxy{Addr: ln.Addr().String(), reqs: make(chan string, 16)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				req := readRequestHeader(c)
				select {
				case fp.reqs <- req:
				default:
				}
				script(c, req)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return fp
}

// readRequestHeader reads up to the empty line, one byte at a time so that
// nothing after it is consumed.
func readRequestHeader(c net.Conn) string {
	var b []byte
	one := make([]byte, 1)
	for len(b) < 8192 && !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		if _, err := c.Read(one); err != nil {
			break
		}
		b = append(b, one[0])
	}
	return string(b)
}

func fakeDialer(addr string) *Dialer {
	return &Dialer{Config: &Config{HTTPSProxy: "http://" + userinfo(testUser, testPassword) + addr}}
}

// TestBytesAfter200 has the proxy send its 200 and the first tunnel bytes
// in one write; they must come out of the conn first, through Read,
// io.Copy (WriteTo) and io.ReadAll alike.
func TestBytesAfter200(t *testing.T) {
	const early = "SSH-2.0-early-banner\r\n"
	const later = "and the rest of the stream"
	fp := startFakeProxy(t, func(c net.Conn, req string) {
		c.Write([]byte("HTTP/1.1 200 Connection established\r\nProxy-Agent: fake\r\n\r\n" + early))
		time.Sleep(20 * time.Millisecond)
		c.Write([]byte(later))
	})
	for _, tc := range []struct {
		name string
		read func(c net.Conn) (string, error)
	}{
		{"Read", func(c net.Conn) (string, error) {
			b, err := io.ReadAll(struct{ io.Reader }{c})
			return string(b), err
		}},
		{"WriteTo", func(c net.Conn) (string, error) {
			var b bytes.Buffer
			_, err := io.Copy(&b, c)
			return b.String(), err
		}},
		{"small reads", func(c net.Conn) (string, error) {
			var b bytes.Buffer
			p := make([]byte, 3)
			for {
				n, err := c.Read(p)
				b.Write(p[:n])
				if err == io.EOF {
					return b.String(), nil
				}
				if err != nil {
					return b.String(), err
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := fakeDialer(fp.Addr).DialContext(context.Background(), "tcp", "tunnel.test:22")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.(*Conn).Buffered(); got != len(early) {
				t.Fatalf("Buffered = %d, want %d", got, len(early))
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			got, err := tc.read(c)
			if err != nil {
				t.Fatal(err)
			}
			if got != early+later {
				t.Fatalf("tunnel bytes = %q, want %q", got, early+later)
			}
			req := <-fp.reqs
			if !strings.HasPrefix(req, "CONNECT tunnel.test:22 HTTP/1.1\r\nHost: tunnel.test:22\r\n") ||
				!strings.Contains(req, "Proxy-Authorization: Basic ") {
				t.Fatalf("request = %q", req)
			}
		})
	}
}

// TestBasicAuthHeader checks that userinfo is percent-decoded and sent as
// Basic credentials.
func TestBasicAuthHeader(t *testing.T) {
	fp := startFakeProxy(t, func(c net.Conn, req string) {
		c.Write([]byte("HTTP/1.0 200 OK\r\n\r\n"))
	})
	c, err := fakeDialer(fp.Addr).DialContext(context.Background(), "tcp", "tunnel.test:443")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	req := <-fp.reqs
	r, err := httpReadRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", r.Header.Get("Proxy-Authorization"))
	user, pass, ok := r.BasicAuth()
	if !ok || user != testUser || pass != testPassword {
		t.Fatalf("Proxy-Authorization decodes to %q %q %v", user, pass, ok)
	}
}

func TestFakeProxyErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  string
		kind    error
		code    int
		inError string
	}{
		{"bad gateway", "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad", ErrProxyRefused, 502, "502 Bad Gateway"},
		{"407 digest and basic", "HTTP/1.1 407 Auth\r\nProxy-Authenticate: Digest realm=\"d\"\r\nProxy-Authenticate: Basic realm=\"corp \\\"x\\\"\"\r\n\r\n", ErrProxyAuth, 407, `realm "corp \"x\""`},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", ErrMalformedResponse, 0, "bad status line"},
		{"bad header", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", ErrMalformedResponse, 0, "bad header line"},
		{"cut short", "HTTP/1.1 200 OK\r\nServer: x\r\n", ErrMalformedResponse, 0, "unexpected EOF"},
		{"header too large", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 100)+"\r\n", 200), ErrMalformedResponse, 0, "header larger than"},
		{"echoed password", "HTTP/1.1 403 " + testPassword + "\r\n\r\n", ErrProxyRefused, 403, "403 xxxxx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := startFakeProxy(t, func(c net.Conn, req string) {
				c.Write([]byte(tc.answer))
			})
			_, err := fakeDialer(fp.Addr).DialContext(context.Background(), "tcp", "tunnel.test:443")
			pe := mustProxyError(t, err, tc.kind)
			if pe.StatusCode != tc.code {
				t.Fatalf("StatusCode = %d, want %d", pe.StatusCode, tc.code)
			}
			if !strings.Contains(err.Error(), tc.inError) || !strings.Contains(err.Error(), fp.Addr) ||
				!strings.Contains(err.Error(), "tunnel.test:443") {
				t.Fatalf("error %q lacks %q, the proxy or the target", err, tc.inError)
			}
		})
	}
}

func TestProxyUnreachable(t *testing.T) {
	addr := testservice.FreeAddr(t) // nothing listens there
	_, err := fakeDialer(addr).DialContext(context.Background(), "tcp", "tunnel.test:443")
	pe := mustProxyError(t, err, ErrProxyUnreachable)
	if pe.Op != "dial" || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error %q (Op %q)", err, pe.Op)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("cause is not a *net.OpError: %v", err)
	}
}

// TestHandshakeDeadlines covers a proxy that accepts and never answers:
// the handshake timeout, the context's deadline and its cancellation each
// end the dial promptly with the right error.
func TestHandshakeDeadlines(t *testing.T) {
	fp := startFakeProxy(t, func(c net.Conn, req string) {
		io.Copy(io.Discard, c) // hold the connection until the client closes it
	})
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		is      []error
		timeOut bool
	}{
		{"handshake timeout", 150 * time.Millisecond, func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			[]error{ErrTimeout}, true},
		{"context deadline", time.Minute, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 150*time.Millisecond)
		}, []error{ErrTimeout, context.DeadlineExceeded}, true},
		{"context canceled", time.Minute, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(150*time.Millisecond, cancel)
			return ctx, cancel
		}, []error{context.Canceled}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			d := fakeDialer(fp.Addr)
			d.HandshakeTimeout = tc.timeout
			start := time.Now()
			_, err := d.DialContext(ctx, "tcp", "tunnel.test:443")
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("dial took %v", el)
			}
			pe := mustProxyError(t, err, nil)
			for _, want := range tc.is {
				if !errors.Is(err, want) {
					t.Fatalf("error %q is not %v", err, want)
				}
			}
			var ne net.Error
			if !errors.As(err, &ne) || ne.Timeout() != tc.timeOut {
				t.Fatalf("Timeout() = %v, want %v", ne.Timeout(), tc.timeOut)
			}
			if pe.Op != "connect" {
				t.Fatalf("Op = %q", pe.Op)
			}
		})
	}
}

// TestInvalidConfigNoSecret checks that configuration errors never echo a
// password, even for URLs that do not parse.
func TestInvalidConfigNoSecret(t *testing.T) {
	for _, tc := range []struct{ name, proxy string }{
		{"bad escape", "http://agent:s3cr%zz" + testPassword + "@proxy:3128"},
		{"bad scheme", "ftp://" + userinfo(testUser, testPassword) + "proxy:21"},
		{"bad port", "http://" + userinfo(testUser, testPassword) + "proxy:99999"},
		{"path", "http://" + userinfo(testUser, testPassword) + "proxy:3128/path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Dialer{Config: &Config{HTTPSProxy: tc.proxy}}
			_, err := d.DialContext(context.Background(), "tcp", "tunnel.test:443")
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v is not ErrInvalidConfig", err)
			}
			noSecret(t, err.Error())
			if err := d.Config.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v", err)
			}
		})
	}
}
func httpReadRequest(s string) (*http.Request, error) {
	return http.ReadRequest(bufio.NewReader(strings.NewReader(s)))
}
