package tunnel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// Defaults of zero config fields.
const (
	// DefaultHeartbeatInterval is how often each end sends a heartbeat on
	// the control stream. It is well below the 350-second idle timeout of
	// cloud load balancers.
	DefaultHeartbeatInterval = 30 * time.Second
	// DefaultMissedHeartbeats is how many heartbeat intervals of silence
	// end a tunnel.
	DefaultMissedHeartbeats = 3
	// DefaultHandshakeTimeout bounds the TLS handshake, the control
	// handshake and each stream header exchange.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultStreamWindow is the largest receive window of one stream:
	// how far a sender may run ahead of a slow reader. It costs nothing on
	// idle tunnels (buffers grow with data in flight). Measured on
	// loopback TLS (BenchmarkWindow), 1 MiB moved one stream fastest and
	// with the least CPU per byte: 256 KiB stalls on window updates, and
	// 4–16 MiB of data in flight no longer fits the CPU caches.
	DefaultStreamWindow = 1 << 20
	// DefaultMaxStreams bounds the concurrent streams an agent serves.
	DefaultMaxStreams = 1024
	// DefaultReconnectMin and DefaultReconnectMax bound the agent's
	// exponential reconnect backoff (the wait is jittered between half
	// and all of the step). The cap keeps a restarted proxy's agents from
	// drifting into long waits while it works through their handshakes; a
	// refused dial to a proxy that is down costs next to nothing.
	DefaultReconnectMin = 500 * time.Millisecond
	DefaultReconnectMax = 10 * time.Second
	// DefaultPort is the port of the separate tunnel listener.
	DefaultPort = 3024
)

// minStreamWindow is the smallest window yamux accepts.
const minStreamWindow = 256 << 10

// ContextDialer dials network connections; *net.Dialer and
// *proxyconnect.Dialer are ContextDialers.
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// yamuxConfig returns the session settings; backlog bounds streams waiting
// for Accept (the proxy only accepts the control stream).
func yamuxConfig(window uint32, backlog int) *yamux.Config {
	c := yamux.DefaultConfig()
	c.AcceptBacklog = backlog
	c.EnableKeepAlive = false // the control stream carries heartbeats
	c.MaxStreamWindowSize = window
	c.LogOutput = io.Discard
	c.StreamCloseTimeout = time.Minute
	// Opening a stream does not wait for the peer's ACK; Dial bounds the
	// header exchange itself, so no timer goroutine per stream is needed.
	c.StreamOpenTimeout = 0
	c.ConnectionWriteTimeout = 30 * time.Second
	return c
}

func checkWindow(w uint32) (uint32, error) {
	if w == 0 {
		return DefaultStreamWindow, nil
	}
	if w < minStreamWindow {
		return 0, fmt.Errorf("%w: StreamWindow %d is below %d", ErrInvalidConfig, w, minStreamWindow)
	}
	return w, nil
}

func discardLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// control is one end of the control stream. Sends are serialized; one
// goroutine receives.
type control struct {
	s            *yamux.Stream
	writeTimeout time.Duration

	mu  sync.Mutex
	buf []byte
	hb  *time.Timer
}

func (c *control) send(m *message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := appendMessage(c.buf[:0], m)
	if err != nil {
		return err
	}
	c.s.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	_, err = c.s.Write(b)
	if cap(b) <= 4<<10 {
		c.buf = b
	}
	return err
}

// recv reads one message, waiting at most timeout.
func (c *control) recv(timeout time.Duration) (*message, error) {
	c.s.SetReadDeadline(time.Now().Add(timeout))
	return readMessage(c.s)
}

// startHeartbeats sends a heartbeat every interval until stop; a failed
// send calls fail.
func (c *control) startHeartbeats(interval time.Duration, fail func(error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hb = time.AfterFunc(interval, func() {
		if err := c.send(&message{Type: msgHeartbeat}); err != nil {
			fail(err)
			return
		}
		c.mu.Lock()
		if c.hb != nil {
			c.hb.Reset(interval)
		}
		c.mu.Unlock()
	})
}

func (c *control) stopHeartbeats() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hb != nil {
		c.hb.Stop()
		c.hb = nil
	}
}

func heartbeatDefaults(interval time.Duration, missed int) (time.Duration, int, error) {
	if interval < 0 || missed < 0 {
		return 0, 0, fmt.Errorf("%w: negative heartbeat settings", ErrInvalidConfig)
	}
	if interval == 0 {
		interval = DefaultHeartbeatInterval
	}
	if missed == 0 {
		missed = DefaultMissedHeartbeats
	}
	return interval, missed, nil
}

// coalescer sits between yamux and the TLS conn. yamux writes the 12-byte
// header of a data frame and then its body in two Writes from one
// goroutine; over TLS that is two records and at least two system calls.
// When the TLS conn runs over a batchConn, coalescer lets the header and
// all records of the body collect there and sends them in one system call;
// otherwise it holds the header back and sends it with a small body in one
// record.
type coalescer struct {
	net.Conn            // the TLS conn (or a PingConn over it)
	batch    *batchConn // under the TLS conn; nil when not ours
	hdr      [yamuxHeaderSize]byte
	pending  bool
}

const (
	yamuxHeaderSize = 12
	// maxCoalesce bounds the bodies that are copied to be sent with their
	// header: those that fit one TLS record with it.
	maxCoalesce = 16<<10 - yamuxHeaderSize
	// maxBatch bounds what a batchConn collects before it writes.
	maxBatch = 256 << 10
	// batchSlack is room past maxBatch for the write that crosses it (a
	// TLS record is at most 16 KiB plus its overhead).
	batchSlack = 32 << 10
)

var coalesceBufs = sync.Pool{New: func() any { b := make([]byte, 0, yamuxHeaderSize+maxCoalesce); return &b }}

// isDataHeader reports whether p is a yamux data frame header (version 0,
// type 0) with a non-zero length: a body follows.
func isDataHeader(p []byte) bool {
	return len(p) == yamuxHeaderSize && p[0] == 0 && p[1] == 0 && (p[8]|p[9]|p[10]|p[11]) != 0
}

func (c *coalescer) Write(p []byte) (int, error) {
	if c.batch != nil {
		if !c.pending && isDataHeader(p) {
			c.pending = true
			c.batch.begin()
			return c.Conn.Write(p)
		}
		n, err := c.Conn.Write(p)
		if c.pending {
			c.pending = false
			if ferr := c.batch.end(); ferr != nil && err == nil {
				return 0, ferr
			}
		}
		return n, err
	}
	if c.pending {
		c.pending = false
		if len(p) > maxCoalesce {
			if _, err := c.Conn.Write(c.hdr[:]); err != nil {
				return 0, err
			}
			return c.Conn.Write(p)
		}
		bp := coalesceBufs.Get().(*[]byte)
		b := append(append((*bp)[:0], c.hdr[:]...), p...)
		n, err := c.Conn.Write(b)
		*bp = b[:0]
		coalesceBufs.Put(bp)
		return max(n-yamuxHeaderSize, 0), err
	}
	if isDataHeader(p) {
		copy(c.hdr[:], p)
		c.pending = true
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// batchConn is the TCP conn under a TLS conn. Between begin and end it
// collects what the TLS conn writes (one Write per record) and sends it in
// one Write at end, or whenever maxBatch bytes have collected. Outside a
// batch it writes through. Its buffer comes from a pool for the length of a
// batch, so idle tunnels hold none.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      *[]byte
	err      error
}

// batchBufs hold a whole batch: maxBatch plus the record that crosses
// it, so a batch never grows its buffer.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, maxBatch+batchSlack); return &b }}

func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

func (b *batchConn) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	return b.flushLocked()
}

func (b *batchConn) flushLocked() error {
	if b.buf == nil {
		return b.err
	}
	if len(*b.buf) > 0 && b.err == nil {
		_, b.err = b.Conn.Write(*b.buf)
	}
	*b.buf = (*b.buf)[:0]
	if cap(*b.buf) <= maxBatch+batchSlack {
		batchBufs.Put(b.buf)
	}
	b.buf = nil
	return b.err
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		return b.Conn.Write(p)
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.buf == nil {
		b.buf = batchBufs.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	if len(*b.buf) >= maxBatch {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// NetConn returns the TCP conn (for proxyconnect.Via and the like).
func (b *batchConn) NetConn() net.Conn { return b.Conn }

// silenceLimit is how long a tunnel may stay silent: missed intervals of
// the slower of the two ends' heartbeats (the peer announces its interval
// in its hello; values above an hour are not believed).
func silenceLimit(own time.Duration, peerMillis int64, missed int) time.Duration {
	peer := time.Duration(min(max(peerMillis, 0), int64(time.Hour/time.Millisecond))) * time.Millisecond
	return max(own, peer) * time.Duration(missed)
}
