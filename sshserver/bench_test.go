package sshserver_test

import (
	"io"
	"testing"
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
