package mux

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a connection handed out by a Mux listener. It first replays the
// bytes that were read to detect the protocol, then reads from the
// underlying connection. When a trusted PROXY header named the client,
// RemoteAddr and LocalAddr report the client and the address it
// connected to; otherwise they are the socket's own.
//
// Conn implements io.WriterTo and io.ReaderFrom by handing the copy to the
// underlying connection once the replayed bytes are written, so io.Copy
// between a Conn and a *net.TCPConn (or another Conn) still uses splice(2)
// on Linux. NetConn returns the underlying connection.
type Conn struct {
	nc     net.Conn
	proto  Protocol
	header *ProxyHeader
	remote net.Addr
	local  net.Addr

	drained atomic.Bool // buf is empty and will stay so
	mu      sync.Mutex  // guards buf
	buf     []byte
}

// NewConn returns a Conn that reads replay first and then nc. If h is not
// nil and carries addresses (h.HasAddrs), RemoteAddr and LocalAddr report
// h.Source and h.Destination. NewConn is for code that reads a PROXY
// header or peeks at a stream itself (with ReadProxyHeader or Detect) and
// then hands the connection on; replay is typically the bytes left in the
// bufio.Reader. The Conn takes ownership of replay.
func NewConn(nc net.Conn, replay []byte, h *ProxyHeader) *Conn {
	c := &Conn{nc: nc, header: h, buf: replay}
	if len(replay) == 0 {
		c.buf = nil
		c.drained.Store(true)
	}
	if h != nil && h.HasAddrs() {
		c.remote = net.TCPAddrFromAddrPort(h.Source)
		c.local = net.TCPAddrFromAddrPort(h.Destination)
	}
	return c
}

// Protocol returns the protocol the Mux detected (Unknown for a Conn made
// with NewConn).
func (c *Conn) Protocol() Protocol { return c.proto }

// ProxyHeader returns the PROXY header that preceded the stream, or nil if
// there was none. A ProxyLocal header (a load balancer's health check) is
// returned too, though it leaves the addresses unchanged.
func (c *Conn) ProxyHeader() *ProxyHeader { return c.header }

// NetConn returns the underlying connection. Reading from it directly
// skips any replay bytes not yet read.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Read reads the replayed bytes first, then from the underlying connection.
func (c *Conn) Read(p []byte) (int, error) {
	if !c.drained.Load() {
		c.mu.Lock()
		if len(c.buf) > 0 {
			n := copy(p, c.buf)
			c.buf = c.buf[n:]
			if len(c.buf) == 0 {
				c.buf = nil
				c.drained.Store(true)
			}
			c.mu.Unlock()
			return n, nil
		}
		c.drained.Store(true)
		c.mu.Unlock()
	}
	return c.nc.Read(p)
}

// takeReplay removes and returns the bytes not yet replayed.
func (c *Conn) takeReplay() []byte {
	if c.drained.Load() {
		return nil
	}
	c.mu.Lock()
	b := c.buf
	c.buf = nil
	c.drained.Store(true)
	c.mu.Unlock()
	return b
}

// WriteTo writes the replayed bytes to w and then copies the underlying
// connection to w with io.Copy, which lets a *net.TCPConn splice.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if b := c.takeReplay(); len(b) > 0 {
		m, err := w.Write(b)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	m, err := io.Copy(w, c.nc)
	return n + m, err
}

// ReadFrom copies r to the underlying connection, through its own
// ReadFrom when it has one (a *net.TCPConn splices or uses sendfile).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.nc.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.nc}, r)
}

type writerOnly struct{ io.Writer }

// Write writes to the underlying connection.
func (c *Conn) Write(p []byte) (int, error) { return c.nc.Write(p) }

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.nc.Close() }

// CloseWrite shuts down the writing side when the underlying connection
// supports it (a *net.TCPConn does).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// CloseRead shuts down the reading side when the underlying connection
// supports it.
func (c *Conn) CloseRead() error {
	if cr, ok := c.nc.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// LocalAddr returns the destination named by a trusted PROXY header, or
// else the underlying connection's local address.
func (c *Conn) LocalAddr() net.Addr {
	if c.local != nil {
		return c.local
	}
	return c.nc.LocalAddr()
}

// RemoteAddr returns the client named by a trusted PROXY header, or else
// the underlying connection's remote address.
func (c *Conn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.nc.RemoteAddr()
}

// SetDeadline sets the underlying connection's deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline sets the underlying connection's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the underlying connection's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }
