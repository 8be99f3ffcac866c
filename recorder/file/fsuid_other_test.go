//go:build !linux

package file_test

import (
	"os"
	"testing"
)

func asUnprivileged(t testing.TB, fn func()) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Skip("running as root: mode bits are bypassed on this platform")
	}
	fn()
}
