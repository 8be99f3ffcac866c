package testpki_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"testing"

	"github.com/sallyport/sallyport/internal/testpki"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLeafVerifies(t *testing.T) {
	ca := testpki.NewCA(t, "testpki CA")
	other := testpki.NewCA(t, "other CA")
	cert := ca.Leaf(t, "localhost", "127.0.0.1")
	tests := []struct {
		name    string
		pool    *x509.CertPool
		host    string
		usage   x509.ExtKeyUsage
		wantErr bool
	}{
		{"server by name", ca.Pool, "localhost", x509.ExtKeyUsageServerAuth, false},
		{"server by IP", ca.Pool, "127.0.0.1", x509.ExtKeyUsageServerAuth, false},
		{"client", ca.Pool, "", x509.ExtKeyUsageClientAuth, false},
		{"unnamed host", ca.Pool, "example.com", x509.ExtKeyUsageServerAuth, true},
		{"other CA", other.Pool, "localhost", x509.ExtKeyUsageServerAuth, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: tt.pool, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Verify = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestIssueClientOnly(t *testing.T) {
	ca := testpki.NewCA(t, "testpki CA")
	a := ca.Issue(t, "agent", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	b := ca.Issue(t, "agent", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Fatalf("two certificates share serial %v", a.Leaf.SerialNumber)
	}
	if len(a.Leaf.DNSNames)+len(a.Leaf.IPAddresses) != 0 {
		t.Fatalf("SANs = %v %v, want none", a.Leaf.DNSNames, a.Leaf.IPAddresses)
	}
	if _, err := a.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("client-only certificate verified for server auth")
	}
}

func TestWriteFilesLoads(t *testing.T) {
	ca := testpki.NewCA(t, "testpki CA")
	cert := ca.Leaf(t, "localhost")
	certFile, keyFile := testpki.WriteFiles(t, t.TempDir(), cert)
	got, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Certificate[0]) != string(cert.Certificate[0]) {
		t.Fatal("loaded certificate differs from the written one")
	}
}

// A server certificate and a client trusting the CA complete a handshake.
func Example() {
	t := &testing.T{} // in a test, use the test's own t
	ca := testpki.NewCA(t, "example CA")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "localhost", "127.0.0.1")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hello over TLS")
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := io.ReadAll(c)
	c.Close()
	<-done
	fmt.Println(string(b), c.ConnectionState().PeerCertificates[0].Subject.CommonName)
	// Output: hello over TLS localhost
}
