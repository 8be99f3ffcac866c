package sshserver_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/recordertest"
	"github.com/sallyport/sallyport/sshserver"
)

// BenchmarkSessionSetup measures a whole login: TCP connect, SSH
// handshake, certificate authentication, one exec session running
// "true", and disconnect.
func BenchmarkSessionSetup(b *testing.B) {
	e := startEnv(b, nil)
	id := e.userIdentity(b)
	b.ReportAllocs()
	for b.Loop() {
		c, err := e.goClient(b, testLogin, id)
		if err != nil {
			b.Fatal(err)
		}
		if err := mustSession(b, c).Run("true"); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkExec measures one exec session ("true") on an established
// connection.
func BenchmarkExec(b *testing.B) {
	e := startEnv(b, nil)
	c, err := e.goClient(b, testLogin, e.userIdentity(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := mustSession(b, c).Run("true"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecThroughput measures bulk data through an exec session's
// stdin ("cat > /dev/null").
func BenchmarkExecThroughput(b *testing.B) {
	e := startEnv(b, nil)
	c, err := e.goClient(b, testLogin, e.userIdentity(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const chunk = 1 << 20
	buf := make([]byte, 256<<10)
	s := mustSession(b, c)
	w, err := s.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start("cat > /dev/null"); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(chunk)
	for b.Loop() {
		for n := 0; n < chunk; n += len(buf) {
			if _, err := w.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	w.Close()
	if err := s.Wait(); err != nil && err != io.EOF {
		b.Fatal(err)
	}
}

// BenchmarkRecordedSession measures the terminal output throughput of a
// session, the OpenSSH client running "cat" of busy-shell output on a
// PTY, unrecorded and recorded by a recorder.Spool (the agent's setup).
// Each iteration is one session; the rate is taken from the first output
// byte to the last, so the login does not count. bench/recorder.sh
// compares the two.
func BenchmarkRecordedSession(b *testing.B) {
	size := 64 << 20
	if s := os.Getenv("SALLYPORT_BENCH_SESSION_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("SALLYPORT_BENCH_SESSION_MIB=%q is not a positive number", s)
		}
		size = n << 20
	}
	output := recordertest.TerminalOutput(size)
	for _, recorded := range []bool{false, true} {
		name := "unrecorded"
		if recorded {
			name = "recorded"
		}
		b.Run(name, func(b *testing.B) {
			var mod func(*sshserver.Config)
			if recorded {
				spool, err := recorder.Open(context.Background(), &recorder.Config{Dir: b.TempDir(), DiskBudget: -1})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { spool.Close() })
				mod = func(c *sshserver.Config) {
					c.Recorder = func(ctx context.Context, s sshserver.SessionInfo) (sshserver.Recording, error) {
						return spool.NewSession(ctx, recorder.Meta{ID: s.ID, User: s.User, Login: s.Login, Node: s.Node,
							Start: s.Start, Width: s.Width, Height: s.Height, Term: s.Term})
					}
				}
			}
			e := startEnv(b, mod)
			cfg := e.sshConfig(b, e.userIdentity(b), e.hostCA.PublicKey())
			// A file the session's login can read.
			src := filepath.Join(e.dir, "output.txt")
			if err := os.WriteFile(src, output, 0o644); err != nil {
				b.Fatal(err)
			}
			for _, d := range []string{e.dir, filepath.Dir(e.dir)} {
				if err := os.Chmod(d, 0o755); err != nil {
					b.Fatal(err)
				}
			}
			var total time.Duration
			var bytes int64
			for b.Loop() {
				cmd := exec.Command(testservice.Bin(b, "ssh"), "-F", cfg, "-tt", "node", "stty raw -echo; cat "+src)
				out, err := cmd.StdoutPipe()
				if err != nil {
					b.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, 256<<10)
				var start time.Time
				var n int64
				for {
					k, err := out.Read(buf)
					if k > 0 && n == 0 {
						start = time.Now()
					}
					n += int64(k)
					if err != nil {
						break
					}
				}
				total += time.Since(start)
				bytes += n
				if err := cmd.Wait(); err != nil {
					b.Fatalf("ssh: %v", err)
				}
				if n < int64(size) {
					b.Fatalf("received %d bytes of output, want at least %d", n, size)
				}
			}
			b.ReportMetric(float64(bytes)/total.Seconds()/1e6, "MB/s")
		})
	}
}
