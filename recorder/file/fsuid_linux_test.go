package file_test

import (
	"os"
	"runtime"
	"syscall"
	"testing"
)

// asUnprivileged runs fn with the filesystem permissions of user nobody
// when the test runs as root (setfsuid on a locked thread drops the
// capabilities that bypass mode bits), and plainly otherwise.
func asUnprivileged(t testing.TB, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		fn()
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	syscall.Syscall(syscall.SYS_SETFSUID, 65534, 0, 0)
	defer syscall.Syscall(syscall.SYS_SETFSUID, 0, 0, 0)
	fn()
}
