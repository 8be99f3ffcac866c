package alpn

import (
	"io"
	"net"
	"sync"
)

// Conn is a connection whose first bytes (the ClientHello the router read
// to route it) are replayed to the reader before the rest of the stream.
// Passthrough handlers receive a *Conn.
//
// Conn implements io.WriterTo and io.ReaderFrom, so io.Copy between a Conn
// over a *net.TCPConn and another *net.TCPConn still reaches splice(2) once
// the replayed bytes are written; NetConn returns the underlying conn.
type Conn struct {
	net.Conn
	hello *Hello

	mu     sync.Mutex
	replay []byte // peeked bytes not read yet
}

func newConn(c net.Conn, peeked []byte, h *Hello) *Conn {
	return &Conn{Conn: c, replay: peeked, hello: h}
}

// Hello returns what the router read from the ClientHello.
func (c *Conn) Hello() *Hello { return c.hello }

// NetConn returns the underlying connection. Bytes still to be replayed are
// not in it: read them through c first (or use WriteTo).
func (c *Conn) NetConn() net.Conn { return c.Conn }

// takeReplay removes up to max (all when negative) replay bytes.
func (c *Conn) takeReplay(max int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.replay) == 0 {
		return nil
	}
	n := len(c.replay)
	if max >= 0 {
		n = min(max, n)
	}
	b := c.replay[:n:n]
	c.replay = c.replay[n:]
	if len(c.replay) == 0 {
		c.replay = nil
	}
	return b
}

// Read reads the replayed bytes first, then from the underlying conn.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Read(p)
	}
	if b := c.takeReplay(len(p)); b != nil {
		return copy(p, b), nil
	}
	return c.Conn.Read(p)
}

// WriteTo writes the replayed bytes to w, then copies the rest of the
// stream with io.Copy, which splices between TCP conns.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if b := c.takeReplay(-1); b != nil {
		m, err := w.Write(b)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	m, err := io.Copy(w, c.Conn)
	return n + m, err
}

// ReadFrom copies r into the underlying conn (splicing when both are TCP).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(c.Conn, r)
}

// CloseWrite shuts down the writing side when the underlying conn supports
// it (TCP, Unix, TLS); otherwise it closes the conn.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
