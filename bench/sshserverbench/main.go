// Command sshserverbench compares the sshserver package with OpenSSH's
// sshd in one run: both serve on loopback with the same host certificate
// and trust the same user CA, and the OpenSSH client measures scp of a
// large file in both directions and session setup time ("ssh host true").
//
// It is run by bench/sshserver.sh. It needs /usr/sbin/sshd, ssh and scp,
// and root (sshd's privilege separation) or an sshd that can run as the
// current user.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/sshserver"
)

func main() {
	sizeMiB := flag.Int("size", 256, "size of the scp file in MiB")
	runs := flag.Int("runs", 3, "scp runs per direction and server")
	setups := flag.Int("setups", 40, "session setups (ssh host true) per server")
	cipher := flag.String("cipher", "", "ssh -c cipher (empty: the client's default)")
	sshd := flag.String("sshd", "/usr/sbin/sshd", "OpenSSH server")
	serveDir := flag.String("serve", "", "internal: serve sshserver with the keys in this directory")
	port := flag.Int("port", 0, "internal: port for -serve")
	flag.Parse()
	if *serveDir != "" {
		if err := serve(*serveDir, *port); err != nil {
			fmt.Fprintln(os.Stderr, "sshserverbench -serve:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*sizeMiB, *runs, *setups, *cipher, *sshd); err != nil {
		fmt.Fprintln(os.Stderr, "sshserverbench:", err)
		os.Exit(1)
	}
}

type signer struct {
	ssh.Signer
	priv ed25519.PrivateKey
}

func newKey() signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := ssh.NewSignerFromKey(priv)
	return signer{s, priv}
}

func writeKey(path string, k signer) error {
	blk, err := ssh.MarshalPrivateKey(k.priv, "")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		return err
	}
	return os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(k.PublicKey()), 0o644)
}

func sign(ca signer, key ssh.PublicKey, typ uint32, id string, principals []string, exts map[string]string) (*ssh.Certificate, error) {
	c := &ssh.Certificate{Key: key, CertType: typ, KeyId: id, ValidPrincipals: principals,
		ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(2 * time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: exts}}
	return c, c.SignCert(rand.Reader, ca)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func run(sizeMiB, runs, setups int, cipher, sshdPath string) error {
	me, err := user.Current()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sshserverbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}

	hostCA, userCA, nodeKey, userKey := newKey(), newKey(), newKey(), newKey()
	hostCert, err := sign(hostCA, nodeKey.PublicKey(), ssh.HostCert, "node", []string{"127.0.0.1", "localhost"}, nil)
	if err != nil {
		return err
	}
	userCert, err := sign(userCA, userKey.PublicKey(), ssh.UserCert, "bench", []string{me.Username},
		map[string]string{"permit-pty": "", "permit-port-forwarding": ""})
	if err != nil {
		return err
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, f := range []struct {
		path string
		data []byte
	}{
		{p("host_key-cert.pub"), ssh.MarshalAuthorizedKey(hostCert)},
		{p("user-cert.pub"), ssh.MarshalAuthorizedKey(userCert)},
		{p("user_ca.pub"), ssh.MarshalAuthorizedKey(userCA.PublicKey())},
		{p("known_hosts"), []byte("@cert-authority * " + string(ssh.MarshalAuthorizedKey(hostCA.PublicKey())))},
	} {
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return err
		}
	}
	if err := writeKey(p("host_key"), nodeKey); err != nil {
		return err
	}
	if err := writeKey(p("user"), userKey); err != nil {
		return err
	}

	// Our server, in a process of its own so that its CPU time can be
	// measured like sshd's.
	oursPort, err := freePort()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ours := exec.Command(self, "-serve", dir, "-port", strconv.Itoa(oursPort))
	ours.Stderr = os.Stderr
	if err := ours.Start(); err != nil {
		return err
	}
	defer func() { ours.Process.Signal(syscall.SIGTERM); ours.Wait() }()
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", oursPort), 10*time.Second); err != nil {
		return fmt.Errorf("sshserver: %w", err)
	}

	// OpenSSH's sshd, privately on loopback.
	sshdPort, err := freePort()
	if err != nil {
		return err
	}
	sftpServer := "/usr/lib/openssh/sftp-server"
	cfg := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
HostCertificate %s
TrustedUserCAKeys %s
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
PidFile %s
Subsystem sftp %s
LogLevel ERROR
`, sshdPort, p("host_key"), p("host_key-cert.pub"), p("user_ca.pub"), p("sshd.pid"), sftpServer)
	if err := os.WriteFile(p("sshd_config"), []byte(cfg), 0o644); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		_ = os.MkdirAll("/run/sshd", 0o755)
	}
	sshd := exec.Command(sshdPath, "-D", "-e", "-f", p("sshd_config"), "-p", strconv.Itoa(sshdPort))
	var sshdLog bytes.Buffer
	sshd.Stderr = &sshdLog
	if err := sshd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	defer func() { sshd.Process.Kill(); sshd.Wait() }()
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", sshdPort), 10*time.Second); err != nil {
		return fmt.Errorf("sshd: %w: %s", err, sshdLog.String())
	}
	pids := map[string]int{"ours": ours.Process.Pid, "sshd": sshd.Process.Pid}

	var b strings.Builder
	for _, h := range []struct {
		name string
		port int
	}{{"ours", oursPort}, {"sshd", sshdPort}} {
		fmt.Fprintf(&b, "Host %s\n  HostName 127.0.0.1\n  Port %d\n  User %s\n  IdentityFile %s\n  CertificateFile %s\n  IdentitiesOnly yes\n",
			h.name, h.port, me.Username, p("user"), p("user-cert.pub"))
		fmt.Fprintf(&b, "  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n  ControlMaster no\n  ControlPath none\n  IdentityAgent none\n", p("known_hosts"))
		if cipher != "" {
			fmt.Fprintf(&b, "  Ciphers %s\n", cipher)
		}
	}
	if err := os.WriteFile(p("ssh_config"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	sshCfg := p("ssh_config")

	// Check both servers answer, and which cipher they agree on.
	for _, h := range []string{"ours", "sshd"} {
		out, err := exec.Command("ssh", "-F", sshCfg, "-v", h, "true").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ssh %s true: %v: %s", h, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "kex: server->client cipher") {
				fmt.Printf("%s: %s\n", h, strings.TrimSpace(strings.TrimPrefix(line, "debug1: ")))
			}
		}
	}

	src := p("src.bin")
	sum, err := writeRandom(src, sizeMiB)
	if err != nil {
		return err
	}
	mb := float64(sizeMiB) * (1 << 20) / 1e6
	res := map[string][]float64{}
	cpu := map[string]float64{}
	for i := 0; i < runs; i++ {
		for _, h := range []string{"ours", "sshd"} {
			cpu0, err := cpuSeconds(pids[h])
			if err != nil {
				return err
			}
			up := p("up-" + h + ".bin")
			down := p("down-" + h + ".bin")
			d, err := timed("scp", "-F", sshCfg, "-q", src, h+":"+up)
			if err != nil {
				return err
			}
			res[h+" scp upload MB/s"] = append(res[h+" scp upload MB/s"], mb/d.Seconds())
			d, err = timed("scp", "-F", sshCfg, "-q", h+":"+up, down)
			if err != nil {
				return err
			}
			res[h+" scp download MB/s"] = append(res[h+" scp download MB/s"], mb/d.Seconds())
			cpu1, err := cpuSeconds(pids[h])
			if err != nil {
				return err
			}
			cpu[h] += cpu1 - cpu0
			if i == 0 {
				for _, f := range []string{up, down} {
					if got, err := sha256File(f); err != nil || got != sum {
						return fmt.Errorf("%s: checksum %s (%v), want %s", f, got, err, sum)
					}
				}
			}
			os.Remove(up)
			os.Remove(down)
		}
	}
	for i := 0; i < setups; i++ {
		for _, h := range []string{"ours", "sshd"} {
			d, err := timed("ssh", "-F", sshCfg, "-n", h, "true")
			if err != nil {
				return err
			}
			res[h+" setup ms"] = append(res[h+" setup ms"], float64(d.Microseconds())/1000)
		}
	}

	fmt.Printf("\nscp of %d MiB (%d runs each way, checksums verified), session setup 'ssh host true' (%d runs)\n", sizeMiB, runs, setups)
	fmt.Printf("%-28s %10s %10s %8s\n", "measure", "ours", "sshd", "ours/sshd")
	for _, m := range []string{"scp upload MB/s", "scp download MB/s"} {
		o, s := median(res["ours "+m]), median(res["sshd "+m])
		fmt.Printf("%-28s %10.1f %10.1f %8.2f\n", m+" (median)", o, s, o/s)
	}
	gb := 2 * float64(runs) * mb / 1000
	o, sd := cpu["ours"]/gb, cpu["sshd"]/gb
	fmt.Printf("%-28s %10.2f %10.2f %8.2f\n", "server CPU-s/GB (scp)", o, sd, o/sd)
	for _, q := range []struct {
		name string
		p    float64
	}{{"setup ms p50", 0.5}, {"setup ms p99", 0.99}} {
		o, s := pct(res["ours setup ms"], q.p), pct(res["sshd setup ms"], q.p)
		fmt.Printf("%-28s %10.2f %10.2f %8.2f\n", q.name, o, s, o/s)
	}
	return nil
}

// cpuSeconds is the CPU time of a process and its waited-for descendants
// (sshd's per-connection children and sftp-server; our sftp-server).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	return ticks / 100, nil // USER_HZ
}

// serve runs sshserver with the keys that run wrote to dir until SIGTERM.
func serve(dir string, port int) error {
	read := func(name string) []byte {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return b
	}
	hostKey, err := ssh.ParsePrivateKey(read("host_key"))
	if err != nil {
		return err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(read("host_key-cert.pub"))
	if err != nil {
		return err
	}
	hostCert, ok := pub.(*ssh.Certificate)
	if !ok {
		return fmt.Errorf("host_key-cert.pub is not a certificate")
	}
	userCA, _, _, _, err := ssh.ParseAuthorizedKey(read("user_ca.pub"))
	if err != nil {
		return err
	}
	srv, err := sshserver.New(&sshserver.Config{
		HostKey: hostKey, HostCert: hostCert, UserCAs: []ssh.PublicKey{userCA},
		NodeName: "bench", Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); !errors.Is(err, sshserver.ErrServerClosed) {
		return err
	}
	return nil
}

func timed(name string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s %v: %v: %s", name, args, err, out)
	}
	return time.Since(start), nil
}

func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeRandom(path string, mib int) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	r := mrand.NewChaCha8([32]byte{1, 2, 3})
	buf := make([]byte, 1<<20)
	for range mib {
		r.Read(buf)
		if _, err := f.Write(buf); err != nil {
			return "", err
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func median(v []float64) float64 { return pct(v, 0.5) }

// pct is the nearest-rank percentile (the median of an even count is the
// mean of the middle two).
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if p == 0.5 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
