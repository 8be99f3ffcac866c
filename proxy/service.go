package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/alpn"
	"github.com/sallyport/sallyport/audit"
	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/internal/auditsend"
	"github.com/sallyport/sallyport/internal/sshutil"
	"github.com/sallyport/sallyport/mux"
	"github.com/sallyport/sallyport/tunnel"
)

// Listeners are the sockets a Service serves. Web is required; SSH and
// Tunnel are required in Separate mode and ignored in Multiplex mode.
type Listeners struct {
	Web, SSH, Tunnel net.Listener
}

// Service is a Proxy Service: the web API (/webapi/ping, /webapi/login),
// the SSH jump host, the reverse-tunnel server for agents and the TLS
// passthrough to the Auth Service, on one port or three.
type Service struct {
	cfg     Config
	log     *slog.Logger
	creds   *authapi.Credentials
	auth    *authapi.Client
	tunnels *tunnel.Server
	router  *alpn.Router
	webL    net.Listener
	web     *http.Server
	sshConf *ssh.ServerConfig
	// preferGCM: Config.SSHCiphers was nil (see sshutil.PreferGCM).
	preferGCM bool
	webTLS    *tls.Config
	cache     *cache
	limit     *limiter

	cancel context.CancelFunc // ends the background tasks
	wg     sync.WaitGroup     // background tasks, accept loops, audit emits
	connWG sync.WaitGroup     // SSH connections
	httpWG sync.WaitGroup     // web API connections

	mu       sync.Mutex
	serving  bool
	closed   bool
	done     chan struct{}
	stopEmit chan struct{} // closed by Close: pending audit emits give up
	muxes    []*mux.Mux
	sshConns map[net.Conn]struct{}
	addrs    boundAddrs
	rolesErr time.Time
}

type boundAddrs struct {
	web, ssh, tunnel string
}

// New validates cfg, joins the cluster when cfg has no Credentials (ctx
// bounds the join), and returns a Service ready to Serve.
func New(ctx context.Context, cfg *Config) (*Service, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	creds := c.Credentials
	if creds == nil {
		var public []string
		for _, a := range c.PublicAddrs {
			public = append(public, hostOnly(a))
		}
		creds, err = authapi.Join(ctx, authapi.JoinConfig{
			Addrs: c.AuthAddrs, Token: c.JoinToken, CAPin: c.CAPin,
			HostID: c.HostID, NodeName: c.NodeName, PublicAddrs: public,
		})
		if err != nil {
			return nil, fmt.Errorf("proxy: join: %w", err)
		}
		if !creds.Identity.HasRole(authapi.RoleProxy) {
			return nil, fmt.Errorf("%w: the join token does not grant the proxy role", ErrInvalidConfig)
		}
	}
	if creds.SSHSigner == nil || len(creds.SSHUserCAs) == 0 || len(creds.HostCAs) == 0 {
		return nil, fmt.Errorf("%w: credentials lack an SSH host certificate or the cluster CAs", ErrInvalidConfig)
	}
	s := &Service{
		cfg:      c,
		log:      c.Logger,
		creds:    creds,
		cache:    newCache(),
		limit:    newLimiter(c.LoginRateLimit, time.Now),
		done:     make(chan struct{}),
		stopEmit: make(chan struct{}),
		sshConns: map[net.Conn]struct{}{},
	}
	s.auth, err = authapi.NewClient(&authapi.ClientConfig{Addrs: c.AuthAddrs, Credentials: creds, Logger: c.Logger})
	if err != nil {
		return nil, err
	}
	tunTLS := creds.ServerTLSConfig()
	s.tunnels, err = tunnel.NewServer(&tunnel.ServerConfig{
		ID:        creds.Identity.Name,
		TLSConfig: tunTLS,
		AgentID:   agentID,
		Logger:    c.Logger,
	})
	if err != nil {
		s.auth.Close()
		return nil, err
	}
	s.webTLS = c.TLSConfig
	if s.webTLS == nil {
		s.webTLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{creds.Certificate}}
	}
	getCert := s.webTLS.GetCertificate
	if getCert == nil {
		certs := s.webTLS.Certificates
		getCert = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if len(certs) == 0 {
				return nil, errors.New("proxy: no web certificate")
			}
			return &certs[0], nil
		}
	}
	s.router, err = alpn.New(&alpn.Config{GetCertificate: getCert, Logger: c.Logger})
	if err != nil {
		s.closeParts()
		s.auth.Close()
		return nil, err
	}
	routes := []alpn.Route{
		{Name: "auth", ALPN: []string{authapi.ALPN}, Handler: alpn.HandlerFunc(s.forwardAuth)},
		// Passthrough: the tunnel server runs TLS itself, over a conn
		// that sends each stream frame in one system call.
		{Name: "tunnel", ALPN: []string{alpn.ProtocolReverseTunnel}, Handler: alpn.HandlerFunc(s.serveTunnel)},
		{Name: "ssh", ALPN: []string{alpn.ProtocolProxySSH}, TLSConfig: s.webTLS.Clone(), Handler: alpn.HandlerFunc(s.serveSSHConn)},
	}
	for _, rt := range routes {
		if err := s.router.Handle(rt); err != nil {
			s.closeParts()
			s.auth.Close()
			return nil, err
		}
	}
	webTLS := s.webTLS.Clone()
	webTLS.NextProtos = []string{"http/1.1"}
	s.webL, err = s.router.Listener(alpn.Route{Name: "web", ALPN: alpn.WebProtocols(), TLSConfig: webTLS})
	if err != nil {
		s.closeParts()
		s.auth.Close()
		return nil, err
	}
	s.web = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(c.Logger.Handler(), slog.LevelDebug),
		// Count connections so that Close can wait for their goroutines.
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.httpWG.Add(1)
			case http.StateHijacked, http.StateClosed:
				s.httpWG.Done()
			}
		},
	}
	var ciphers []string
	ciphers, s.preferGCM = sshutil.ServerCiphers(c.SSHCiphers)
	s.sshConf = &ssh.ServerConfig{
		Config: ssh.Config{Ciphers: ciphers},
		// PublicKeyCallback is set per connection (serveSSH).
		ServerVersion: "SSH-2.0-sallyport-proxy",
	}
	s.sshConf.AddHostKey(creds.SSHSigner)
	return s, nil
}

// agentID names a tunnel's agent: the host ID of a host identity with the
// agent role.
func agentID(cert *x509.Certificate) (string, error) {
	id, err := authapi.ParseIdentity(cert)
	if err != nil {
		return "", err
	}
	if id.Kind != authapi.KindHost || !id.HasRole(authapi.RoleAgent) {
		return "", fmt.Errorf("%w: %s %q is not an agent", tunnel.ErrUnauthenticated, id.Kind, id.Name)
	}
	return id.Name, nil
}

// Credentials returns the proxy's host identity.
func (s *Service) Credentials() *authapi.Credentials { return s.creds }

// HostID returns the proxy's host ID.
func (s *Service) HostID() string { return s.creds.Identity.Name }

// Tunnels returns the reverse-tunnel server (to list connected agents).
func (s *Service) Tunnels() *tunnel.Server { return s.tunnels }

// Nodes returns the agents the proxy's cache knows.
func (s *Service) Nodes() []Node { return s.cache.list() }

// ListenAndServe listens on the Config's addresses and serves them (see
// Serve).
func (s *Service) ListenAndServe() error {
	var ls Listeners
	var err error
	closeAll := func() {
		for _, l := range []net.Listener{ls.Web, ls.SSH, ls.Tunnel} {
			if l != nil {
				l.Close()
			}
		}
	}
	if ls.Web, err = net.Listen("tcp", s.cfg.WebListenAddr); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if s.cfg.Mode == Separate {
		if ls.SSH, err = net.Listen("tcp", s.cfg.SSHListenAddr); err != nil {
			closeAll()
			return fmt.Errorf("proxy: %w", err)
		}
		if ls.Tunnel, err = net.Listen("tcp", s.cfg.TunnelListenAddr); err != nil {
			closeAll()
			return fmt.Errorf("proxy: %w", err)
		}
	}
	return s.Serve(ls)
}

// Serve serves the listeners (which it closes) until Shutdown or Close,
// then returns ErrServerClosed. It starts the background tasks (heartbeat,
// agent watch, role refresh) on its first call. It can be called once.
func (s *Service) Serve(ls Listeners) error {
	if ls.Web == nil || (s.cfg.Mode == Separate && (ls.SSH == nil || ls.Tunnel == nil)) {
		return fmt.Errorf("%w: Serve needs a web listener, and SSH and tunnel listeners in separate mode", ErrInvalidConfig)
	}
	mcfg := &mux.Config{ProxyProtocol: s.cfg.ProxyProtocol, TrustedNetworks: s.cfg.TrustedNetworks, Logger: s.log}
	s.mu.Lock()
	if s.closed || s.serving {
		s.mu.Unlock()
		for _, l := range []net.Listener{ls.Web, ls.SSH, ls.Tunnel} {
			if l != nil {
				l.Close()
			}
		}
		if s.serving && !s.closed {
			return fmt.Errorf("%w: Serve called twice", ErrInvalidConfig)
		}
		return ErrServerClosed
	}
	s.serving = true
	webMux, err := mux.New(ls.Web, mcfg)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.muxes = append(s.muxes, webMux)
	s.addrs.web = ls.Web.Addr().String()
	s.addrs.ssh, s.addrs.tunnel = s.addrs.web, s.addrs.web
	tlsL := webMux.Listener(mux.TLS)
	var sshL net.Listener
	var tunnelMux *mux.Mux
	if s.cfg.Mode == Multiplex {
		sshL = webMux.Listener(mux.SSH)
	} else {
		sm, err := mux.New(ls.SSH, mcfg)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		tunnelMux, err = mux.New(ls.Tunnel, mcfg)
		if err != nil {
			sm.Close()
			s.mu.Unlock()
			return err
		}
		s.muxes = append(s.muxes, sm, tunnelMux)
		s.addrs.ssh = ls.SSH.Addr().String()
		s.addrs.tunnel = ls.Tunnel.Addr().String()
		sshL = sm.Listener(mux.SSH)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	muxes := s.muxes
	s.mu.Unlock()

	for _, m := range muxes {
		s.goFn(func() { m.Serve() })
	}
	s.goFn(func() { s.router.Serve(tlsL) })
	s.goFn(func() { s.web.Serve(s.webL) })
	s.goFn(func() { s.acceptSSH(ctx, sshL) })
	if tunnelMux != nil {
		tl := tunnelMux.Listener(mux.TLS)
		s.goFn(func() { s.tunnels.Serve(tl) })
	}
	s.startBackground(ctx)
	<-s.done
	return ErrServerClosed
}

// goFn runs fn in a goroutine that Close waits for, unless the Service is
// closed already.
func (s *Service) goFn(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

func (s *Service) startBackground(ctx context.Context) {
	if err := s.loadRoles(ctx); err != nil {
		s.log.Warn("proxy: loading roles", "err", err)
	}
	s.goFn(func() {
		ssh := s.ping().Proxy.SSH
		addrs := []string{ssh.PublicAddr}
		if ssh.TunnelPublicAddr != ssh.PublicAddr {
			addrs = append(addrs, ssh.TunnelPublicAddr)
		}
		srv := &authv1.Server{Kind: authapi.RoleProxy, Name: s.HostID(), Hostname: s.cfg.NodeName, Addrs: addrs}
		if err := s.auth.Announce(ctx, srv, s.cfg.HeartbeatInterval); err != nil && ctx.Err() == nil {
			s.log.Error("proxy: heartbeat refused", "err", err)
		}
	})
	s.goFn(func() {
		err := s.auth.WatchServers(ctx, "", s.onServers)
		if err != nil && ctx.Err() == nil {
			s.log.Error("proxy: agent watch ended", "err", err)
		}
	})
	s.goFn(func() {
		t := time.NewTicker(s.cfg.RoleRefresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.loadRoles(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("proxy: refreshing roles (keeping the cached ones)", "err", err)
				}
			}
		}
	})
}

// onServers takes the live proxies and agents from the presence watch: the
// agents feed the cache, the proxies become the tunnel server's peer list,
// which agents use to keep a tunnel to every proxy of the pool.
func (s *Service) onServers(servers []*authv1.Server) {
	s.cache.setServers(servers)
	var peers []tunnel.Peer
	for _, srv := range servers {
		if srv.GetKind() != authapi.RoleProxy {
			continue
		}
		// The last address is the tunnel address (see the heartbeat).
		addr := ""
		if a := srv.GetAddrs(); len(a) > 0 {
			addr = a[len(a)-1]
		}
		peers = append(peers, tunnel.Peer{ID: srv.GetName(), Addr: addr})
	}
	if err := s.tunnels.SetPeers(peers); err != nil {
		s.log.Debug("proxy: peer list not sent", "err", err)
	}
}

// forwardAuth passes a sallyport-auth TLS stream to the first auth address
// that answers.
func (s *Service) forwardAuth(ctx context.Context, c net.Conn, _ *alpn.Hello) {
	defer c.Close()
	var d net.Dialer
	for _, addr := range s.cfg.AuthAddrs {
		dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
		up, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err != nil {
			s.log.Warn("proxy: auth unreachable", "addr", addr, "err", err)
			continue
		}
		alpn.Join(ctx, c, up)
		return
	}
}

func (s *Service) serveTunnel(ctx context.Context, c net.Conn, _ *alpn.Hello) {
	if err := s.tunnels.ServeConn(ctx, c); err != nil && !errors.Is(err, tunnel.ErrServerClosed) {
		s.log.Debug("proxy: tunnel ended", "remote", c.RemoteAddr(), "err", err)
	}
}

// emit sends an audit event to auth in the background.
func (s *Service) emit(ev audit.Event) {
	ev.Cluster = s.creds.Cluster
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.Fields == nil {
		ev.Fields = map[string]string{}
	}
	ev.Fields["proxy"] = s.HostID()
	s.goFn(func() {
		if err := auditsend.Send(context.Background(), s.stopEmit, s.auth.API(), ev); err != nil {
			s.log.Warn("proxy: audit event lost", "type", ev.Type, "err", err)
		}
	})
}

// Shutdown stops accepting connections, lets web requests finish, waits
// for SSH connections to end and asks agents to drain their tunnels, until
// ctx is done; then it closes what is left (auth passthroughs included) as
// Close does.
func (s *Service) Shutdown(ctx context.Context) error {
	if !s.markClosed() {
		return fmt.Errorf("proxy: shutdown: %w", net.ErrClosed)
	}
	s.closeMuxes()
	err := s.web.Shutdown(ctx)
	// SSH connections first: their streams need the tunnels.
	waited := make(chan struct{})
	go func() { s.connWG.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	if e := s.tunnels.Shutdown(ctx); err == nil && e != nil && !errors.Is(e, tunnel.ErrServerClosed) {
		err = e
	}
	// What is left on the router are auth passthroughs (long-lived gRPC
	// connections, which their clients re-establish elsewhere): close them.
	s.finish()
	return err
}

// Close closes every listener, tunnel and connection at once and waits for
// the Service's goroutines. A second Close returns an error wrapping
// net.ErrClosed.
func (s *Service) Close() error {
	if !s.markClosed() {
		return fmt.Errorf("proxy: close: %w", net.ErrClosed)
	}
	s.closeMuxes()
	s.finish()
	return nil
}

func (s *Service) markClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed = true
	close(s.done)
	return true
}

func (s *Service) closeMuxes() {
	s.mu.Lock()
	muxes := s.muxes
	s.mu.Unlock()
	for _, m := range muxes {
		m.Close()
	}
}

// finish closes everything and waits for the goroutines.
func (s *Service) finish() {
	s.mu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	for c := range s.sshConns {
		c.Close()
	}
	s.mu.Unlock()
	close(s.stopEmit)
	s.web.Close()
	s.closeParts()
	s.connWG.Wait()
	s.wg.Wait()
	s.httpWG.Wait()
	s.auth.Close()
}

func (s *Service) closeParts() {
	if s.router != nil {
		s.router.Close()
	}
	if s.tunnels != nil {
		s.tunnels.Close()
	}
	if s.webL != nil {
		s.webL.Close()
	}
}
