package sshserver

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/pty"
)

// terminalReader returns bulk output in pieces larger than the terminal's,
// and small output at once.
func TestTerminalReader(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.SetRaw(tty); err != nil {
		t.Fatal(err)
	}
	r := newTerminalReader(ptmx)
	if r.rc == nil {
		t.Fatal("the terminal is not under the poller: reads would not coalesce")
	}

	// Interactive: a few bytes come back at once.
	if _, err := tty.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	done := make(chan struct{})
	var n int
	go func() { n, err = r.Read(buf); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a 5-byte write did not come back from Read")
	}
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}

	// Bulk: everything arrives, in larger pieces than 4 KiB on average.
	want := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	go func() { tty.Write(want) }()
	var got []byte
	reads := 0
	for len(got) < len(want) {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
		reads++
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bulk output differs")
	}
	t.Logf("1 MiB in %d reads", reads)
}

// A descriptor outside the poller is read plainly.
func TestTerminalReaderBlocking(t *testing.T) {
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	rf, wf := os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
	defer rf.Close()
	defer wf.Close()
	r := newTerminalReader(rf)
	if r.rc != nil {
		t.Fatal("a blocking descriptor would be tried without waiting")
	}
	wf.Write(bytes.Repeat([]byte("x"), 8<<10))
	buf := make([]byte, 32<<10)
	if n, err := r.Read(buf); err != nil || n == 0 {
		t.Fatalf("read %d, %v", n, err)
	}
}
