package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sallyport/sallyport/authapi"
	"github.com/sallyport/sallyport/backend/memory"
	"github.com/sallyport/sallyport/proxy"
)

// A proxy with TLS routing on one port, joined to an Auth Service with
// credentials issued for it; a client reads /webapi/ping.
func ExampleService() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, _ := memory.New(nil)
	defer b.Close()
	auth, err := authapi.New(ctx, &authapi.Config{Backend: b, ClusterName: "example.com", BcryptCost: bcrypt.MinCost})
	if err != nil {
		panic(err)
	}
	al, _ := net.Listen("tcp", "127.0.0.1:0")
	go auth.Serve(al)
	defer auth.Close()
	creds, _ := auth.IssueIdentity(ctx, authapi.RoleProxy, "proxy-1", time.Hour)

	svc, err := proxy.New(ctx, &proxy.Config{
		AuthAddrs:   []string{al.Addr().String()},
		Credentials: creds,
		Mode:        proxy.Multiplex,
		PublicAddrs: []string{"proxy.example.com:443"},
	})
	if err != nil {
		panic(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0") // 3080 or 443 in production
	go svc.Serve(proxy.Listeners{Web: l})
	defer svc.Close()

	// The web certificate is the proxy's host certificate: trust the
	// cluster's host CA.
	roots := x509.NewCertPool()
	roots.AddCert(creds.HostCAs[0])
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "proxy-1"}}}
	ping, err := proxy.Ping(ctx, hc, l.Addr().String())
	if err != nil {
		panic(err)
	}
	fmt.Println(ping.ClusterName, ping.Proxy.TLSRoutingEnabled, ping.Proxy.SSH.PublicAddr)
	// Output: example.com true proxy.example.com:443
}
