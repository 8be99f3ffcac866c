package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrRunning is returned by WritePIDFile when the pid file names a process
// that is still alive.
var ErrRunning = errors.New("daemon: another process is running")

// WaitConfig configures Wait.
type WaitConfig struct {
	// Reload is called on SIGHUP; an error is logged and the process
	// keeps running with what it had. Nil means SIGHUP is only logged.
	Reload func() error
	// Errc delivers the served component's result; a value ends Wait.
	// Nil means none.
	Errc <-chan error
	// Logger receives one line per signal; nil discards.
	Logger *slog.Logger
	// Signals, when set, replaces the process's signal notifications
	// (for tests). Nil means os/signal.
	Signals <-chan os.Signal
}

// Wait blocks until SIGTERM or SIGINT arrives (returned as sig), ctx ends
// or cfg.Errc delivers (returned as err). SIGHUP calls cfg.Reload and
// keeps waiting.
func Wait(ctx context.Context, cfg WaitConfig) (sig os.Signal, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sigc := cfg.Signals
	if sigc == nil {
		c := make(chan os.Signal, 4)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		defer signal.Stop(c)
		sigc = c
	}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-cfg.Errc:
			return nil, err
		case s := <-sigc:
			if s != syscall.SIGHUP {
				log.Info("signal received, draining", "signal", s.String())
				return s, nil
			}
			if cfg.Reload == nil {
				log.Info("SIGHUP: nothing to reload")
				continue
			}
			if err := cfg.Reload(); err != nil {
				log.Error("SIGHUP: reload failed, keeping the previous keypairs", "err", err)
				continue
			}
			log.Info("SIGHUP: reloaded")
		}
	}
}

// WritePIDFile writes the process ID to path (through a temporary file and
// a rename) and returns a function that removes it again. A file that
// names another live process makes it fail with ErrRunning; a stale one is
// replaced. An empty path does nothing.
func WritePIDFile(path string) (remove func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && pid != os.Getpid() && alive(pid) {
			return nil, fmt.Errorf("%w: pid file %s names process %d", ErrRunning, path, pid)
		}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".pid-*")
	if err != nil {
		return nil, fmt.Errorf("daemon: pid file: %w", err)
	}
	_, werr := fmt.Fprintf(f, "%d\n", os.Getpid())
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("daemon: pid file: %w", werr)
	}
	pid := os.Getpid()
	return func() {
		// Remove only our own file: a successor may have replaced it.
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
			os.Remove(path)
		}
	}, nil
}

func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}
