package mux

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// TestConnConformance runs nettest.TestConn on the connections a Mux
// hands out, with and without a PROXY header. The detection bytes are
// read off first, as nettest expects a clean stream.
func TestConnConformance(t *testing.T) {
	tests := []struct {
		name   string
		cfg    *Config
		header []byte
	}{
		{"plain", nil, nil},
		{"proxy v2", &Config{ProxyProtocol: ProxyAccept, TrustedNetworks: loopback},
			mustHeader(t, &ProxyHeader{Version: 2, Command: ProxyProxy, Source: clientAddr, Destination: frontAddr})},
		{"proxy v1", &Config{ProxyProtocol: ProxyRequired, TrustedNetworks: loopback},
			mustHeader(t, &ProxyHeader{Version: 1, Command: ProxyProxy, Source: clientAddr, Destination: frontAddr})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := startMux(t, tc.cfg)
			sshL := m.Listener(SSH)
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				cc, err := net.Dial("tcp", m.Addr().String())
				if err != nil {
					return nil, nil, nil, err
				}
				if _, err := cc.Write(append(bytes.Clone(tc.header), "SSH-"...)); err != nil {
					cc.Close()
					return nil, nil, nil, err
				}
				sc, err := sshL.Accept()
				if err != nil {
					cc.Close()
					return nil, nil, nil, err
				}
				var b [4]byte
				if _, err := io.ReadFull(sc, b[:]); err != nil || string(b[:]) != "SSH-" {
					cc.Close()
					sc.Close()
					return nil, nil, nil, errors.New("replayed bytes lost")
				}
				return sc, cc, func() { sc.Close(); cc.Close() }, nil
			})
		})
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// rawSeen is a writer that records whether ReadFrom was given a reader
// that exposes the socket (what splice needs).
type rawSeen struct {
	bytes.Buffer
	raw bool
}

func (w *rawSeen) ReadFrom(r io.Reader) (int64, error) {
	_, w.raw = r.(syscall.Conn)
	return w.Buffer.ReadFrom(r)
}

func TestConnCopy(t *testing.T) {
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	replay := []byte("GET / HTTP/1.1\r\n")

	t.Run("WriteTo replays then hands over the socket", func(t *testing.T) {
		a, b := tcpPair(t)
		c := NewConn(b, bytes.Clone(replay), nil)
		go func() { a.Write(payload); a.CloseWrite() }()
		var w rawSeen
		n, err := io.Copy(&w, c)
		if err != nil || n != int64(len(replay)+len(payload)) {
			t.Fatalf("io.Copy = %d, %v", n, err)
		}
		if !bytes.Equal(w.Bytes(), append(bytes.Clone(replay), payload...)) {
			t.Fatal("copied bytes differ")
		}
		if !w.raw {
			t.Error("after the replay, the writer's ReadFrom did not see the socket: splice is lost")
		}
	})
	t.Run("WriteTo into a TCP conn", func(t *testing.T) {
		a, b := tcpPair(t)
		x, y := tcpPair(t)
		c := NewConn(b, bytes.Clone(replay), nil)
		go func() { a.Write(payload); a.CloseWrite() }()
		got := make(chan []byte, 1)
		go func() { all, _ := io.ReadAll(y); got <- all }()
		if _, err := io.Copy(x, c); err != nil {
			t.Fatal(err)
		}
		x.CloseWrite()
		if !bytes.Equal(<-got, append(bytes.Clone(replay), payload...)) {
			t.Fatal("relayed bytes differ")
		}
	})
	t.Run("ReadFrom a TCP conn", func(t *testing.T) {
		a, b := tcpPair(t)
		x, y := tcpPair(t)
		c := NewConn(x, nil, nil)
		go func() { a.Write(payload); a.CloseWrite() }()
		got := make(chan []byte, 1)
		go func() { all, _ := io.ReadAll(y); got <- all }()
		if _, err := io.Copy(c, b); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(<-got, payload) {
			t.Fatal("relayed bytes differ")
		}
	})
	t.Run("small reads drain the replay first", func(t *testing.T) {
		a, b := tcpPair(t)
		c := NewConn(b, []byte("abc"), nil)
		a.Write([]byte("def"))
		a.CloseWrite()
		var got []byte
		buf := make([]byte, 2)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if string(got) != "abcdef" {
			t.Fatalf("read %q", got)
		}
		if c.NetConn() != b {
			t.Error("NetConn is not the underlying conn")
		}
	})
	t.Run("pipe without half-close", func(t *testing.T) {
		p1, p2 := net.Pipe()
		defer p1.Close()
		c := NewConn(p2, nil, nil)
		defer c.Close()
		if err := c.CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("CloseWrite on a pipe = %v", err)
		}
		if err := c.CloseRead(); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("CloseRead on a pipe = %v", err)
		}
	})
}
