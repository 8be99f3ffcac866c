package proxyconnect

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a connection tunneled through a proxy, as returned by
// Dialer.DialContext when a proxy was used. Reads first return any tunnel
// bytes the proxy sent together with its answer to CONNECT, then read the
// underlying connection.
//
// LocalAddr and RemoteAddr are those of the connection to the proxy: the
// proxy, not the target, is the remote end of the socket.
//
// Conn implements io.ReaderFrom and io.WriterTo by handing the copy to the
// underlying connection, so io.Copy between a Conn over plain TCP and a
// *net.TCPConn, in either direction, still uses splice(2) on Linux (see
// BenchmarkRelayCopy). Buffered tunnel bytes are written out first.
type Conn struct {
	conn  net.Conn
	proxy *url.URL // without password

	hasBuf atomic.Bool
	mu     sync.Mutex
	buf    []byte // tunnel bytes received with the proxy's answer
}

func newConn(c net.Conn, proxy *url.URL, early []byte) *Conn {
	pc := &Conn{conn: c, proxy: redactURL(proxy)}
	if len(early) > 0 {
		pc.buf = append([]byte(nil), early...)
		pc.hasBuf.Store(true)
	}
	return pc
}

// redactURL returns a copy of u without the password (the user name stays).
func redactURL(u *url.URL) *url.URL {
	c := *u
	if u.User != nil {
		c.User = url.User(u.User.Username())
	}
	return &c
}

// Proxy returns the URL of the proxy the connection went through, with the
// user name (if any) but never the password. The result is a copy.
func (c *Conn) Proxy() *url.URL {
	u := *c.proxy
	return &u
}

// Via reports whether conn was tunneled through a proxy by a Dialer, and
// through which one (without password). It looks through wrappers that
// expose the connection they wrap with a NetConn() net.Conn method, such as
// *tls.Conn, so Via(tls.Client(conn, cfg)) works. A direct connection
// reports (nil, false).
func Via(conn net.Conn) (*url.URL, bool) {
	for range 16 {
		switch c := conn.(type) {
		case *Conn:
			return c.Proxy(), true
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}

// Buffered returns the number of tunnel bytes received from the proxy
// along with its answer that have not been read yet.
func (c *Conn) Buffered() int {
	if !c.hasBuf.Load() {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

// takeBuf removes and returns the buffered tunnel bytes.
func (c *Conn) takeBuf() []byte {
	if !c.hasBuf.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	c.buf = nil
	c.hasBuf.Store(false)
	return b
}

// Read reads buffered tunnel bytes first, then from the connection.
func (c *Conn) Read(p []byte) (int, error) {
	if c.hasBuf.Load() && len(p) > 0 {
		c.mu.Lock()
		if len(c.buf) > 0 {
			n := copy(p, c.buf)
			c.buf = c.buf[n:]
			if len(c.buf) == 0 {
				c.buf = nil
				c.hasBuf.Store(false)
			}
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
	}
	return c.conn.Read(p)
}

// Write writes to the connection.
func (c *Conn) Write(p []byte) (int, error) { return c.conn.Write(p) }

// Close closes the connection and drops any buffered tunnel bytes.
func (c *Conn) Close() error {
	c.takeBuf()
	return c.conn.Close()
}

// CloseWrite shuts down the writing side, when the underlying connection
// supports it (*net.TCPConn, *tls.Conn); otherwise it returns
// errors.ErrUnsupported.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// LocalAddr returns the local address of the connection to the proxy.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the address of the proxy.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the read deadline of the connection. Buffered
// tunnel bytes are returned even after the deadline has passed.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the connection.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// NetConn returns the underlying connection: a *net.TCPConn (or what
// Dialer.Forward returned) for http://, socks5:// and socks5h:// proxies,
// a *tls.Conn for https:// proxies. Reading from it directly skips bytes
// that Buffered still reports.
func (c *Conn) NetConn() net.Conn { return c.conn }

// ReadFrom copies from r into the connection, letting the underlying
// connection's ReadFrom (splice on Linux for TCP) do the work.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rc, ok := r.(*Conn); ok && rc.Buffered() == 0 {
		r = rc.conn // no bytes held back: read the socket directly
	}
	if rf, ok := c.conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.conn}, r)
}

// WriteTo copies from the connection into w until EOF or an error,
// starting with buffered tunnel bytes.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if b := c.takeBuf(); len(b) > 0 {
		m, err := w.Write(b)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	if wc, ok := w.(*Conn); ok {
		w = wc.conn // writes are not buffered: write the socket directly
	}
	var m int64
	var err error
	if rf, ok := w.(io.ReaderFrom); ok {
		m, err = rf.ReadFrom(c.conn)
	} else {
		m, err = io.Copy(w, readerOnly{c.conn})
	}
	return n + m, err
}

type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }
