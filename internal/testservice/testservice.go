// Package testservice starts real components (squid, HAProxy, nginx, etcd,
// PostgreSQL, MinIO, ...) on loopback for the project's tests.
//
// Every component runs as a private process on free ports in a temporary
// directory and is stopped by t.Cleanup. A program that is not installed
// fails the test with a message naming the program and the command that
// installs it (scripts/install-deps): tests never pass by skipping.
//
// Each component lives in a file of its own (squid.go, haproxy.go, ...);
// this file holds what they share: finding programs, free ports, starting
// and stopping processes, and waiting for a port to accept connections.
package testservice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bin returns the path of the named program, searching PATH, the tools
// directory of scripts/install-deps ($SALLYPORT_TOOLS/bin, default
// ~/.cache/sallyport-tools/bin) and /usr/sbin. It fails the test when the
// program is missing.
func Bin(t testing.TB, name string) string {
	t.Helper()
	p, err := LookBin(name)
	if err != nil {
		t.Fatalf("testservice: %v: run scripts/install-deps (or scripts/test, which runs it)", err)
	}
	return p
}

// LookBin is Bin without a test: it returns an error naming what is missing.
func LookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{
		filepath.Join(ToolsDir(), "bin"),
		filepath.Join(ToolsDir(), "node_modules", ".bin"),
		"/usr/sbin", "/sbin", "/usr/lib/postgresql/15/bin",
	} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed", name)
}

// ToolsDir is where scripts/install-deps puts test tools that are not
// Debian packages.
func ToolsDir() string {
	if d := os.Getenv("SALLYPORT_TOOLS"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "sallyport-tools")
}

var portMu sync.Mutex
var portsGiven = map[int]bool{}

// FreePort returns a loopback TCP port that was free a moment ago and that
// this process has not handed out before.
func FreePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testservice: free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsGiven[p] {
			portsGiven[p] = true
			return p
		}
	}
	t.Fatal("testservice: no free port")
	return 0
}

// FreeAddr returns "127.0.0.1:PORT" for a FreePort.
func FreeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// WaitTCP waits until addr accepts a TCP connection or timeout passes.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testservice: %s did not accept connections within %v: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Process is a program started for a test. Its output is kept and printed
// when the test fails.
type Process struct {
	Name string   // short name for messages
	Path string   // program path
	Args []string // arguments
	Env  []string // extra environment, added to the test's
	Dir  string   // working directory; a temporary directory when empty

	t    testing.TB
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // keep the log bounded
		l.b.Reset()
		l.b.WriteString("[earlier output dropped]\n")
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start starts program name (found with Bin) with args and stops it when the
// test ends. readyAddr, when not empty, is waited for (up to 30 s).
func Start(t testing.TB, name string, args []string, env []string, readyAddr string) *Process {
	t.Helper()
	p := &Process{Name: name, Path: Bin(t, name), Args: args, Env: env, Dir: t.TempDir(), t: t}
	p.out = &lockedBuffer{}
	if err := p.start(); err != nil {
		t.Fatalf("testservice: start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("testservice: output of %s %v:\n%s", p.Name, p.Args, p.Output())
		}
	})
	if readyAddr != "" {
		if err := WaitTCP(readyAddr, 30*time.Second); err != nil {
			t.Fatalf("%v\n%s output:\n%s", err, name, p.Output())
		}
	}
	return p
}

func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// Output returns what the program printed so far.
func (p *Process) Output() string { return p.out.String() }

// Pid returns the process ID of the running program, or 0.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the program's process group.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return errors.New("testservice: not running")
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Stop terminates the program (SIGTERM, then SIGKILL after 5 s) and waits
// for it. It is safe to call more than once.
func (p *Process) Stop() { p.stop(syscall.SIGTERM, 5*time.Second) }

// Kill kills the program at once (SIGKILL) and waits for it.
func (p *Process) Kill() { p.stop(syscall.SIGKILL, 0) }

func (p *Process) stop(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
		}
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Restart starts the program again with the same arguments after Stop or
// Kill, and waits for readyAddr when it is not empty.
func (p *Process) Restart(readyAddr string) {
	p.t.Helper()
	if err := p.start(); err != nil {
		p.t.Fatalf("testservice: restart %s: %v", p.Name, err)
	}
	if readyAddr != "" {
		if err := WaitTCP(readyAddr, 30*time.Second); err != nil {
			p.t.Fatalf("%v\n%s output:\n%s", err, p.Name, p.Output())
		}
	}
}

// Wait waits for the program to exit by itself, up to ctx.
func (p *Process) Wait(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WriteFile writes content to name inside dir and returns the full path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
