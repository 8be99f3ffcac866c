package tunnel

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/alpn"
	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/proxyconnect"
)

const (
	squidUser     = "agent"
	squidPassword = "tunnel-pass-9d1e"
)

// TestThroughSquid: the agent reaches the proxy through squid with Basic
// authentication, chosen by HTTPS_PROXY; squid's access log proves it.
func TestThroughSquid(t *testing.T) {
	squid := testservice.StartSquid(t, testservice.SquidConfig{
		Users: map[string]string{squidUser: squidPassword},
		Hosts: map[string]string{"proxy.tunnel.test": "127.0.0.1"},
	})
	ca := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{ID: "p1"})
	_, port, _ := net.SplitHostPort(p.Addr)
	target := "proxy.tunnel.test:" + port
	t.Setenv("HTTPS_PROXY", "http://"+squidUser+":"+squidPassword+"@"+squid.Addr)
	t.Setenv("NO_PROXY", "")

	// Default Dialer: a zero proxyconnect.Dialer reading the environment.
	a := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{target}})
	a.Register("echo", echo)
	waitAgent(t, p.Server, "node-1")
	roundTrip(t, dial(t, p.Server, "node-1", "echo"), "through squid")
	a.Close()
	line := squid.WaitAccessLog(t, 10*time.Second, "TCP_TUNNEL/200", "CONNECT "+target, squidUser)
	if strings.Contains(line, squidPassword) {
		t.Fatalf("password in squid log line %q", line)
	}
}

// TestNoProxy: a target matching NO_PROXY is dialed directly although
// HTTPS_PROXY names squid; squid sees nothing.
func TestNoProxy(t *testing.T) {
	squid := testservice.StartSquid(t, testservice.SquidConfig{
		Users: map[string]string{squidUser: squidPassword},
		Hosts: map[string]string{"proxy.tunnel.test": "127.0.0.1"},
	})
	ca := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{ID: "p1"})
	_, port, _ := net.SplitHostPort(p.Addr)
	t.Setenv("HTTPS_PROXY", "http://"+squidUser+":"+squidPassword+"@"+squid.Addr)
	t.Setenv("NO_PROXY", ".tunnel.test")

	// The environment still decides; Forward resolves the made-up name
	// (squid does that in the proxied case).
	d := &proxyconnect.Dialer{Forward: testResolver{}}
	a := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{"proxy.tunnel.test:" + port}, Dialer: d})
	a.Register("echo", echo)
	waitAgent(t, p.Server, "node-1")
	roundTrip(t, dial(t, p.Server, "node-1", "echo"), "direct")
	a.Close()
	time.Sleep(200 * time.Millisecond)
	// Squid logs the readiness probe of its start as a transaction
	// without request; a CONNECT would be the agent's.
	for _, l := range squid.AccessLogLines(t) {
		if strings.Contains(l, "CONNECT") || strings.Contains(l, "tunnel.test") {
			t.Fatalf("squid saw traffic for a NO_PROXY target: %s", l)
		}
	}
}

// testResolver dials names ending in ".test" at 127.0.0.1.
type testResolver struct{}

func (testResolver) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && strings.HasSuffix(host, ".test") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// TestPoolBehindHAProxy: two proxies behind a real HAProxy; the agent
// learns the pool from the peer list and dials the balancer until it holds
// a tunnel to each. Killing one leaves streams on the other running; when
// it comes back the agent reconnects to it.
func TestPoolBehindHAProxy(t *testing.T) {
	ca := newTestCA(t)
	addr1, addr2 := testservice.FreeAddr(t), testservice.FreeAddr(t)
	lb := testservice.HAProxyTCP(t, []string{addr1, addr2}, "")
	peers := []Peer{{ID: "p1", Addr: lb.Addr}, {ID: "p2", Addr: lb.Addr}}
	p1 := startProxy(t, ca, addr1, ServerConfig{ID: "p1", Peers: peers})
	p2 := startProxy(t, ca, addr2, ServerConfig{ID: "p2", Peers: peers})

	a := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{lb.Addr}})
	a.Register("echo", echo)
	waitFor(t, 15*time.Second, "a tunnel to each proxy", func() bool { return sameStrings(a.Proxies(), []string{"p1", "p2"}) })
	waitAgent(t, p1.Server, "node-1")
	waitAgent(t, p2.Server, "node-1")
	if s := a.Stats(); s.Tunnels != 2 {
		t.Fatalf("agent stats %+v", s)
	}

	c := dial(t, p2.Server, "node-1", "echo")
	roundTrip(t, c, "before")
	p1.stop(t) // the proxy dies: its tunnels drop at once
	waitFor(t, 10*time.Second, "p1's tunnel gone", func() bool { return sameStrings(a.Proxies(), []string{"p2"}) })
	roundTrip(t, c, "p2 unaffected")
	roundTrip(t, dial(t, p2.Server, "node-1", "echo"), "new stream on p2")

	p1b := startProxy(t, ca, addr1, ServerConfig{ID: "p1", Peers: peers})
	waitFor(t, 20*time.Second, "the agent back on p1", func() bool { return sameStrings(a.Proxies(), []string{"p1", "p2"}) })
	waitAgent(t, p1b.Server, "node-1")
	roundTrip(t, dial(t, p1b.Server, "node-1", "echo"), "p1 again")
	roundTrip(t, c, "p2 still")
	if s := a.Stats(); s.Reconnects < 1 {
		t.Errorf("agent stats %+v: want a reconnect", s)
	}
}

// TestALPNRoute: the proxy's tunnel handler on an alpn.Router
// terminating route (the single TLS port), and the agent dialing through
// alpn.Dialer, directly and through the WebSocket upgrade.
func TestALPNRoute(t *testing.T) {
	tests := []struct {
		name    string
		upgrade alpn.UpgradeMode
	}{
		{"direct", alpn.UpgradeNever},
		{"websocket upgrade", alpn.UpgradeAlways},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newTestCA(t)
			srv, err := NewServer(&ServerConfig{ID: "p1"})
			if err != nil {
				t.Fatal(err)
			}
			r, err := alpn.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			tlsc := ca.serverTLS(t)
			tlsc.NextProtos = nil
			if err := r.Handle(alpn.Route{
				ALPN:      alpn.WithPing(alpn.ProtocolReverseTunnel),
				TLSConfig: tlsc,
				Handler: alpn.HandlerFunc(func(ctx context.Context, c net.Conn, h *alpn.Hello) {
					srv.ServeConn(ctx, c.(*tls.Conn))
				}),
			}); err != nil {
				t.Fatal(err)
			}
			web, err := r.Listener(alpn.Route{Name: "web", ALPN: alpn.WebProtocols(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "web", true)}}})
			if err != nil {
				t.Fatal(err)
			}
			hs := newUpgradeServer(r)
			go hs.Serve(web)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go r.Serve(ln)
			t.Cleanup(func() {
				hs.Close()
				r.Close()
				srv.Close()
			})
			a := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{ln.Addr().String()}, TLSRouting: true, Upgrade: tt.upgrade})
			a.Register("echo", echo)
			waitAgent(t, srv, "node-1")
			roundTrip(t, dial(t, srv, "node-1", "echo"), "via "+tt.name)
		})
	}
}

func newUpgradeServer(r *alpn.Router) *http.Server {
	mux := http.NewServeMux()
	mux.Handle(alpn.UpgradePath, r.UpgradeHandler())
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}
