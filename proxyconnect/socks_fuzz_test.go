package proxyconnect

import (
	"bytes"
	"net"
	"net/url"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose reads come from a fixed script and whose
// writes are recorded.
type scriptConn struct {
	r       *bytes.Reader
	written bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return c.written.Write(p) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzSOCKS5 runs the SOCKS5 client against arbitrary server bytes: it
// must not panic, must fail or succeed with a classified error, and on
// success must have read exactly the method reply, the authentication
// reply (when chosen) and the CONNECT reply, nothing of the tunnel.
func FuzzSOCKS5(f *testing.F) {
	f.Add([]byte{5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 80, 'x'}, true)
	f.Add([]byte{5, 2, 1, 0, 5, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 80}, true)
	f.Add([]byte{5, 2, 1, 1}, true)
	f.Add([]byte{5, 0xff}, false)
	f.Add([]byte{5, 0, 5, 5, 0, 1}, false)
	f.Add([]byte{5, 0, 5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187}, false)
	f.Add([]byte{4, 0}, false)
	f.Fuzz(func(t *testing.T, server []byte, withAuth bool) {
		proxy := &url.URL{Scheme: "socks5h", Host: "proxy:1080"}
		if withAuth {
			proxy.User = url.UserPassword("u", "p")
		}
		c := &scriptConn{r: bytes.NewReader(server)}
		pe := &ProxyError{}
		err := (&Dialer{}).socks5(c, proxy, "example.com:443", pe)
		consumed := len(server) - c.r.Len()
		if err != nil {
			if err == error(pe) && pe.Kind == nil {
				t.Fatalf("answer without a kind: %+v", pe)
			}
			return
		}
		want := 2 + 4
		if server[1] == socksUserPass {
			want += 2
		}
		atyp := server[want-1]
		switch atyp {
		case socksIPv4:
			want += 4 + 2
		case socksIPv6:
			want += 16 + 2
		case socksDomain:
			want += 1 + int(server[want]) + 2
		default:
			t.Fatalf("accepted address type %d", atyp)
		}
		if consumed != want {
			t.Fatalf("consumed %d bytes, want exactly %d", consumed, want)
		}
	})
}
