package proxy_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/authapi"
	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/proxy"
)

func TestConfigErrors(t *testing.T) {
	c := startCluster(t)
	ctx := testCtx(t)
	agentCreds, err := c.auth.IssueIdentity(ctx, authapi.RoleAgent, "a1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{c.authAddr}
	cases := []struct {
		name string
		cfg  *proxy.Config
		want error
	}{
		{"nil", nil, proxy.ErrInvalidConfig},
		{"no-auth-addrs", &proxy.Config{JoinToken: "t", CAPin: "p"}, proxy.ErrInvalidConfig},
		{"no-identity", &proxy.Config{AuthAddrs: addrs}, proxy.ErrInvalidConfig},
		{"not-a-proxy-identity", &proxy.Config{AuthAddrs: addrs, Credentials: agentCreds}, proxy.ErrInvalidConfig},
		{"unknown-mode", &proxy.Config{AuthAddrs: addrs, JoinToken: "t", CAPin: "p", Mode: 7}, proxy.ErrInvalidConfig},
		{"negative-timeout", &proxy.Config{AuthAddrs: addrs, JoinToken: "t", CAPin: "p", DialTimeout: -1}, proxy.ErrInvalidConfig},
		{"empty-cipher-list", &proxy.Config{AuthAddrs: addrs, JoinToken: "t", CAPin: "p", SSHCiphers: []string{}}, proxy.ErrInvalidConfig},
		{"unknown-cipher", &proxy.Config{AuthAddrs: addrs, JoinToken: "t", CAPin: "p", SSHCiphers: []string{"aes128-gcm@openssh.com", "rot13"}}, proxy.ErrInvalidConfig},
		{"wrong-pin", &proxy.Config{AuthAddrs: addrs, JoinToken: c.token(t, authapi.RoleProxy), CAPin: "sha256:" + strings.Repeat("11", 32)}, authapi.ErrPinMismatch},
		{"agent-token", &proxy.Config{AuthAddrs: addrs, JoinToken: c.token(t, authapi.RoleAgent), CAPin: c.auth.CAPin()}, proxy.ErrInvalidConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := proxy.New(ctx, tc.cfg)
			if !errors.Is(err, tc.want) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("New = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestLifecycle checks Serve, Close and Shutdown: a second Close wraps
// net.ErrClosed, Serve after Close answers ErrServerClosed, and Shutdown
// waits for a running SSH session until its context ends.
func TestLifecycle(t *testing.T) {
	c := startCluster(t)
	ctx := testCtx(t)
	creds, err := c.auth.IssueIdentity(ctx, authapi.RoleProxy, "proxy", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("close-twice-and-serve-after-close", func(t *testing.T) {
		s, err := proxy.New(ctx, &proxy.Config{AuthAddrs: []string{c.authAddr}, Credentials: creds})
		if err != nil {
			t.Fatal(err)
		}
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		done := make(chan error, 1)
		go func() { done <- s.Serve(proxy.Listeners{Web: l}) }()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, proxy.ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
		if err := s.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close = %v, want net.ErrClosed", err)
		}
		if err := s.Shutdown(ctx); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Shutdown after Close = %v, want net.ErrClosed", err)
		}
		l2, _ := net.Listen("tcp", "127.0.0.1:0")
		if err := s.Serve(proxy.Listeners{Web: l2}); !errors.Is(err, proxy.ErrServerClosed) {
			t.Fatalf("Serve after Close = %v", err)
		}
		if _, err := net.DialTimeout("tcp", l2.Addr().String(), time.Second); err == nil {
			t.Fatal("Serve after Close left its listener open")
		}
	})
	t.Run("listen-and-serve", func(t *testing.T) {
		web, sshA, tun := testservice.FreeAddr(t), testservice.FreeAddr(t), testservice.FreeAddr(t)
		s, err := proxy.New(ctx, &proxy.Config{AuthAddrs: []string{c.authAddr}, Credentials: creds, Mode: proxy.Separate,
			WebListenAddr: web, SSHListenAddr: sshA, TunnelListenAddr: tun})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.ListenAndServe() }()
		if err := testservice.WaitTCP(web, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		ping, err := proxy.Ping(ctx, webClient(t, c), web)
		if err != nil {
			t.Fatal(err)
		}
		if got := ping.Proxy.SSH; got.WebListenAddr != web || got.ListenAddr != sshA || got.TunnelListenAddr != tun {
			t.Fatalf("ping = %+v, want %s %s %s", got, web, sshA, tun)
		}
		s.Close()
		if err := <-done; !errors.Is(err, proxy.ErrServerClosed) {
			t.Fatalf("ListenAndServe = %v", err)
		}
	})
	t.Run("separate-needs-three-listeners", func(t *testing.T) {
		s, err := proxy.New(ctx, &proxy.Config{AuthAddrs: []string{c.authAddr}, Credentials: creds, Mode: proxy.Separate})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		if err := s.Serve(proxy.Listeners{Web: l}); !errors.Is(err, proxy.ErrInvalidConfig) {
			t.Fatalf("Serve = %v, want ErrInvalidConfig", err)
		}
	})
	t.Run("shutdown-waits-for-sessions", func(t *testing.T) {
		c.role(t, "dev", []string{"root"}, map[string][]string{"*": {"*"}})
		c.user(t, "carol", "correct horse", "dev")
		s, err := proxy.New(ctx, &proxy.Config{AuthAddrs: []string{c.authAddr}, Credentials: creds, RoleRefresh: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		done := make(chan error, 1)
		go func() { done <- s.Serve(proxy.Listeners{Web: l}) }()
		p := &runningProxy{Service: s, webAddr: l.Addr().String(), sshAddr: l.Addr().String(), tunnelAddr: l.Addr().String()}
		startAgent(t, c, p, agent.Config{NodeName: "n1"})
		waitNode(t, p, "n1", true)
		_, lr, msg := login(t, webClient(t, c), p.webAddr, proxy.LoginRequest{User: "carol", Password: "correct horse"})
		if lr == nil {
			t.Fatal(msg)
		}
		host, port, _ := net.SplitHostPort(p.sshAddr)
		env := writeSSHConfig(t, lr, host, port)
		sess := make(chan string, 1)
		go func() {
			out, _ := env.run(ctx, "n1", "sleep 1; echo finished")
			sess <- out
		}()
		time.Sleep(500 * time.Millisecond) // the session is running
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Shutdown(sctx); err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
		if out := <-sess; !strings.Contains(out, "finished") {
			t.Fatalf("session cut by Shutdown: %q (after %v)", out, time.Since(start))
		}
		if err := <-done; !errors.Is(err, proxy.ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
	})
}
