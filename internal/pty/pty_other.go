//go:build !linux

package pty

import (
	"os"

	creack "github.com/creack/pty"
)

// Open opens a pseudo-terminal: the master and the slave.
func Open() (master, slave *os.File, err error) { return creack.Open() }

// SetSize sets the terminal's size.
func SetSize(f *os.File, cols, rows uint16) error {
	return creack.Setsize(f, &creack.Winsize{Cols: cols, Rows: rows})
}
