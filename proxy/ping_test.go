package proxy_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/proxy"
)

// TestPing decodes /webapi/ping in both listener modes and checks every
// advertised address against the listeners.
func TestPing(t *testing.T) {
	c := startCluster(t)
	hc := webClient(t, c)
	cases := []struct {
		name   string
		mode   proxy.Mode
		public []string
	}{
		{name: "multiplex", mode: proxy.Multiplex},
		{name: "multiplex-public", mode: proxy.Multiplex, public: []string{"proxy.example.test:443", "other.example.test"}},
		{name: "separate", mode: proxy.Separate},
		{name: "separate-public", mode: proxy.Separate, public: []string{"proxy.example.test"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, c, proxy.Config{Mode: tc.mode, PublicAddrs: tc.public})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ping, err := proxy.Ping(ctx, hc, p.webAddr)
			if err != nil {
				t.Fatal(err)
			}
			if ping.ClusterName != "example.test" || ping.ServerVersion == "" || ping.Auth.Type != "local" || ping.DialTimeout <= 0 {
				t.Errorf("ping = %+v", ping)
			}
			ssh := ping.Proxy.SSH
			if ssh.WebListenAddr != p.webAddr || ssh.ListenAddr != p.sshAddr || ssh.TunnelListenAddr != p.tunnelAddr {
				t.Errorf("listen addrs = %+v, want web %s ssh %s tunnel %s", ssh, p.webAddr, p.sshAddr, p.tunnelAddr)
			}
			if ping.Proxy.TLSRoutingEnabled != (tc.mode == proxy.Multiplex) {
				t.Errorf("tls_routing_enabled = %v in %v mode", ping.Proxy.TLSRoutingEnabled, tc.mode)
			}
			_, webPort, _ := net.SplitHostPort(p.webAddr)
			_, sshPort, _ := net.SplitHostPort(p.sshAddr)
			_, tunPort, _ := net.SplitHostPort(p.tunnelAddr)
			wantHost := "127.0.0.1"
			wantPublic := p.webAddr
			switch tc.name {
			case "multiplex-public":
				wantHost, wantPublic, webPort = "proxy.example.test", "proxy.example.test:443", "443"
				sshPort, tunPort = "443", "443"
			case "separate-public":
				wantHost, wantPublic = "proxy.example.test", net.JoinHostPort("proxy.example.test", webPort)
			}
			if ssh.PublicAddr != wantPublic {
				t.Errorf("public_addr = %q, want %q", ssh.PublicAddr, wantPublic)
			}
			if want := net.JoinHostPort(wantHost, sshPort); ssh.SSHPublicAddr != want {
				t.Errorf("ssh_public_addr = %q, want %q", ssh.SSHPublicAddr, want)
			}
			if want := net.JoinHostPort(wantHost, tunPort); ssh.TunnelPublicAddr != want {
				t.Errorf("ssh_tunnel_public_addr = %q, want %q", ssh.TunnelPublicAddr, want)
			}
			// The proxy announced itself with its public address.
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, err := c.admin.API().ListServers(ctx, &authv1.ListServersRequest{Kind: authapi.RoleProxy})
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, s := range resp.GetServers() {
					found = found || (s.GetName() == p.HostID() && len(s.GetAddrs()) > 0 && s.GetAddrs()[0] == wantPublic)
				}
				if found {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("proxy %s not announced with %s: %v", p.HostID(), wantPublic, resp.GetServers())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
