package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/backend/memory"
	"github.com/sallyport/sallyport/proxy"
)

// cluster is an Auth Service on a memory backend with an admin client.
type cluster struct {
	auth     *authapi.Server
	authAddr string
	admin    *authapi.Client
	start    time.Time
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SALLYPORT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	return startClusterNamed(t, "example.test")
}

// startClusterNamed is startCluster for a cluster called name, with CAs
// of its own.
func startClusterNamed(t testing.TB, name string) *cluster {
	t.Helper()
	ctx := testCtx(t)
	b, err := memory.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	srv, err := authapi.New(ctx, &authapi.Config{Backend: b, ClusterName: name, BcryptCost: bcrypt.MinCost, RateLimit: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	adminCreds, err := srv.IssueIdentity(ctx, "admin", "admin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := authapi.NewClient(&authapi.ClientConfig{Addrs: []string{l.Addr().String()}, Credentials: adminCreds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return &cluster{auth: srv, authAddr: l.Addr().String(), admin: admin, start: time.Now().Add(-time.Second)}
}

func (c *cluster) token(t testing.TB, role string) string {
	t.Helper()
	resp, err := c.admin.API().CreateJoinToken(testCtx(t), &authv1.CreateJoinTokenRequest{Roles: []string{role}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetToken()
}

func (c *cluster) role(t testing.TB, name string, logins []string, labels map[string][]string) {
	t.Helper()
	r := &authv1.Role{Name: name, Logins: logins, NodeLabels: map[string]*authv1.LabelValues{}}
	for k, v := range labels {
		r.NodeLabels[k] = &authv1.LabelValues{Values: v}
	}
	if _, err := c.admin.API().UpsertRole(testCtx(t), &authv1.UpsertRoleRequest{Role: r}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) user(t testing.TB, name, password string, roles ...string) {
	t.Helper()
	if _, err := c.admin.API().UpsertUser(testCtx(t), &authv1.UpsertUserRequest{Name: name, Password: password, Roles: roles}); err != nil {
		t.Fatal(err)
	}
}

// events returns the audit events of typ since the cluster started.
func (c *cluster) events(t testing.TB, typ string) []*authv1.AuditEvent {
	t.Helper()
	resp, err := c.admin.API().SearchAuditEvents(testCtx(t), &authv1.SearchAuditEventsRequest{
		From: timestamppb.New(c.start), To: timestamppb.New(time.Now().Add(time.Minute)), Types: []string{typ}, Limit: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetEvents()
}

// waitEvent waits until an event of typ satisfies match.
func (c *cluster) waitEvent(t testing.TB, typ string, match func(*authv1.AuditEvent) bool) *authv1.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range c.events(t, typ) {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			var all []string
			for _, e := range c.events(t, typ) {
				all = append(all, fmt.Sprintf("%s actor=%s source=%s %v", e.GetType(), e.GetActor(), e.GetSource(), e.GetFields()))
			}
			t.Fatalf("no matching %s audit event; have:\n%s", typ, strings.Join(all, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type runningProxy struct {
	*proxy.Service
	webAddr, sshAddr, tunnelAddr string
}

// startProxy joins and serves a proxy on loopback listeners.
func startProxy(t testing.TB, c *cluster, cfg proxy.Config) *runningProxy {
	t.Helper()
	ctx := testCtx(t)
	cfg.AuthAddrs = []string{c.authAddr}
	cfg.JoinToken = c.token(t, authapi.RoleProxy)
	cfg.CAPin = c.auth.CAPin()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := proxy.New(ctx, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ls proxy.Listeners
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ls.Web = listen()
	rp := &runningProxy{Service: s, webAddr: ls.Web.Addr().String()}
	rp.sshAddr, rp.tunnelAddr = rp.webAddr, rp.webAddr
	if cfg.Mode == proxy.Separate {
		ls.SSH, ls.Tunnel = listen(), listen()
		rp.sshAddr, rp.tunnelAddr = ls.SSH.Addr().String(), ls.Tunnel.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ls) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("proxy Close: %v", err)
		}
		if err := <-done; !errors.Is(err, proxy.ErrServerClosed) {
			t.Errorf("proxy Serve returned %v, want ErrServerClosed", err)
		}
	})
	return rp
}

// startAgent joins an agent through the proxy and serves it.
func startAgent(t testing.TB, c *cluster, p *runningProxy, cfg agent.Config) *agent.Agent {
	t.Helper()
	ctx := testCtx(t)
	if cfg.ProxyAddr == "" {
		cfg.ProxyAddr = p.webAddr
	}
	cfg.JoinToken = c.token(t, authapi.RoleAgent)
	cfg.CAPin = c.auth.CAPin()
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	a, err := agent.New(ctx, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() {
		if err := a.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("agent Close: %v", err)
		}
		if err := <-done; !errors.Is(err, agent.ErrServerClosed) {
			t.Errorf("agent Serve returned %v, want ErrServerClosed", err)
		}
	})
	return a
}

// waitNode waits until the proxy's cache knows the node (and, with
// tunnel, until the node's tunnel is up).
func waitNode(t testing.TB, p *runningProxy, name string, tunnel bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range p.Nodes() {
			if n.Name != name {
				continue
			}
			if !tunnel {
				return
			}
			for _, id := range p.Tunnels().Agents() {
				if id == n.HostID {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %q not ready at the proxy (nodes %v, tunnels %v)", name, p.Nodes(), p.Tunnels().Agents())
}

// webClient is an HTTPS client that trusts the cluster's host CA (the
// proxy's default web certificate).
func webClient(t testing.TB, c *cluster) *http.Client {
	t.Helper()
	resp, err := c.admin.API().GetCertAuthorities(testCtx(t), &authv1.GetCertAuthoritiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, ca := range resp.GetAuthorities() {
		if ca.GetType() != authapi.CAHost {
			continue
		}
		cert, err := x509.ParseCertificate(ca.GetTlsCert())
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(cert)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(st tls.ConnectionState) error {
			_, err := st.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool})
			return err
		},
	}}}
}

// login posts to /webapi/login and decodes the answer.
func login(t testing.TB, hc *http.Client, addr string, req proxy.LoginRequest) (int, *proxy.LoginResponse, string) {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := hc.Post("https://"+addr+proxy.LoginPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		var e proxy.ErrorResponse
		json.Unmarshal(data, &e)
		return resp.StatusCode, nil, e.Error
	}
	var lr proxy.LoginResponse
	if err := json.Unmarshal(data, &lr); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, &lr, ""
}
