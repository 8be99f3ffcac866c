package proxy_test

import (
	"context"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/authapi"
	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/proxy"
)

// startSSHD runs OpenSSH's sshd on loopback with a host certificate of the
// cluster (principal "sshd-node") and the cluster's user CA trusted, so the
// same user files log in to it and to the agents.
func startSSHD(b testing.TB, c *cluster, lr *proxy.LoginResponse) string {
	b.Helper()
	ctx := testCtx(b)
	host, err := c.auth.IssueIdentity(ctx, authapi.RoleAgent, "sshd-node", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	pk, err := ssh.MarshalPrivateKey(host.SSHKey, "")
	if err != nil {
		b.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	key := write("host_key", pem.EncodeToMemory(pk))
	write("host_key-cert.pub", ssh.MarshalAuthorizedKey(host.SSHCert))
	userCA := write("user_ca.pub", ssh.MarshalAuthorizedKey(host.SSHUserCAs[0]))
	addr := testservice.FreeAddr(b)
	h, port, _ := net.SplitHostPort(addr)
	conf := write("sshd_config", fmt.Appendf(nil, `Port %s
ListenAddress %s
HostKey %s
HostCertificate %s-cert.pub
TrustedUserCAKeys %s
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PidFile %s/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
`, port, h, key, key, userCA, dir))
	// sshd refuses to start without its privilege separation directory,
	// which lives on /run and so is gone after every boot.
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			b.Fatalf("sshd's privilege separation directory: %v", err)
		}
	}
	testservice.Start(b, "sshd", []string{"-D", "-e", "-f", conf}, nil, addr)
	return addr
}

// benchEnv is a cluster with a proxy, an agent on a tunnel and a plain
// sshd, and OpenSSH files that reach "dev1" through the proxy and
// "sshd-node" directly.
func benchEnv(b *testing.B) *sshEnv {
	c := startCluster(b)
	c.role(b, "dev", []string{"root"}, map[string][]string{"*": {"*"}})
	c.user(b, "alice", "correct horse", "dev")
	p := startProxy(b, c, proxy.Config{Mode: proxy.Multiplex})
	startAgent(b, c, p, agent.Config{NodeName: "dev1"})
	waitNode(b, p, "dev1", true)
	status, lr, msg := login(b, webClient(b, c), p.webAddr, proxy.LoginRequest{User: "alice", Password: "correct horse"})
	if status != 200 {
		b.Fatalf("login: %d %s", status, msg)
	}
	host, port, _ := net.SplitHostPort(p.sshAddr)
	env := writeSSHConfig(b, lr, host, port)
	sshdAddr := startSSHD(b, c, lr)
	sh, sp, _ := net.SplitHostPort(sshdAddr)
	cfg, err := os.ReadFile(env.config)
	if err != nil {
		b.Fatal(err)
	}
	cfg = append(fmt.Appendf(nil, "Host sshd-node\n    HostName %s\n    Port %s\n    HostKeyAlias sshd-node\n    ProxyJump none\n\n", sh, sp), cfg...)
	if opts := os.Getenv("SALLYPORT_BENCH_SSH_OPTS"); opts != "" {
		// Client options for every hop ("Ciphers aes128-gcm@openssh.com;
		// KexAlgorithms curve25519-sha256"), ahead of the Host blocks.
		var head []byte
		for _, o := range strings.Split(opts, ";") {
			if o = strings.TrimSpace(o); o != "" {
				head = fmt.Appendf(head, "%s\n", o)
			}
		}
		cfg = append(append(head, '\n'), cfg...)
	}
	if err := os.WriteFile(env.config, cfg, 0o600); err != nil {
		b.Fatal(err)
	}
	return env
}

// benchSize is the scp payload: SALLYPORT_BENCH_SCP_MIB MiB (default 32).
func benchSize(b *testing.B) int64 {
	mib := int64(32)
	if v := os.Getenv("SALLYPORT_BENCH_SCP_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 16<<10 {
			b.Fatalf("SALLYPORT_BENCH_SCP_MIB=%q: want 1 to 16384", v)
		}
		mib = n
	}
	return mib << 20
}

// writePayload writes size pseudo-random (incompressible) bytes to path
// without holding them in memory.
func writePayload(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	var seed [32]byte
	rand.Read(seed[:])
	if _, err := io.CopyN(f, mrand.NewChaCha8(seed), size); err != nil {
		f.Close()
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOpenSSH compares, with the real OpenSSH client, a node reached
// through the proxy and its reverse tunnel ("proxy") with OpenSSH's sshd
// reached directly ("sshd"): scp throughput of a file of
// SALLYPORT_BENCH_SCP_MIB MiB (default 32), and the time to set up a
// session and run "true" (p50 and p99 of the iterations).
// SALLYPORT_BENCH_SSH_OPTS, when set, holds OpenSSH client options for
// every hop, separated by ";". bench/proxy.sh prints the ratios.
func BenchmarkOpenSSH(b *testing.B) {
	env := benchEnv(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	size := benchSize(b)
	src := filepath.Join(env.dir, "payload") // removed with env.dir
	written := false
	scp := testservice.Bin(b, "scp")
	targets := []struct{ name, host string }{{"proxy", "dev1"}, {"sshd", "sshd-node"}}
	for _, tg := range targets {
		b.Run("scp/"+tg.name, func(b *testing.B) {
			if !written {
				writePayload(b, src, size)
				written = true
			}
			remote := filepath.Join(os.TempDir(), fmt.Sprintf("sallyport-bench-%s-%d", tg.name, os.Getpid()))
			defer os.Remove(remote)
			b.SetBytes(size)
			for b.Loop() {
				args := append([]string{"-F", env.config, "-q"}, strings.Fields(os.Getenv("SALLYPORT_BENCH_SCP_ARGS"))...)
				out, err := exec.CommandContext(ctx, scp, append(args, src, tg.host+":"+remote)...).CombinedOutput()
				if err != nil {
					b.Fatalf("scp: %v\n%s", err, out)
				}
			}
			b.StopTimer()
			if st, err := os.Stat(remote); err != nil || st.Size() != size {
				b.Fatalf("copied file: %v (err %v), want %d bytes", st, err, size)
			}
		})
	}
	for _, tg := range targets {
		b.Run("session/"+tg.name, func(b *testing.B) {
			var d []time.Duration
			for b.Loop() {
				start := time.Now()
				if out, err := env.run(ctx, tg.host, "true"); err != nil {
					b.Fatalf("ssh: %v\n%s", err, out)
				}
				d = append(d, time.Since(start))
			}
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(d[(len(d)*99)/100].Microseconds())/1000, "p99-ms")
		})
	}
}
