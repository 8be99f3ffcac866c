package netutil

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestAcceptBackoff(t *testing.T) {
	var b AcceptBackoff
	// EMFILE as net.Listener.Accept reports it: an *OpError around a
	// SyscallError, which says it is temporary.
	emfile := fmt.Errorf("accept: %w", os.NewSyscallError("accept4", syscall.EMFILE))
	want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}
	for i, err := range []error{emfile, timeoutErr{}, emfile} {
		d, ok := b.Retry(err)
		if !ok || d != want[i] {
			t.Fatalf("retry %d after %v: %v %v, want %v true", i, err, d, ok, want[i])
		}
	}
	for range 20 {
		b.Retry(emfile)
	}
	if d, _ := b.Retry(emfile); d != time.Second {
		t.Fatalf("delay grew to %v, want the 1s cap", d)
	}
	b.Reset()
	if d, _ := b.Retry(emfile); d != 5*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
	if _, ok := b.Retry(errors.New("use of closed network connection")); ok {
		t.Fatal("a permanent error is retried")
	}
}
