package alpn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/sallyport/sallyport/alpn"
)

// selfSigned returns a certificate for localhost and a pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// A router with a terminating route for a custom protocol and a default
// route that hands the web to an http.Server.
func Example() {
	cert, pool := selfSigned()
	r, _ := alpn.New(nil)
	r.Handle(alpn.Route{
		ALPN:      []string{alpn.ProtocolProxySSH},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: alpn.HandlerFunc(func(ctx context.Context, c net.Conn, h *alpn.Hello) {
			defer c.Close()
			fmt.Fprintf(c, "route %s for %s", h.Route, h.ServerName)
		}),
	})
	web, _ := r.Listener(alpn.Route{Name: "web", ALPN: alpn.WebProtocols()})
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "web") }),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
	}
	go srv.ServeTLS(web, "", "")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go r.Serve(l)
	defer r.Close()
	defer srv.Close()

	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{
		RootCAs: pool, ServerName: "localhost", NextProtos: []string{alpn.ProtocolProxySSH}})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := io.ReadAll(c)
	fmt.Println(string(b), "/", c.ConnectionState().NegotiatedProtocol)
	c.Close()

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://localhost:" + fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(b))
	// Output:
	// route sallyport-proxy-ssh for localhost / sallyport-proxy-ssh
	// web
}

// The connection upgrade: the client tunnels its TLS handshake (and
// protocol) through the web route, as it does when a Layer-7 load balancer
// sits in front of the router.
func ExampleDialer() {
	cert, pool := selfSigned()
	r, _ := alpn.New(nil)
	r.Handle(alpn.Route{
		ALPN:      alpn.WithPing(alpn.ProtocolReverseTunnel),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: alpn.HandlerFunc(func(ctx context.Context, c net.Conn, h *alpn.Hello) {
			defer c.Close()
			fmt.Fprintf(c, "upgraded=%v", h.Upgraded)
		}),
	})
	web, _ := r.Listener(alpn.Route{ALPN: alpn.WebProtocols()})
	mux := http.NewServeMux()
	mux.Handle(alpn.UpgradePath, r.UpgradeHandler())
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(web, "", "")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go r.Serve(l)
	defer r.Close()
	defer srv.Close()

	d := &alpn.Dialer{
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{alpn.ProtocolReverseTunnel}},
		Upgrade:   alpn.UpgradeAlways,
	}
	c, err := d.DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	fmt.Println(c.ConnectionState().NegotiatedProtocol, string(b))
	// Output: sallyport-reversetunnel upgraded=true
}

func ExampleNewPingConn() {
	a, b := net.Pipe()
	client := alpn.NewPingConn(a, 10*time.Millisecond) // pings every 10ms
	server := alpn.NewPingConn(b, 0)
	defer client.Close()
	defer server.Close()

	go func() {
		time.Sleep(50 * time.Millisecond) // a few pings cross first
		client.Write([]byte("hello"))
	}()
	buf := make([]byte, 5)
	io.ReadFull(server, buf) // pings never reach the reader
	fmt.Println(string(buf))
	// Output: hello
}

func ExampleWithPing() {
	fmt.Println(alpn.WithPing(alpn.ProtocolReverseTunnel, alpn.ProtocolAuth))
	fmt.Println(alpn.IsPing("sallyport-peer-ping"), alpn.TrimPing("sallyport-peer-ping"))
	// Output:
	// [sallyport-reversetunnel-ping sallyport-reversetunnel sallyport-auth-ping sallyport-auth]
	// true sallyport-peer
}
