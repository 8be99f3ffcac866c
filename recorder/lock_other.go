//go:build !unix

package recorder

import (
	"fmt"
	"os"
)

// lockDir opens the lock file; without flock the spool relies on one
// process per directory.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("recorder: spool lock: %w", err)
	}
	return f, nil
}

func unlockDir(f *os.File) {
	if f != nil {
		f.Close()
	}
}
