package mux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/internal/testservice"
)

// addrServer serves HTTP on l and answers every request with the
// connection's remote and local addresses.
func addrServer(t testing.TB, l net.Listener) {
	t.Helper()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			local := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
			fmt.Fprintf(w, "%s %s", r.RemoteAddr, local)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// getAddrs sends one HTTP/1.0 request over c and returns the body.
func getAddrs(t testing.TB, c net.Conn) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mux test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestBehindHAProxy puts the Mux behind a real HAProxy that sends PROXY
// version 1 or 2 headers, and checks that HTTP and TLS servers see the
// original client's address and the address it connected to.
func TestBehindHAProxy(t *testing.T) {
	for _, opt := range []string{"send-proxy", "send-proxy-v2"} {
		t.Run(opt, func(t *testing.T) {
			m := startMux(t, &Config{ProxyProtocol: ProxyRequired, TrustedNetworks: loopback})
			addrServer(t, m.Listener(HTTP))
			cert, pool := selfSigned(t)
			tlsL := tls.NewListener(m.Listener(TLS), &tls.Config{Certificates: []tls.Certificate{cert}})
			addrServer(t, tlsL)
			hap := testservice.HAProxyTCP(t, []string{m.Addr().String()}, opt)

			c, err := net.Dial("tcp", hap.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			want := c.LocalAddr().String() + " " + hap.Addr
			if got := getAddrs(t, c); got != want {
				t.Errorf("HTTP through HAProxy: server saw %q, want %q", got, want)
			}

			tc, err := tls.Dial("tcp", hap.Addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			want = tc.LocalAddr().String() + " " + hap.Addr
			if got := getAddrs(t, tc); got != want {
				t.Errorf("TLS through HAProxy: server saw %q, want %q", got, want)
			}
			waitFor(t, "counters", func() bool {
				s := m.Stats()
				return s.Accepted[HTTP] == 1 && s.Accepted[TLS] == 1
			})
			if s := m.Stats(); s.ProxyHeaderErrors != 0 || s.Unknown != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestHAProxyHealthChecks lets a real HAProxy run TCP health checks (with
// PROXY LOCAL headers) against the Mux: they are counted and not logged
// above debug level.
func TestHAProxyHealthChecks(t *testing.T) {
	for _, opt := range []string{"send-proxy-v2 check inter 20", "send-proxy check inter 20"} {
		t.Run(opt, func(t *testing.T) {
			h := &recordingHandler{level: slog.LevelInfo}
			m := startMux(t, &Config{ProxyProtocol: ProxyAccept, TrustedNetworks: loopback, Logger: slog.New(h)})
			m.Listener(HTTP)
			testservice.HAProxyTCP(t, []string{m.Addr().String()}, opt)
			waitFor(t, "5 health checks", func() bool { return m.Stats().HealthChecks >= 5 })
			s := m.Stats()
			if s.ProxyHeaderErrors != 0 || s.Unknown != 0 || s.ReadErrors != 0 || s.Timeouts != 0 {
				t.Errorf("health checks counted as errors: %+v", s)
			}
			if msgs := h.messages(); len(msgs) != 0 {
				t.Errorf("health checks logged above debug level: %q", msgs)
			}
		})
	}
}

// sshServer is a minimal SSH server that accepts one public key and runs
// "echo" for exec requests.
type sshServer struct {
	cfg  *ssh.ServerConfig
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []net.Addr // RemoteAddr of every connection
}

func newSSHServer(t testing.TB, client ssh.PublicKey) *sshServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{cfg: &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), client.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key")
		},
	}}
	s.cfg.AddHostKey(signer)
	return s
}

func (s *sshServer) serve(t testing.TB, l net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.seen = append(s.seen, c.RemoteAddr())
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
}

func (s *sshServer) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		for req := range creqs {
			if req.Type != "exec" {
				req.Reply(req.Type == "env", nil)
				continue
			}
			var cmd struct{ Command string }
			ssh.Unmarshal(req.Payload, &cmd)
			arg, ok := strings.CutPrefix(cmd.Command, "echo ")
			req.Reply(ok, nil)
			status := uint32(127)
			if ok {
				fmt.Fprintf(ch, "%s\n", arg)
				status = 0
			}
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
			ch.Close()
		}
	}
}

// sshClientFiles writes a throwaway client key and an ssh_config for it.
func sshClientFiles(t testing.TB) (config string, pub ssh.PublicKey) {
	t.Helper()
	cpub, cpriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(cpriv, "mux test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err = ssh.NewPublicKey(cpub)
	if err != nil {
		t.Fatal(err)
	}
	config = testservice.WriteFile(t, dir, "ssh_config", fmt.Sprintf(`Host *
  User tester
  IdentityFile %s
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 10
`, keyFile))
	return config, pub
}

func runSSH(t testing.TB, config, addr, command string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testservice.Bin(t, "ssh"), "-F", config, "-p", port, host, command)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	return string(out)
}

// TestOpenSSH runs the real OpenSSH client against an SSH server behind
// the Mux, directly and through HAProxy with PROXY version 2, while HTTP
// shares the port.
func TestOpenSSH(t *testing.T) {
	config, pub := sshClientFiles(t)
	m := startMux(t, &Config{ProxyProtocol: ProxyAccept, TrustedNetworks: loopback})
	srv := newSSHServer(t, pub)
	srv.serve(t, m.Listener(SSH))
	addrServer(t, m.Listener(HTTP))

	if out := runSSH(t, config, m.Addr().String(), "echo hello through the mux"); out != "hello through the mux\n" {
		t.Fatalf("ssh direct printed %q", out)
	}
	hap := testservice.HAProxyTCP(t, []string{m.Addr().String()}, "send-proxy-v2")
	if out := runSSH(t, config, hap.Addr, "echo hello through haproxy"); out != "hello through haproxy\n" {
		t.Fatalf("ssh through HAProxy printed %q", out)
	}
	c := dial(t, m.Addr())
	if got, want := getAddrs(t, c), c.LocalAddr().String()+" "+m.Addr().String(); got != want {
		t.Errorf("HTTP on the shared port: %q, want %q", got, want)
	}
	srv.mu.Lock()
	seen := append([]net.Addr(nil), srv.seen...)
	srv.mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("SSH server saw %d connections, want 2", len(seen))
	}
	waitFor(t, "counters", func() bool { return m.Stats().Accepted[SSH] == 2 })
}

// pgRelay relays Postgres connections from l to the real server at
// upstream, recording the startup code of each connection's first packet.
type pgRelay struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	codes []uint32
}

func startPGRelay(t testing.TB, l net.Listener, upstream string) *pgRelay {
	r := &pgRelay{}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.relay(c, upstream)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); r.wg.Wait() })
	return r
}

func (r *pgRelay) relay(c net.Conn, upstream string) {
	defer c.Close()
	var first [8]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return
	}
	r.mu.Lock()
	r.codes = append(r.codes, binary.BigEndian.Uint32(first[4:]))
	r.mu.Unlock()
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := up.Write(first[:]); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, c) // Conn.WriteTo: replay, then splice
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, up) // Conn.ReadFrom: splice
	c.(*Conn).CloseWrite()
	<-done
}

func (r *pgRelay) seen() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint32(nil), r.codes...)
}

// TestPsql runs the real psql client against the real PostgreSQL server
// through the Mux, with SSL disabled (a plain StartupMessage), with
// sslmode=prefer (an SSLRequest, then TLS end to end), and cancels a query
// (a CancelRequest on a second connection).
func TestPsql(t *testing.T) {
	const upstream = "127.0.0.1:5432"
	if err := testservice.WaitTCP(upstream, 5*time.Second); err != nil {
		t.Fatalf("PostgreSQL is not running at %s (start it with pg_ctlcluster, see scripts/install-deps): %v", upstream, err)
	}
	m := startMux(t, nil)
	relay := startPGRelay(t, m.Listener(Postgres), upstream)
	addrServer(t, m.Listener(HTTP))
	_, port, _ := net.SplitHostPort(m.Addr().String())
	tests := []struct {
		sslmode   string
		firstCode uint32
	}{
		{"disable", 196608},  // StartupMessage, protocol 3.0
		{"prefer", 80877103}, // SSLRequest
	}
	for _, tc := range tests {
		t.Run(tc.sslmode, func(t *testing.T) {
			before := len(relay.seen())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, testservice.Bin(t, "psql"), "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "test",
				"-Atc", "select 42")
			cmd.Env = append(os.Environ(), "PGSSLMODE="+tc.sslmode, "PGCONNECT_TIMEOUT=10", "PGPASSWORD=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("psql: %v\n%s", err, out)
			}
			if strings.TrimSpace(string(out)) != "42" {
				t.Fatalf("psql printed %q, want 42", out)
			}
			seen := relay.seen()[before:]
			if len(seen) == 0 || seen[0] != tc.firstCode {
				t.Fatalf("first packets seen %v, want %d first", seen, tc.firstCode)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		// psql sends a CancelRequest on a new connection on SIGINT.
		before := len(relay.seen())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		query := fmt.Sprintf("select pg_sleep(20) -- mux cancel %d", time.Now().UnixNano())
		cmd := exec.CommandContext(ctx, testservice.Bin(t, "psql"), "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "test",
			"-Atc", query)
		cmd.Env = append(os.Environ(), "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// Interrupt once the query runs on the server (asked directly).
		running := func() bool {
			o, _ := exec.CommandContext(ctx, testservice.Bin(t, "psql"), "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "test",
				"-Atc", "select count(*) from pg_stat_activity where state = 'active' and query = '"+query+"'").Output()
			return strings.TrimSpace(string(o)) == "1"
		}
		var err error
	wait:
		for {
			select {
			case err = <-exited:
				break wait
			case <-time.After(100 * time.Millisecond):
				if running() {
					cmd.Process.Signal(os.Interrupt)
				}
			}
		}
		if err == nil || !strings.Contains(out.String(), "canceling statement due to user request") {
			t.Fatalf("psql was not cancelled: %v\n%s", err, &out)
		}
		seen := relay.seen()[before:]
		if len(seen) < 2 || seen[0] != 196608 || seen[1] != pgCancelRequest {
			t.Fatalf("first packets seen %v, want a StartupMessage then a CancelRequest", seen)
		}
	})
	if s := m.Stats(); s.Accepted[Postgres] < 4 || s.Unknown != 0 {
		t.Errorf("stats %+v", s)
	}
}
