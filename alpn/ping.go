package alpn

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// MaxPingFrame is the largest payload of one frame of a "-ping" conn.
// Writes are split into frames of at most this size; a larger frame read
// from the peer is an error (ErrFrameTooLarge).
const MaxPingFrame = 64 << 10

// ErrFrameTooLarge is returned by Read when the peer sends a frame larger
// than the protocol allows.
var ErrFrameTooLarge = errors.New("alpn: frame too large")

// PingConn is the framing of the "-ping" protocol variants: every Write is
// sent as frames of a 4-byte big-endian length and that many bytes; a
// zero-length frame is a keepalive that Read drops. With a non-zero
// interval, a PingConn sends a keepalive every interval so that idle
// timeouts of load balancers on the path never fire. Both ends wrap their
// side of the connection (after the TLS handshake) with NewPingConn.
//
// A write that times out part way through a frame sends the rest of the
// frame before the next write, so the stream stays well framed; the frame's
// bytes count as written. Both ends should keep reading while the
// connection is open: a TCP socket closed with unread keepalives in its
// buffer is reset, which can drop data the peer has not read yet.
type PingConn struct {
	net.Conn

	rmu       sync.Mutex
	br        *bufio.Reader
	hdr       [4]byte
	hdrN      int
	remaining int

	w frameWriter

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// NewPingConn wraps c. interval is the keepalive period; zero or negative
// sends none (keepalives from the peer are still dropped). Close stops
// the keepalive goroutine and closes c.
func NewPingConn(c net.Conn, interval time.Duration) *PingConn {
	p := &PingConn{
		Conn: c,
		br:   bufio.NewReaderSize(c, 16<<10),
		w:    frameWriter{c: c},
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if interval > 0 {
		go p.keepalive(interval)
	} else {
		close(p.done)
	}
	return p
}

// NetConn returns the wrapped conn.
func (p *PingConn) NetConn() net.Conn { return p.Conn }

// Read reads data, dropping keepalive frames.
func (p *PingConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	for {
		if p.remaining > 0 {
			n, err := p.br.Read(b[:min(len(b), p.remaining)])
			p.remaining -= n
			if n > 0 {
				return n, nil
			}
			return n, p.readErr(err)
		}
		for p.hdrN < len(p.hdr) {
			n, err := p.br.Read(p.hdr[p.hdrN:])
			p.hdrN += n
			if err != nil {
				return 0, p.readErr(err)
			}
		}
		p.hdrN = 0
		size := binary.BigEndian.Uint32(p.hdr[:])
		if size > MaxPingFrame {
			return 0, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, size)
		}
		p.remaining = int(size)
	}
}

// readErr turns an EOF in the middle of a frame into io.ErrUnexpectedEOF.
func (p *PingConn) readErr(err error) error {
	if err == io.EOF && (p.hdrN > 0 || p.remaining > 0) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Write sends b as one or more frames.
func (p *PingConn) Write(b []byte) (int, error) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	written := 0
	for {
		chunk := b[written:min(len(b), written+MaxPingFrame)]
		if len(chunk) == 0 && written > 0 {
			return written, nil
		}
		if len(chunk) == 0 {
			// An empty Write sends nothing (a zero-length frame is a ping).
			return 0, p.w.flush()
		}
		frame := append(p.w.buf[:0], 0, 0, 0, 0)
		binary.BigEndian.PutUint32(frame, uint32(len(chunk)))
		frame = append(frame, chunk...)
		p.w.buf = frame
		committed, err := p.w.write(frame)
		if committed {
			written += len(chunk)
		}
		if err != nil {
			return written, err
		}
	}
}

// Ping sends one keepalive frame now.
func (p *PingConn) Ping() error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	_, err := p.w.write([]byte{0, 0, 0, 0})
	return err
}

func (p *PingConn) keepalive(interval time.Duration) {
	defer close(p.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		// A write in progress keeps the path busy already.
		if !p.w.mu.TryLock() {
			continue
		}
		_, err := p.w.write([]byte{0, 0, 0, 0})
		p.w.mu.Unlock()
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return
		}
	}
}

// Close stops the keepalives and closes the wrapped conn.
func (p *PingConn) Close() error {
	p.stopOnce.Do(func() { close(p.stop) })
	err := p.Conn.Close()
	<-p.done
	return err
}

// CloseWrite shuts down the writing side when the wrapped conn supports it.
func (p *PingConn) CloseWrite() error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if err := p.w.flush(); err != nil {
		return err
	}
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("alpn: CloseWrite not supported by the wrapped conn")
}
