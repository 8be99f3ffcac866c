package proxyconnect_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/sallyport/sallyport/proxyconnect"
)

// exampleProxy is a minimal HTTP CONNECT proxy standing in for a corporate
// proxy: it checks Basic credentials and connects every target name to
// backend.
type exampleProxy struct {
	ln      net.Listener
	backend string
	user    string
	pass    string
	wg      sync.WaitGroup
}

func startExampleProxy(user, pass, backend string) *exampleProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	p := &exampleProxy{ln: ln, backend: backend, user: user, pass: pass}
	p.wg.Add(1)
	go p.serve()
	return p
}

func (p *exampleProxy) Addr() string { return p.ln.Addr().String() }

func (p *exampleProxy) Close() { p.ln.Close(); p.wg.Wait() }

func (p *exampleProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil || req.Method != http.MethodConnect {
				return
			}
			req.Header.Set("Authorization", req.Header.Get("Proxy-Authorization"))
			if u, pw, ok := req.BasicAuth(); !ok || u != p.user || pw != p.pass {
				io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n\r\n")
				return
			}
			b, err := net.Dial("tcp", p.backend)
			if err != nil {
				io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
				return
			}
			defer b.Close()
			io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
			done := make(chan struct{})
			go func() { io.Copy(b, c); b.(*net.TCPConn).CloseWrite(); close(done) }()
			io.Copy(c, b)
			c.Close()
			<-done
		}()
	}
}

// startEcho starts a line echo server and returns its address and a
// function that stops it.
func startEcho() (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }
}

// Dial a service through an HTTP CONNECT proxy with Basic credentials, and
// log which proxy the connection went through.
func ExampleDialer() {
	echo, stopEcho := startEcho()
	defer stopEcho()
	proxy := startExampleProxy("agent", "p@ss", echo)
	defer proxy.Close()

	// In production, leave Config nil to use HTTPS_PROXY and NO_PROXY.
	d := &proxyconnect.Dialer{Config: &proxyconnect.Config{
		HTTPSProxy: "http://agent:p%40ss@" + proxy.Addr(),
	}}
	conn, err := d.DialContext(context.Background(), "tcp", "tunnel.example.com:443")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	if u, ok := proxyconnect.Via(conn); ok {
		fmt.Println("via", u.Scheme, "proxy as", u.User.Username())
	}
	fmt.Fprintln(conn, "ping")
	line, _ := bufio.NewReader(conn).ReadString('\n')
	fmt.Print(line)
	// Output:
	// via http proxy as agent
	// ping
}

// Tell a wrong password from other failures with errors.Is and errors.As.
func ExampleProxyError() {
	proxy := startExampleProxy("agent", "right", "127.0.0.1:1")
	defer proxy.Close()

	d := &proxyconnect.Dialer{Config: &proxyconnect.Config{
		HTTPSProxy: "http://agent:wrong@" + proxy.Addr(),
	}}
	_, err := d.DialContext(context.Background(), "tcp", "tunnel.example.com:443")
	var pe *proxyconnect.ProxyError
	if errors.Is(err, proxyconnect.ErrProxyAuth) && errors.As(err, &pe) {
		fmt.Println("status:", pe.StatusCode, "realm:", pe.Realm)
		fmt.Println("proxy:", pe.Proxy == "http://agent:xxxxx@"+proxy.Addr())
	}
	// Output:
	// status: 407 realm: corp
	// proxy: true
}

// See which targets a configuration sends through the proxy.
func ExampleDialer_ProxyFor() {
	d := &proxyconnect.Dialer{Config: &proxyconnect.Config{
		HTTPSProxy: "proxy.corp:3128", // no scheme: http://
		NoProxy:    ".internal,10.0.0.0/8,example.com:22",
	}}
	for _, target := range []string{
		"tunnel.example.com:443",
		"example.com:22",
		"db.internal:5432",
		"10.1.2.3:443",
		"localhost:8080",
	} {
		u, err := d.ProxyFor(target)
		switch {
		case err != nil:
			fmt.Println(target, err)
		case u == nil:
			fmt.Println(target, "direct")
		default:
			fmt.Println(target, "via", u)
		}
	}
	// Output:
	// tunnel.example.com:443 via http://proxy.corp:3128
	// example.com:22 direct
	// db.internal:5432 direct
	// 10.1.2.3:443 direct
	// localhost:8080 direct
}
