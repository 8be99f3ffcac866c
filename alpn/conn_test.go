package alpn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// pipeTypes are the transports each conn wrapper is tested over.
var pipeTypes = []struct {
	name string
	make func(t *testing.T) (net.Conn, net.Conn, func(), error)
}{
	{"tcp", func(t *testing.T) (net.Conn, net.Conn, func(), error) {
		a, b, err := tcpPairErr()
		return a, b, func() { a.Close(); b.Close() }, err
	}},
	{"pipe", func(t *testing.T) (net.Conn, net.Conn, func(), error) {
		a, b := net.Pipe()
		return a, b, func() { a.Close(); b.Close() }, nil
	}},
}

func tcpPairErr() (net.Conn, net.Conn, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	b, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	a := <-ch
	if a == nil {
		b.Close()
		return nil, nil, errors.New("accept failed")
	}
	return a, b, nil
}

func TestConnNettest(t *testing.T) {
	for _, pt := range pipeTypes {
		t.Run(pt.name, func(t *testing.T) {
			nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
				a, b, stop, err := pt.make(t)
				if err != nil {
					return nil, nil, nil, err
				}
				// a's first bytes were peeked: c replays them.
				go b.Write([]byte("peeked"))
				buf := make([]byte, 6)
				if _, err := io.ReadFull(a, buf); err != nil {
					return nil, nil, nil, err
				}
				c := newConn(a, buf, &Hello{})
				got := make([]byte, 6)
				if _, err := io.ReadFull(c, got); err != nil || string(got) != "peeked" {
					return nil, nil, nil, errors.New("replay failed")
				}
				return c, b, stop, nil
			})
		})
	}
}

func TestConnReplayAndSplice(t *testing.T) {
	a, b := tcpPair(t)
	dst, sink := tcpPair(t)
	c := newConn(a, []byte("hello "), &Hello{})
	go func() {
		b.Write([]byte("world"))
		b.(*net.TCPConn).CloseWrite()
	}()
	if _, ok := any(c).(io.WriterTo); !ok {
		t.Fatal("Conn is no io.WriterTo")
	}
	go func() {
		io.Copy(dst, c) // WriteTo: replay, then splice TCP to TCP
		dst.(*net.TCPConn).CloseWrite()
	}()
	if got := readAll(t, sink); got != "hello world" {
		t.Errorf("got %q", got)
	}
	// ReadFrom goes to the underlying conn.
	go func() {
		io.Copy(c, strings.NewReader("back"))
		c.CloseWrite()
	}()
	if got := readAll(t, b); got != "back" {
		t.Errorf("got %q", got)
	}
	if c.NetConn() != a {
		t.Error("NetConn is not the underlying conn")
	}
}

func TestPingConnNettest(t *testing.T) {
	for _, pt := range pipeTypes {
		t.Run(pt.name, func(t *testing.T) {
			nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
				a, b, _, err := pt.make(t)
				if err != nil {
					return nil, nil, nil, err
				}
				// Over TCP only c1 pings: c1 never reads in BasicIO, and
				// closing a socket with unread pings resets it.
				bInterval := 7 * time.Millisecond
				if pt.name == "tcp" {
					bInterval = 0
				}
				pa, pb := NewPingConn(a, 5*time.Millisecond), NewPingConn(b, bInterval)
				return pa, pb, func() { pa.Close(); pb.Close() }, nil
			})
		})
	}
}

// TestPingConnKeepalive checks that pings cross the wire while idle and
// never reach the reader.
func TestPingConnKeepalive(t *testing.T) {
	a, b := tcpPair(t)
	pa := NewPingConn(a, 10*time.Millisecond)
	defer pa.Close()
	// Raw view of b: count frames.
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	for i := range 3 {
		if _, err := io.ReadFull(b, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, []byte{0, 0, 0, 0}) {
			t.Fatalf("frame %d: %x, want a ping", i, buf)
		}
	}
	// The framed side drops pings and reads data.
	pb := NewPingConn(b, 0)
	defer pb.Close()
	go pa.Write([]byte("data"))
	got := make([]byte, 4)
	pb.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(pb, got); err != nil || string(got) != "data" {
		t.Fatalf("read %q, %v", got, err)
	}
	// A frame too large is an error.
	go b.Write([]byte{0, 0x10, 0, 0})
	pa.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := pa.Read(got); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("read = %v, want ErrFrameTooLarge", err)
	}
}

// wsPair returns the client and server ends of a WebSocket upgrade made
// through a real net/http server.
func wsPair(t testing.TB) (client, server net.Conn, stop func(), err error) {
	srvCh := make(chan net.Conn, 1)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := acceptWebSocket(w, r, 5*time.Second, func(p []string) string {
			if len(p) > 0 && p[0] == "test-proto" {
				return p[0]
			}
			return ""
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			srvCh <- nil
			return
		}
		srvCh <- ws
	}))
	hs.Start()
	c, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		hs.Close()
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, err := dialWebSocket(ctx, c, "example", "/up", "test-proto")
	if err != nil {
		c.Close()
		hs.Close()
		return nil, nil, nil, err
	}
	s := <-srvCh
	if s == nil {
		hs.Close()
		return nil, nil, nil, errors.New("server side failed")
	}
	return ws, s, func() { ws.Close(); s.Close(); hs.Close() }, nil
}

func TestWebSocketNettest(t *testing.T) {
	t.Run("client-server", func(t *testing.T) {
		nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) { return wsPair(t) })
	})
	t.Run("server-client", func(t *testing.T) {
		nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
			c, s, stop, err := wsPair(t)
			return s, c, stop, err
		})
	})
}

func TestWebSocketControlFrames(t *testing.T) {
	cl, sv, stop, err := wsPair(t)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	client, server := cl.(*wsConn), sv.(*wsConn)
	raw := client.NetConn()

	// A ping from the client (masked) is answered with a pong carrying its
	// payload; the server's reader sees only data.
	client.w.mu.Lock()
	client.w.write(client.appendFrame(nil, wsOpPing, []byte("are you there")))
	client.w.write(client.appendFrame(nil, wsOpBinary, []byte("data")))
	client.w.mu.Unlock()
	got := make([]byte, 4)
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "data" {
		t.Fatalf("server read %q, %v", got, err)
	}
	hdr := make([]byte, 2)
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client.br, hdr); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 0x80|wsOpPong || int(hdr[1]) != len("are you there") {
		t.Fatalf("pong header %x", hdr)
	}
	payload := make([]byte, hdr[1])
	io.ReadFull(client.br, payload)
	if string(payload) != "are you there" {
		t.Errorf("pong payload %q", payload)
	}

	// An unmasked frame from a client is a protocol error for the server.
	raw.Write([]byte{0x82, 1, 'x'})
	if _, err := server.Read(got); !errors.Is(err, ErrWebSocket) {
		t.Errorf("unmasked frame: %v, want ErrWebSocket", err)
	}

	// Closing the client sends a close frame: the server reads EOF.
	cl2, sv2, stop2, err := wsPair(t)
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	cl2.Write([]byte("bye"))
	cl2.Close()
	sv2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(sv2); err != nil || string(b) != "bye" {
		t.Errorf("server read %q, %v; want bye, EOF", b, err)
	}

	// An oversized frame fails the conn.
	cl3, sv3, stop3, err := wsPair(t)
	if err != nil {
		t.Fatal(err)
	}
	defer stop3()
	c3 := cl3.(*wsConn)
	c3.NetConn().Write([]byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0x10, 0, 0, 0, 1, 2, 3, 4})
	sv3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := sv3.Read(got); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized frame: %v, want ErrFrameTooLarge", err)
	}
}

func TestWebSocketRefusals(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := acceptWebSocket(w, r, time.Second, func(p []string) string {
			if len(p) > 0 && p[0] == "ok" {
				return "ok"
			}
			return ""
		})
		var he *httpError
		if errors.As(err, &he) {
			http.Error(w, he.msg, he.status)
		}
	}))
	defer hs.Close()
	for _, tt := range []struct {
		name   string
		hdr    map[string]string
		method string
		want   int
	}{
		{"not an upgrade", map[string]string{}, "GET", http.StatusUpgradeRequired},
		{"wrong version", map[string]string{"Connection": "upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "8"}, "GET", http.StatusBadRequest},
		{"bad key", map[string]string{"Connection": "upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "short"}, "GET", http.StatusBadRequest},
		{"unknown protocol", map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "nope"}, "GET", http.StatusNotFound},
		{"post", map[string]string{}, "POST", http.StatusMethodNotAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, hs.URL, nil)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	// The client side reports a refusal as *UpgradeError.
	c, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = dialWebSocket(context.Background(), c, "x", "/", "nope")
	var ue *UpgradeError
	if !errors.As(err, &ue) || ue.StatusCode != http.StatusNotFound {
		t.Errorf("dial = %v, want UpgradeError 404", err)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestJoin(t *testing.T) {
	client, a := tcpPair(t)
	b, backend := tcpPair(t)
	joined := make(chan struct{})
	go func() {
		Join(context.Background(), newConn(a, []byte("hello "), &Hello{}), b)
		close(joined)
	}()
	big := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(big)
	// Small messages first, then bulk, in both directions.
	go func() {
		client.Write([]byte("world"))
		client.Write(big)
		client.(*net.TCPConn).CloseWrite()
	}()
	go func() {
		backend.Write([]byte("hi"))
		backend.Write(big)
		backend.(*net.TCPConn).CloseWrite()
	}()
	fromClient, fromBackend := make(chan []byte, 1), make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(backend); fromClient <- b }()
	go func() { b, _ := io.ReadAll(client); fromBackend <- b }()
	if got := <-fromClient; !bytes.Equal(got, append([]byte("hello world"), big...)) {
		t.Errorf("backend got %d bytes, want %d", len(got), len(big)+11)
	}
	if got := <-fromBackend; !bytes.Equal(got, append([]byte("hi"), big...)) {
		t.Errorf("client got %d bytes, want %d", len(got), len(big)+2)
	}
	select {
	case <-joined:
	case <-time.After(5 * time.Second):
		t.Fatal("Join did not return after both directions ended")
	}
}
