package recorder_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/sallyport/sallyport/internal/pty"
	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/recordertest"
)

// openPTY opens a pseudo-terminal pair as sshserver does: the master
// (the session side) and the slave (the program's terminal), in raw mode:
// no newline translation or echo.
func openPTY(tb testing.TB) (master, slave *os.File) {
	tb.Helper()
	m, s, err := pty.Open()
	if err != nil {
		tb.Fatalf("open a pseudo-terminal: %v", err)
	}
	if err := pty.SetRaw(s); err != nil {
		tb.Fatalf("raw mode: %v", err)
	}
	return m, s
}

// BenchmarkSession measures a terminal session's output throughput: a
// program writes to a PTY, the session copies the PTY's output to the
// client over a loopback TCP connection, and, when recorded, also into a
// Recording (io.MultiWriter, as an SSH server would). bench/recorder.sh
// compares the two.
func BenchmarkSession(b *testing.B) {
	out := recordertest.TerminalOutput(1 << 20)
	for _, recorded := range []bool{false, true} {
		name := "unrecorded"
		if recorded {
			name = "recorded"
		}
		b.Run(name, func(b *testing.B) {
			var rec *recorder.Recording
			var sp *recorder.Spool
			if recorded {
				var err error
				sp, err = recorder.Open(context.Background(), &recorder.Config{Dir: filepath.Join(b.TempDir(), "spool"), DiskBudget: -1})
				if err != nil {
					b.Fatal(err)
				}
				rec, err = sp.NewSession(context.Background(), recorder.Meta{User: "bench"})
				if err != nil {
					b.Fatal(err)
				}
			}
			master, slave := openPTY(b)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(1)
			var received int64
			go func() { // the client
				defer wg.Done()
				c, err := ln.Accept()
				if err != nil {
					return
				}
				received, _ = io.Copy(io.Discard, c)
				c.Close()
			}()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			total := int64(len(out)) * int64(b.N)
			wg.Add(1)
			go func() { // the program
				defer wg.Done()
				for range b.N {
					if _, err := slave.Write(out); err != nil {
						return
					}
				}
			}()
			var dst io.Writer = client
			if recorded {
				dst = io.MultiWriter(client, rec)
			}
			b.SetBytes(int64(len(out)))
			b.ResetTimer()
			cpu0 := cpuTime()
			buf := make([]byte, 32<<10)
			var copied int64
			for copied < total {
				n, err := master.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					b.Fatal(err)
				}
				copied += int64(n)
			}
			b.StopTimer()
			if recorded {
				// Include the recorder's work still buffered.
				if err := rec.Checkpoint(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(total), "cpu-ns/B")
			client.Close()
			slave.Close()
			master.Close()
			ln.Close()
			wg.Wait()
			if received != total {
				b.Fatalf("client received %d of %d bytes", received, total)
			}
			if recorded {
				if err := rec.Close(); err != nil {
					b.Fatal(err)
				}
				st := sp.Stats()
				b.ReportMetric(float64(total)/float64(st.DiskBytes), "compression")
				sp.Close()
			}
		})
	}
}

// cpuTime is the process's user and system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkRecordingWrite measures how fast a Recording takes output when
// nothing else limits it (the recorder's own capacity).
func BenchmarkRecordingWrite(b *testing.B) {
	out := recordertest.TerminalOutput(1 << 20)
	sp, err := recorder.Open(context.Background(), &recorder.Config{Dir: filepath.Join(b.TempDir(), "spool"), DiskBudget: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	rec, err := sp.NewSession(context.Background(), recorder.Meta{User: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ResetTimer()
	for range b.N {
		for p := out; len(p) > 0; {
			n := min(len(p), 4096)
			rec.Write(p[:n])
			p = p[n:]
		}
	}
	if err := rec.Close(); err != nil { // includes draining the buffer
		b.Fatal(err)
	}
}
