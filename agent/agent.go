package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/alpn"
	"github.com/sallyport/sallyport/audit"
	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/internal/auditsend"
	"github.com/sallyport/sallyport/proxy"
	"github.com/sallyport/sallyport/proxyconnect"
	"github.com/sallyport/sallyport/sshserver"
	"github.com/sallyport/sallyport/tunnel"
)

// ServiceSSH is the name of the SSH service on the reverse tunnel.
const ServiceSSH = "ssh"

// DefaultHeartbeatInterval is how often the agent announces itself when
// Config.HeartbeatInterval is zero.
const DefaultHeartbeatInterval = 20 * time.Second

// Errors of the package.
var (
	// ErrInvalidConfig is wrapped by the errors of New about its Config.
	ErrInvalidConfig = errors.New("agent: invalid config")
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("agent: server closed")
)

// ContextDialer dials network connections (*net.Dialer,
// *proxyconnect.Dialer).
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Config configures an agent. ProxyAddr or AuthAddrs, and Credentials or
// JoinToken and CAPin, are required; every other zero field has the
// documented default.
type Config struct {
	// ProxyAddr is the proxy's web address ("host:port", the load
	// balancer's in a pool). The agent joins and calls auth through the
	// proxy's sallyport-auth route, reads /webapi/ping there to learn
	// where tunnels go, and dials its tunnel there.
	ProxyAddr string
	// AuthAddrs, when set, are Auth Service addresses the agent joins and
	// heartbeats to directly instead of through ProxyAddr.
	AuthAddrs []string
	// Credentials is the agent's host identity (with the agent role). Nil
	// means New joins with JoinToken and CAPin.
	Credentials *authapi.Credentials
	// JoinToken and CAPin join the cluster (see authapi.Join).
	JoinToken, CAPin string
	// HostID is the host ID asked for when joining; zero lets auth pick.
	HostID string
	// NodeName names the node; clients connect to it by this name. Zero
	// means os.Hostname.
	NodeName string
	// Labels are the node's labels, which roles select nodes by.
	Labels map[string]string

	// DirectListener, when set, makes the agent serve SSH on it (direct
	// mode, port 3022) instead of through a reverse tunnel; DirectAddr
	// is the address to listen on when DirectListener is nil. Both zero
	// means tunnel mode (ProxyAddr required).
	DirectListener net.Listener
	DirectAddr     string
	// PublicAddrs are the addresses proxies dial in direct mode ("host:port");
	// zero means the direct listener's address.
	PublicAddrs []string

	// SSH is the SSH service's configuration. HostKey, HostCert, UserCAs,
	// ClusterName, NodeName and Labels are filled in from the agent's
	// identity and the fields above; hooks (Authorize, Audit, Recorder)
	// and the other settings are used as given.
	SSH sshserver.Config

	// Dialer dials the proxy (joining, auth calls, ping and tunnels). Nil
	// means a zero proxyconnect.Dialer, which goes through HTTPS_PROXY /
	// HTTP_PROXY as NO_PROXY allows.
	Dialer ContextDialer
	// ProxyRoots verifies the proxy's web certificate for /webapi/ping.
	// Nil means the system roots; a certificate signed by the cluster's
	// host CA is accepted too.
	ProxyRoots *x509.CertPool
	// SkipRoleCheck turns off the agent's own check of the user's roles:
	// by default every SSH action needs a role in the user certificate's
	// authapi.ExtRules extension that grants the login on a node with
	// this agent's Labels (authapi.CheckSSHLogin), before SSH.Authorize
	// (when set) is asked. The check is what protects a direct-mode agent
	// reached without a proxy; skip it only when SSH.Authorize does the
	// same.
	SkipRoleCheck bool
	// HeartbeatInterval is how often the agent announces itself; zero
	// means DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// Logger receives the agent's logs; nil discards.
	Logger *slog.Logger
}

// Agent is a node: it joins the cluster, serves SSH with its host
// certificate through a reverse tunnel to the proxies (or on a direct
// port), and announces itself and its labels.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	creds  *authapi.Credentials
	auth   *authapi.Client
	ssh    *sshserver.Server
	dialer ContextDialer

	mu      sync.Mutex
	serving bool
	closed  bool
	done    chan struct{}
	// stopEmit is closed by Close: pending audit emits give up.
	stopEmit chan struct{}
	cancel   context.CancelFunc
	tun      *tunnel.Agent
	direct   net.Listener
	wg       sync.WaitGroup
}

// New validates cfg, joins the cluster when cfg has no Credentials (ctx
// bounds the join) and prepares the SSH service. Serve starts it.
func New(ctx context.Context, cfg *Config) (*Agent, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.ProxyAddr == "" && len(c.AuthAddrs) == 0 {
		return nil, fmt.Errorf("%w: ProxyAddr or AuthAddrs is required", ErrInvalidConfig)
	}
	direct := c.DirectListener != nil || c.DirectAddr != ""
	if !direct && c.ProxyAddr == "" {
		return nil, fmt.Errorf("%w: tunnel mode needs ProxyAddr", ErrInvalidConfig)
	}
	if c.Credentials == nil && (c.JoinToken == "" || c.CAPin == "") {
		return nil, fmt.Errorf("%w: Credentials or JoinToken and CAPin are required", ErrInvalidConfig)
	}
	if c.HeartbeatInterval < 0 {
		return nil, fmt.Errorf("%w: negative HeartbeatInterval", ErrInvalidConfig)
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("%w: NodeName: %v", ErrInvalidConfig, err)
		}
		c.NodeName = h
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: c, log: c.Logger, dialer: c.Dialer, done: make(chan struct{}), stopEmit: make(chan struct{})}
	if a.dialer == nil {
		a.dialer = &proxyconnect.Dialer{}
	}
	addrs, alpnProtos := c.AuthAddrs, []string(nil)
	if len(addrs) == 0 {
		addrs, alpnProtos = []string{c.ProxyAddr}, []string{authapi.ALPN}
	}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return a.dialer.DialContext(ctx, "tcp", addr)
	}
	// Through the proxy, auth is reached by the sallyport-auth ALPN route,
	// or, when a Layer-7 load balancer terminates TLS in front of the
	// proxy, through its WebSocket connection upgrade.
	dialTLS := func(hostCAs []*x509.Certificate) authapi.DialTLSFunc {
		if len(c.AuthAddrs) > 0 {
			return nil
		}
		return func(ctx context.Context, addr string, conf *tls.Config) (net.Conn, error) {
			d := &alpn.Dialer{NetDialer: a.dialer, UpgradeTLSConfig: a.proxyTLSConfig(hostCAs)}
			if host, _, err := net.SplitHostPort(addr); err == nil {
				d.UpgradeTLSConfig.ServerName = host
			}
			return authapi.ALPNDialTLS(d)(ctx, addr, conf)
		}
	}
	a.creds = c.Credentials
	if a.creds == nil {
		var public []string
		for _, p := range c.PublicAddrs {
			if h, _, err := net.SplitHostPort(p); err == nil {
				public = append(public, h)
			}
		}
		creds, err := authapi.Join(ctx, authapi.JoinConfig{
			Addrs: addrs, Token: c.JoinToken, CAPin: c.CAPin, HostID: c.HostID,
			NodeName: c.NodeName, PublicAddrs: public, DialContext: dial, ALPN: alpnProtos, DialTLS: dialTLS(nil),
		})
		if err != nil {
			return nil, fmt.Errorf("agent: join: %w", err)
		}
		a.creds = creds
	}
	if a.creds.Identity == nil || !a.creds.Identity.HasRole(authapi.RoleAgent) {
		return nil, fmt.Errorf("%w: the identity does not hold the agent role", ErrInvalidConfig)
	}
	if a.creds.SSHCert == nil || len(a.creds.SSHUserCAs) == 0 {
		return nil, fmt.Errorf("%w: the identity has no SSH host certificate", ErrInvalidConfig)
	}
	hostKey, err := ssh.NewSignerFromKey(a.creds.SSHKey)
	if err != nil {
		return nil, fmt.Errorf("agent: host key: %w", err)
	}
	sc := c.SSH
	sc.HostKey = hostKey
	sc.HostCert = a.creds.SSHCert
	sc.UserCAs = a.creds.SSHUserCAs
	sc.ClusterName = a.creds.Cluster
	sc.NodeName = c.NodeName
	sc.Labels = c.Labels
	if sc.Logger == nil {
		sc.Logger = c.Logger
	}
	if !c.SkipRoleCheck {
		userAuthorize := c.SSH.Authorize
		sc.Authorize = func(ctx context.Context, req sshserver.AccessRequest) error {
			if err := authapi.CheckSSHLogin(req.Extensions, req.Login, req.Labels); err != nil {
				return err
			}
			if userAuthorize != nil {
				return userAuthorize(ctx, req)
			}
			return nil
		}
	}
	userAudit := c.SSH.Audit
	sc.Audit = func(ctx context.Context, ev sshserver.Event) {
		if userAudit != nil {
			userAudit(ctx, ev)
		}
		a.emit(ev)
	}
	a.auth, err = authapi.NewClient(&authapi.ClientConfig{Addrs: addrs, Credentials: a.creds, DialContext: dial, ALPN: alpnProtos, DialTLS: dialTLS(a.creds.HostCAs), Logger: c.Logger})
	if err != nil {
		return nil, err
	}
	a.ssh, err = sshserver.New(&sc)
	if err != nil {
		a.auth.Close()
		return nil, err
	}
	return a, nil
}

// Credentials returns the agent's host identity.
func (a *Agent) Credentials() *authapi.Credentials { return a.creds }

// HostID returns the agent's host ID.
func (a *Agent) HostID() string { return a.creds.Identity.Name }

// Proxies returns the IDs of the proxies the agent has a tunnel to (none in
// direct mode).
func (a *Agent) Proxies() []string {
	a.mu.Lock()
	t := a.tun
	a.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.Proxies()
}

// Serve starts the SSH service (on a reverse tunnel to the proxy, or on the
// direct listener) and the heartbeat, and blocks until Shutdown or Close;
// then it returns ErrServerClosed. In tunnel mode it first reads the
// proxy's /webapi/ping (bounded by ctx) to learn the tunnel address.
func (a *Agent) Serve(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrServerClosed
	}
	if a.serving {
		a.mu.Unlock()
		return fmt.Errorf("%w: Serve called twice", ErrInvalidConfig)
	}
	a.serving = true
	a.mu.Unlock()

	bg, cancel := context.WithCancel(context.Background())
	srv := &authv1.Server{
		Kind: authapi.RoleAgent, Name: a.HostID(), Hostname: a.cfg.NodeName, Labels: a.cfg.Labels,
		Services: []*authv1.Service{{Type: ServiceSSH, Name: ServiceSSH}},
	}
	var tun *tunnel.Agent
	var direct net.Listener
	if a.cfg.DirectListener != nil || a.cfg.DirectAddr != "" {
		direct = a.cfg.DirectListener
		if direct == nil {
			l, err := net.Listen("tcp", a.cfg.DirectAddr)
			if err != nil {
				cancel()
				return fmt.Errorf("agent: %w", err)
			}
			direct = l
		}
		srv.Addrs = a.cfg.PublicAddrs
		if len(srv.Addrs) == 0 {
			srv.Addrs = []string{direct.Addr().String()}
		}
	} else {
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		ping, err := proxy.Ping(pctx, a.httpClient(), a.cfg.ProxyAddr)
		pcancel()
		if err != nil {
			cancel()
			return fmt.Errorf("agent: %w", err)
		}
		addr := a.tunnelAddr(ping)
		a.log.Info("agent: tunnel address", "addr", addr, "tls_routing", ping.Proxy.TLSRoutingEnabled)
		tun, err = tunnel.NewAgent(&tunnel.AgentConfig{
			ProxyAddrs: []string{addr},
			TLSConfig:  a.creds.ClientTLSConfig(),
			Dialer:     a.dialer,
			TLSRouting: ping.Proxy.TLSRoutingEnabled,
			Version:    authapi.Version,
			Logger:     a.log,
		})
		if err != nil {
			cancel()
			return err
		}
		if err := tun.Register(ServiceSSH, func(c net.Conn) { a.ssh.ServeConn(bg, c) }); err != nil {
			cancel()
			return err
		}
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		cancel()
		if direct != nil {
			direct.Close()
		}
		return ErrServerClosed
	}
	a.cancel, a.tun, a.direct = cancel, tun, direct
	a.mu.Unlock()

	if tun != nil {
		if err := tun.Start(); err != nil {
			a.mu.Lock()
			closed := a.closed
			a.mu.Unlock()
			if closed {
				<-a.done
				return ErrServerClosed
			}
			return err
		}
	}
	if direct != nil {
		a.goFn(func() { a.ssh.Serve(direct) })
	}
	a.goFn(func() {
		if err := a.auth.Announce(bg, srv, a.cfg.HeartbeatInterval); err != nil && bg.Err() == nil {
			a.log.Error("agent: heartbeat refused", "err", err)
		}
	})
	<-a.done
	return ErrServerClosed
}

// tunnelAddr is where the tunnel goes: the proxy address itself with TLS
// routing, else the advertised tunnel address (or the proxy's host with the
// tunnel port).
func (a *Agent) tunnelAddr(p *proxy.PingResponse) string {
	if p.Proxy.TLSRoutingEnabled {
		return a.cfg.ProxyAddr
	}
	host, _, _ := net.SplitHostPort(a.cfg.ProxyAddr)
	port := fmt.Sprint(tunnel.DefaultPort)
	for _, s := range []string{p.Proxy.SSH.TunnelListenAddr, p.Proxy.SSH.TunnelPublicAddr} {
		if h, pt, err := net.SplitHostPort(s); err == nil {
			port = pt
			if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) && s == p.Proxy.SSH.TunnelPublicAddr {
				host = h
			}
		}
	}
	return net.JoinHostPort(host, port)
}

func (a *Agent) httpClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:     a.dialer.DialContext,
			TLSClientConfig: a.proxyTLSConfig(a.creds.HostCAs),
			Proxy:           nil, // the dialer already goes through HTTPS_PROXY
		},
	}
}

// proxyTLSConfig verifies the proxy's (or its load balancer's) web
// certificate: by ProxyRoots (nil: the system roots) and name, or by the
// cluster's host CAs.
func (a *Agent) proxyTLSConfig(hostCAs []*x509.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	for _, ca := range hostCAs {
		pool.AddCert(ca)
	}
	roots := a.cfg.ProxyRoots
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection
		VerifyConnection: func(st tls.ConnectionState) error {
			if len(st.PeerCertificates) == 0 {
				return errors.New("agent: proxy sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range st.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := st.PeerCertificates[0]
			// A public certificate for the proxy's name, or one of the
			// cluster's host CA (checked by identity, not by name).
			_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: st.ServerName})
			if err == nil || len(hostCAs) == 0 {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
			return err
		},
	}
}

// goFn runs fn in a goroutine that Close waits for, unless the agent is
// closed already.
func (a *Agent) goFn(fn func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		fn()
	}()
}

// emit forwards an SSH audit event to auth in the background.
func (a *Agent) emit(ev sshserver.Event) {
	typ := audit.TypeSession
	if ev.Type == sshserver.EventAuthFailure || ev.Type == sshserver.EventAccessDenied {
		typ = audit.TypeAccessDenied
	}
	e := audit.Event{
		Type: typ, Time: ev.Time, Cluster: a.creds.Cluster, Actor: ev.User, Source: ev.RemoteAddr,
		Success: typ != audit.TypeAccessDenied,
		Fields: map[string]string{
			"event": string(ev.Type), "login": ev.Login, "node": ev.Node, "host_id": a.HostID(),
			"session_id": ev.SessionID, "action": string(ev.Action),
		},
	}
	for k, v := range map[string]string{"command": ev.Command, "target": ev.Target, "reason": ev.Reason} {
		if v != "" {
			e.Fields[k] = v
		}
	}
	if ev.Type == sshserver.EventSessionEnd {
		e.Fields["exit_code"] = fmt.Sprint(ev.ExitCode)
	}
	a.goFn(func() {
		if err := auditsend.Send(context.Background(), a.stopEmit, a.auth.API(), e); err != nil {
			a.log.Warn("agent: audit event lost", "type", ev.Type, "err", err)
		}
	})
}

// Shutdown stops taking new SSH connections, drains the tunnel and waits
// for running sessions until ctx is done; then it closes the rest as Close
// does.
func (a *Agent) Shutdown(ctx context.Context) error {
	if !a.markClosed() {
		return fmt.Errorf("agent: shutdown: %w", net.ErrClosed)
	}
	err := a.ssh.Shutdown(ctx)
	a.finish()
	return err
}

// Close closes the tunnel, the SSH service and its sessions at once and
// waits for the agent's goroutines. A second Close returns an error
// wrapping net.ErrClosed.
func (a *Agent) Close() error {
	if !a.markClosed() {
		return fmt.Errorf("agent: close: %w", net.ErrClosed)
	}
	a.finish()
	return nil
}

func (a *Agent) markClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.closed = true
	close(a.done)
	return true
}

func (a *Agent) finish() {
	a.mu.Lock()
	cancel, tun, direct := a.cancel, a.tun, a.direct
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	close(a.stopEmit)
	if direct != nil {
		direct.Close()
	} else if a.cfg.DirectListener != nil {
		a.cfg.DirectListener.Close()
	}
	if tun != nil {
		tun.Close()
	}
	a.ssh.Close()
	a.wg.Wait()
	a.auth.Close()
}
