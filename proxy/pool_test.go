package proxy_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/proxy"
)

// TestProxyPool runs two proxies; the agent is given only the first, learns
// the second from the peer list (fed by the presence watch) and keeps a
// tunnel to both, so users reach the node through either proxy.
func TestProxyPool(t *testing.T) {
	for _, mode := range []proxy.Mode{proxy.Multiplex, proxy.Separate} {
		t.Run(mode.String(), func(t *testing.T) {
			c := startCluster(t)
			c.role(t, "dev", []string{"root"}, map[string][]string{"*": {"*"}})
			c.user(t, "alice", "correct horse", "dev")
			p1 := startProxy(t, c, proxy.Config{Mode: mode, HeartbeatInterval: time.Second})
			p2 := startProxy(t, c, proxy.Config{Mode: mode, HeartbeatInterval: time.Second})
			a := startAgent(t, c, p1, agent.Config{NodeName: "dev1"})
			waitNode(t, p1, "dev1", true)
			waitNode(t, p2, "dev1", true)
			if got := a.Proxies(); !slices.Contains(got, p1.HostID()) || !slices.Contains(got, p2.HostID()) {
				t.Fatalf("agent tunnels to %v, want both %s and %s", got, p1.HostID(), p2.HostID())
			}
			_, lr, msg := login(t, webClient(t, c), p2.webAddr, proxy.LoginRequest{User: "alice", Password: "correct horse"})
			if lr == nil {
				t.Fatal(msg)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, p := range []*runningProxy{p1, p2} {
				host, port, _ := net.SplitHostPort(p.sshAddr)
				env := writeSSHConfig(t, lr, host, port)
				out, err := env.run(ctx, "dev1", "echo via "+p.HostID())
				if err != nil || !strings.Contains(out, "via "+p.HostID()) {
					t.Fatalf("ssh through %s: %v\n%s", p.HostID(), err, out)
				}
			}
		})
	}
}
