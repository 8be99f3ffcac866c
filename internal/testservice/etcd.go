package testservice

import (
	"net"
	"strconv"
	"testing"
)

// EtcdMaxRequestBytes is the request size limit the test etcd runs with
// (--max-request-bytes). The default of 1.5 MiB is too small for a 1 MiB
// value in a transaction with its key and overhead; clusters that store
// values near the backend's 1 MiB limit need the same setting.
const EtcdMaxRequestBytes = 10 << 20

// Etcd is a private single-member etcd server started for a test.
type Etcd struct {
	Addr     string // client address, "127.0.0.1:PORT"
	Endpoint string // "http://127.0.0.1:PORT"
	DataDir  string
	Process  *Process
}

// EtcdTLS names the PEM files of an etcd server that serves clients
// over TLS.
type EtcdTLS struct {
	CertFile, KeyFile string // the server's certificate (for 127.0.0.1) and key
	// ClientCAFile, when set, makes the server require client
	// certificates signed by this CA.
	ClientCAFile string
}

// StartEtcd starts a single-member etcd on free loopback ports with its
// data in a temporary directory, and stops it when the test ends. extra
// arguments are appended to the command line.
func StartEtcd(t testing.TB, extra ...string) *Etcd {
	t.Helper()
	return StartEtcdTLS(t, nil, extra...)
}

// StartEtcdTLS is StartEtcd with TLS for clients when tc is not nil
// (Endpoint is then https://).
func StartEtcdTLS(t testing.TB, tc *EtcdTLS, extra ...string) *Etcd {
	t.Helper()
	client := FreePort(t)
	peer := FreePort(t)
	data := t.TempDir()
	scheme := "http://"
	if tc != nil {
		scheme = "https://"
		extra = append([]string{"--cert-file", tc.CertFile, "--key-file", tc.KeyFile}, extra...)
		if tc.ClientCAFile != "" {
			extra = append([]string{"--client-cert-auth", "--trusted-ca-file", tc.ClientCAFile}, extra...)
		}
	}
	curl := scheme + "127.0.0.1:" + strconv.Itoa(client)
	purl := "http://127.0.0.1:" + strconv.Itoa(peer)
	args := []string{
		"--name", "t",
		"--data-dir", data,
		"--listen-client-urls", curl,
		"--advertise-client-urls", curl,
		"--listen-peer-urls", purl,
		"--initial-advertise-peer-urls", purl,
		"--initial-cluster", "t=" + purl,
		"--max-request-bytes", strconv.Itoa(EtcdMaxRequestBytes),
		"--logger", "zap",
		"--log-level", "warn",
	}
	args = append(args, extra...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(client))
	p := Start(t, "etcd", args, nil, addr)
	return &Etcd{Addr: addr, Endpoint: curl, DataDir: data, Process: p}
}

// Stop stops the server (SIGTERM; its data stays for Start).
func (e *Etcd) Stop() { e.Process.Stop() }

// Kill kills the server at once, as a crash would.
func (e *Etcd) Kill() { e.Process.Kill() }

// Start starts the server again with the same data after Stop or Kill.
func (e *Etcd) Start() { e.Process.Restart(e.Addr) }
