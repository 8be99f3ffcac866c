package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/daemon"
	"github.com/sallyport/sallyport/internal/testpki"
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// testCA issues web certificates for the proxy.
type testCA struct {
	*testpki.CA
	file string // PEM of the CA certificate
}

func newCA(t testing.TB, dir string) *testCA {
	t.Helper()
	ca := &testCA{CA: testpki.NewCA(t, "test web CA"), file: filepath.Join(dir, "web-ca.pem")}
	if err := os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// writeKeyPair writes proxy.crt and proxy.key into dir for cn (and
// 127.0.0.1, localhost), signed by ca, or by a throwaway CA when ca is nil.
func writeKeyPair(t testing.TB, dir string, ca *testCA, cn string) daemon.KeyPairFiles {
	t.Helper()
	issuer := testpki.NewCA(t, "throwaway web CA")
	if ca != nil {
		issuer = ca.CA
	}
	certPEM, keyPEM := testpki.PEM(t, issuer.Issue(t, cn, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, cn, "localhost", "proxy.e2e.test", "127.0.0.1"))
	f := daemon.KeyPairFiles{CertFile: filepath.Join(dir, "proxy.crt"), KeyFile: filepath.Join(dir, "proxy.key")}
	// Written through renames, as a certificate manager would.
	for _, w := range []struct {
		path string
		data []byte
	}{{f.KeyFile, keyPEM}, {f.CertFile, certPEM}} {
		if err := os.WriteFile(w.path+".new", w.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(w.path+".new", w.path); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// proc is a binary started by a test, with its exit status.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // Wait's result, set when done is closed
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProc starts bin and kills it at cleanup; its output is logged when
// the test fails.
func startProc(t testing.TB, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.out.String())
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %s\n%s", p.name, d, p.out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

// runCmd runs a command to completion and returns its combined output.
func runCmd(t testing.TB, env []string, stdin string, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t testing.TB, env []string, stdin string, bin string, args ...string) string {
	t.Helper()
	out, err := runCmd(t, env, stdin, bin, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
	return out
}

// waitHTTP polls url until it answers want.
func waitHTTP(t testing.TB, url string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within %s (last: %s)", url, want, d, last)
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// webCN returns the CN of the certificate the proxy's web port serves.
func webCN(t testing.TB, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}
