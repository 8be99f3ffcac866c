package tunnel_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"

	"github.com/sallyport/sallyport/tunnel"
)

// Example runs a proxy and an agent in one process: the agent dials the
// proxy over loopback with mutual TLS, offers an "echo" service, and the
// proxy opens a stream to it on behalf of a client.
func Example() {
	proxyTLS, agentTLS := exampleMutualTLS("node-1")

	srv, err := tunnel.NewServer(&tunnel.ServerConfig{ID: "proxy-1", TLSConfig: proxyTLS})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	agent, err := tunnel.NewAgent(&tunnel.AgentConfig{
		ProxyAddrs: []string{ln.Addr().String()},
		TLSConfig:  agentTLS,
		Dialer:     &net.Dialer{},
	})
	if err != nil {
		panic(err)
	}
	agent.Register("echo", func(c net.Conn) {
		fmt.Println("agent: stream from", c.RemoteAddr())
		io.Copy(c, c)
	})
	if err := agent.Start(); err != nil {
		panic(err)
	}
	defer agent.Close()

	for len(srv.Agents()) == 0 { // wait for the tunnel
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("proxy: agents", srv.Agents())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 50000}
	conn, err := srv.DialFrom(ctx, "node-1", "echo", client)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	io.ReadFull(conn, buf)
	fmt.Printf("proxy: echoed %q\n", buf)

	_, err = srv.Dial(ctx, "node-2", "echo")
	fmt.Println(err)
	// Output:
	// proxy: agents [node-1]
	// agent: stream from 198.51.100.7:50000
	// proxy: echoed "ping"
	// tunnel: agent not connected to this proxy: "node-2"
}

// exampleMutualTLS makes a throwaway CA and returns the proxy's config
// (requiring client certificates) and the agent's (with agentID's
// certificate).
func exampleMutualTLS(agentID string) (proxy, agent *tls.Config) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	proxy = &tls.Config{
		Certificates: []tls.Certificate{issue(2, "proxy", x509.ExtKeyUsageServerAuth)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	agent = &tls.Config{
		Certificates: []tls.Certificate{issue(3, agentID, x509.ExtKeyUsageClientAuth)},
		RootCAs:      pool,
	}
	return proxy, agent
}
