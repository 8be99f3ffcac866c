package testservice

import (
	"strconv"
	"testing"
)

// FakeGCS is a fake-gcs-server (Cloud Storage JSON and XML API emulator)
// started for a test, with a filesystem backend.
type FakeGCS struct {
	*Process
	Addr     string // "127.0.0.1:PORT"
	Endpoint string // "http://127.0.0.1:PORT"
	DataDir  string
}

// StartFakeGCS starts fake-gcs-server over plain HTTP on a free loopback
// port. It is stopped when the test ends. Point a client at it with
// STORAGE_EMULATOR_HOST=Addr or the endpoint Endpoint.
func StartFakeGCS(t testing.TB) *FakeGCS {
	t.Helper()
	port := FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	p := Start(t, "fake-gcs-server", []string{
		"-scheme", "http", "-host", "127.0.0.1", "-port", strconv.Itoa(port),
		"-backend", "filesystem", "-filesystem-root", dir,
		"-public-host", addr, "-external-url", "http://" + addr,
		"-log-level", "warn",
	}, nil, addr)
	return &FakeGCS{Process: p, Addr: addr, Endpoint: "http://" + addr, DataDir: dir}
}
