package sshserver_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	cleanup, err := setupLogin()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sshserver tests: cannot create the test login:", err)
		os.Exit(1)
	}
	// goleak.VerifyTestMain exits, so the account is removed from a
	// wrapped run.
	goleak.VerifyTestMain(cleanupM{m, cleanup})
}

type cleanupM struct {
	m       *testing.M
	cleanup func()
}

func (c cleanupM) Run() int {
	defer c.cleanup()
	return c.m.Run()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func testLogger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{e.logMu, e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
