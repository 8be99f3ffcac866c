// Package netutil holds what the cluster's servers share around their
// listeners.
package netutil

import (
	"errors"
	"net"
	"time"
)

// AcceptBackoff paces an accept loop after errors that may pass, as
// net/http does: a timeout, or an error that says it is temporary, such
// as running out of file descriptors (EMFILE) or a connection aborted
// before it was accepted. Other errors end the loop. The zero value is
// ready; it is not safe for concurrent use.
type AcceptBackoff struct{ delay time.Duration }

// Retry reports whether the loop should accept again after err, and how
// long it should wait first: 5 ms, doubling up to 1 s while errors
// continue.
func (b *AcceptBackoff) Retry(err error) (time.Duration, bool) {
	var ne net.Error
	var tmp interface{ Temporary() bool }
	if !(errors.As(err, &ne) && ne.Timeout()) && !(errors.As(err, &tmp) && tmp.Temporary()) {
		return 0, false
	}
	b.delay = min(max(2*b.delay, 5*time.Millisecond), time.Second)
	return b.delay, true
}

// Reset starts the pacing over; call it after each successful Accept.
func (b *AcceptBackoff) Reset() { b.delay = 0 }
