package alpn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"
)

// memConn is a net.Conn that reads from r and writes to w.
type memConn struct {
	r io.Reader
	w bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)        { return c.w.Write(p) }
func (c *memConn) Close() error                       { return nil }
func (c *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

func FuzzReadHello(f *testing.F) {
	f.Add(clientHelloBytes(f, "example.com", []string{"h2", "http/1.1"}))
	f.Add(clientHelloBytes(f, "", nil))
	f.Add(clientHelloBytes(f, "a.b.c", []string{ProtocolReverseTunnel, Ping(ProtocolAuth)}))
	f.Add([]byte{0x16, 3, 1, 0, 0})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 3, 3, 0xff, 0xff, 1, 0, 0xff, 0xfb})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, peeked, err := readHello(&memConn{r: bytes.NewReader(in)}, 4096)
		if !bytes.HasPrefix(in, peeked) {
			t.Fatalf("peeked bytes are not a prefix of the input")
		}
		if len(peeked) > 4096 {
			t.Fatalf("read %d bytes, bound 4096", len(peeked))
		}
		if (h == nil) == (err == nil) {
			t.Fatalf("hello %v with error %v", h, err)
		}
		if err != nil {
			if !errors.Is(err, ErrBadHello) && !errors.Is(err, ErrNotTLS) {
				t.Fatalf("error %v wraps neither ErrBadHello nor ErrNotTLS", err)
			}
			return
		}
		// The peeked bytes alone hold the whole ClientHello.
		h2, _, err := readHello(&memConn{r: bytes.NewReader(peeked)}, 4096)
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("re-reading the peeked bytes: %v, %v; first %v", h2, err, h)
		}
	})
}

// decodePing is the reference decoder of the -ping framing.
func decodePing(in []byte) (data []byte, ok bool) {
	for len(in) > 0 {
		if len(in) < 4 {
			return data, false
		}
		n := binary.BigEndian.Uint32(in)
		if n > MaxPingFrame || uint32(len(in)-4) < n {
			return data, false
		}
		data = append(data, in[4:4+n]...)
		in = in[4+n:]
	}
	return data, true
}

func FuzzPingConnRead(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0, 0, 0, 5, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		p := NewPingConn(&memConn{r: bytes.NewReader(in)}, 0)
		got, err := io.ReadAll(p)
		want, ok := decodePing(in)
		if ok != (err == nil) {
			t.Fatalf("err %v, reference decoder ok=%v", err, ok)
		}
		if !bytes.HasPrefix(got, want) && !bytes.HasPrefix(want, got) {
			t.Fatalf("read %q, reference %q", got, want)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("read %q, want %q", got, want)
		}
		// Round trip: what a PingConn writes, a PingConn reads.
		var mc memConn
		w := NewPingConn(&mc, 0)
		w.Write(in)
		w.Ping()
		w.Write(in)
		back, err := io.ReadAll(NewPingConn(&memConn{r: &mc.w}, 0))
		if err != nil || !bytes.Equal(back, append(append([]byte(nil), in...), in...)) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzWebSocketRead(f *testing.F) {
	masked := func(op byte, payload []byte) []byte {
		c := &wsConn{client: true}
		return c.appendFrame(nil, op, payload)
	}
	f.Add(masked(wsOpBinary, []byte("hello")))
	f.Add(append(masked(wsOpPing, []byte("p")), masked(wsOpBinary, []byte("x"))...))
	f.Add(masked(wsOpClose, []byte{3, 0xe8}))
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4})
	f.Add([]byte{0x82, 0x7e, 0, 4, 'a', 'b', 'c', 'd'})
	f.Fuzz(func(t *testing.T, in []byte) {
		mc := &memConn{r: bytes.NewReader(in)}
		server := newWSConn(mc, bufio.NewReader(mc.r), false, "p")
		got, err := io.ReadAll(server)
		if err != nil && !errors.Is(err, ErrWebSocket) && err != io.ErrUnexpectedEOF {
			t.Fatalf("unexpected error type %v", err)
		}
		_ = got
		// Round trip: client frames read back by a server.
		var wire memConn
		client := newWSConn(&wire, bufio.NewReader(bytes.NewReader(nil)), true, "p")
		client.Write(in)
		client.Write(in)
		rd := &memConn{r: &wire.w}
		back, err := io.ReadAll(newWSConn(rd, bufio.NewReader(rd.r), false, "p"))
		if err != io.ErrUnexpectedEOF && err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if !bytes.Equal(back, append(append([]byte(nil), in...), in...)) {
			t.Fatalf("round trip: %d bytes back, want %d", len(back), 2*len(in))
		}
	})
}

func BenchmarkReadHello(b *testing.B) {
	in := clientHelloBytes(b, "example.com", []string{"h2", "http/1.1"})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := readHello(&memConn{r: bytes.NewReader(in)}, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzMaskBytes(f *testing.F) {
	f.Add([]byte("hello, websocket masking"), 3, byte(0xa5))
	f.Fuzz(func(t *testing.T, b []byte, pos int, k byte) {
		if pos < 0 {
			pos = -pos
		}
		pos %= 1 << 20
		key := [4]byte{k, k + 1, k + 7, k ^ 0x5a}
		want := append([]byte(nil), b...)
		for i := range want {
			want[i] ^= key[(pos+i)&3]
		}
		got := append([]byte(nil), b...)
		if end := maskBytes(key, pos, got); end != pos+len(b) || !bytes.Equal(got, want) {
			t.Fatalf("maskBytes(%x, %d) = %x, want %x", b, pos, got, want)
		}
	})
}
