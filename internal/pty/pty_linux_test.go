package pty

import (
	"bytes"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func TestOpen(t *testing.T) {
	m, s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer s.Close()
	if err := SetSize(m, 120, 40); err != nil {
		t.Fatal(err)
	}
	if err := SetRaw(s); err != nil {
		t.Fatal(err)
	}
	// The size is what the program sees.
	var ws struct{ rows, cols, x, y uint16 }
	if err := ioctl(s, syscall.TIOCGWINSZ, unsafe.Pointer(&ws)); err != nil {
		t.Fatal(err)
	}
	if ws.cols != 120 || ws.rows != 40 {
		t.Fatalf("size %dx%d, want 120x40", ws.cols, ws.rows)
	}
	// The master is still non-blocking, so a deadline ends a read that
	// has nothing to read (a blocking descriptor ignores deadlines).
	var flags uintptr
	rc, _ := m.SyscallConn()
	rc.Control(func(fd uintptr) { flags, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0) })
	if flags&syscall.O_NONBLOCK == 0 {
		t.Fatal("the master is in blocking mode")
	}
	m.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := m.Read(make([]byte, 16)); err == nil || !isTimeout(err) {
		t.Fatalf("read of an idle terminal: %v, want a timeout", err)
	}
	m.SetReadDeadline(time.Time{})
	// Raw mode: bytes pass unchanged (no "\n" → "\r\n").
	want := []byte("a\nb\x1b[0m\r\n")
	if _, err := s.Write(want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(want))
	buf := make([]byte, 64)
	for len(got) < len(want) {
		n, err := m.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
}

func isTimeout(err error) bool {
	t, ok := err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}
