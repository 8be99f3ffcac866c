package alpn

import (
	"net"
	"sync"
)

// frameWriter writes whole frames to a conn. A write that fails part way
// through a frame (a write deadline) keeps the rest of the frame and sends
// it before anything else, so the peer's framing stays in step.
type frameWriter struct {
	mu      sync.Mutex
	c       net.Conn
	pending []byte // the unsent rest of a frame
	buf     []byte
}

// flush sends the pending rest of a frame. mu is held.
func (w *frameWriter) flush() error {
	for len(w.pending) > 0 {
		n, err := w.c.Write(w.pending)
		w.pending = w.pending[n:]
		if err != nil {
			return err
		}
	}
	w.pending = nil
	return nil
}

// write sends frame (which may alias w.buf) after any pending bytes. It
// reports whether the frame is committed (at least its first byte was
// written, so the rest will follow). mu is held.
func (w *frameWriter) write(frame []byte) (committed bool, err error) {
	if err := w.flush(); err != nil {
		return false, err
	}
	n, err := w.c.Write(frame)
	if err != nil && n > 0 && n < len(frame) {
		w.pending = append([]byte(nil), frame[n:]...)
	}
	return n > 0, err
}
