package tunnel

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/sallyport/sallyport/internal/netutil"
)

// Addr is the original client address that the proxy put in a stream
// header; the agent side returns it as the conn's RemoteAddr.
type Addr struct {
	Net     string // "tcp" unless the proxy said otherwise
	Address string // "host:port"
}

// Network returns a.Net.
func (a Addr) Network() string { return a.Net }

// String returns a.Address.
func (a Addr) String() string { return a.Address }

// Conn is one stream of a tunnel: what Server.Dial returns and what agent
// handlers get. It is a full-duplex net.Conn with deadlines; CloseWrite
// half-closes it. Close closes both directions and unblocks pending Reads.
type Conn struct {
	s       *yamux.Stream
	service string
	local   net.Addr
	remote  net.Addr
	bytesIn *atomic.Uint64 // counters of the owner; may be nil
	bytesOu *atomic.Uint64

	// Deadlines in Unix nanoseconds (0: none), checked before each call
	// because yamux only looks at them when it has to wait.
	readDL, writeDL atomic.Int64

	closeOnce sync.Once
	closed    atomic.Bool
	onClose   func()
}

func newConn(s *yamux.Stream, service string, local, remote net.Addr, in, out *atomic.Uint64, onClose func()) *Conn {
	return &Conn{s: s, service: service, local: local, remote: remote, bytesIn: in, bytesOu: out, onClose: onClose}
}

// Service returns the name of the service the stream was opened for.
func (c *Conn) Service() string { return c.service }

// Read reads from the stream.
func (c *Conn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if expired(&c.readDL) {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.s.Read(b)
	if n > 0 && c.bytesIn != nil {
		c.bytesIn.Add(uint64(n))
	}
	return n, c.mapErr(err)
}

// Write writes to the stream.
func (c *Conn) Write(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if expired(&c.writeDL) {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.s.Write(b)
	if n > 0 && c.bytesOu != nil {
		c.bytesOu.Add(uint64(n))
	}
	return n, c.mapErr(err)
}

// WriteTo copies the stream to w until EOF. It lets io.Copy from a Conn
// (an echo handler's io.Copy(c, c), a service's copy to its backend) use
// pooled buffers sized to the traffic instead of a fresh 32 KiB per call.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	return netutil.Copy(w, c)
}

func (c *Conn) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	if errors.Is(err, yamux.ErrTimeout) {
		return os.ErrDeadlineExceeded
	}
	return err
}

// CloseWrite sends end-of-stream to the peer; reading goes on until the
// peer closes its side.
func (c *Conn) CloseWrite() error {
	return c.s.Close()
}

// Close closes the stream. Pending and later Reads and Writes fail with
// net.ErrClosed. A second Close returns an error wrapping net.ErrClosed.
func (c *Conn) Close() error {
	var err error = &net.OpError{Op: "close", Net: "tunnel", Source: c.local, Addr: c.remote, Err: net.ErrClosed}
	c.closeOnce.Do(func() {
		err = nil
		c.closed.Store(true)
		c.s.Close()
		// Unblock Reads and Writes in progress; the stream itself is
		// released when the peer closes its side (or after yamux's
		// close timeout).
		c.s.SetDeadline(time.Unix(1, 0))
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// LocalAddr returns the local address of the tunnel.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns, on the agent side, the original client address from
// the stream header (the proxy's address when the proxy sent none) and, on
// the proxy side, the agent's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	store(&c.readDL, t)
	store(&c.writeDL, t)
	return c.s.SetDeadline(t)
}

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	store(&c.readDL, t)
	return c.s.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	store(&c.writeDL, t)
	return c.s.SetWriteDeadline(t)
}

func store(dl *atomic.Int64, t time.Time) {
	if t.IsZero() {
		dl.Store(0)
	} else {
		dl.Store(t.UnixNano())
	}
}

func expired(dl *atomic.Int64) bool {
	d := dl.Load()
	return d != 0 && time.Now().UnixNano() >= d
}
