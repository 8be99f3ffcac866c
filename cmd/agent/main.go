package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/config"
	"github.com/sallyport/sallyport/internal/daemon"
	"github.com/sallyport/sallyport/proxyconnect"
	"github.com/sallyport/sallyport/recorder"
	_ "github.com/sallyport/sallyport/recorder/file"
	"github.com/sallyport/sallyport/sshserver"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	p, err := daemon.Start("agent", args, stderr, "ssh_service", func(c *config.Config) bool { return c.SSH.Enabled })
	if err != nil {
		return err
	}
	defer p.Close()
	cfg, opts, log := p.Config, p.Options, p.Log

	ac, err := agentConfig(cfg)
	if err != nil {
		return err
	}
	ac.Logger = log
	var spool *recorder.Spool
	if cfg.SSH.SessionRecording != "off" {
		if spool, err = openSpool(ctx, cfg, log); err != nil {
			return err
		}
		defer spool.Close()
		ac.SSH.Recorder = spoolRecorder(spool)
	}

	jctx, cancel := context.WithTimeout(ctx, opts.JoinTimeout)
	defer cancel()
	idPath := filepath.Join(cfg.Common.DataDir, "agent", "identity.json")
	creds, err := identity(jctx, cfg, ac, idPath, log)
	if err != nil {
		return err
	}
	ac.Credentials = creds
	sup := &supervisor{cfg: ac, log: log}
	sctx, stopSup := context.WithCancel(ctx)
	defer stopSup()
	errc := make(chan error, 1)
	go func() { errc <- sup.run(sctx) }()
	var diag *daemon.Diag
	if cfg.Common.DiagAddr != "" {
		d := daemon.NewDiag(daemon.DiagConfig{Logger: log, Ready: func() error {
			if ac.DirectAddr == "" && len(sup.proxies()) == 0 {
				return errors.New("no reverse tunnel to a proxy yet")
			}
			return nil
		}, Metrics: []daemon.Metric{
			{Name: "sallyport_agent_tunnels", Help: "Proxies this agent has a reverse tunnel to.", Value: func() float64 { return float64(len(sup.proxies())) }},
		}})
		l, err := net.Listen("tcp", cfg.Common.DiagAddr)
		if err != nil {
			sup.stop(context.Background())
			<-errc
			return fmt.Errorf("sallyport.diag_addr: %w", err)
		}
		go d.Serve(l)
		defer d.Close()
		diag = d
	}
	log.Info("agent serving", "node", ac.NodeName, "host_id", creds.Identity.Name, "proxy", ac.ProxyAddr, "direct", ac.DirectAddr)

	sig, err := daemon.Wait(ctx, daemon.WaitConfig{Errc: errc, Logger: log})
	if sig == nil {
		sup.stop(context.Background())
		return err
	}
	p.Drain(diag, "sessions", sup.stop)
	stopSup()
	if err := <-errc; err != nil {
		return err
	}
	if spool != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := spool.Shutdown(sctx); err != nil {
			log.Warn("recordings not all uploaded; they stay in the spool", "err", err)
		}
	}
	log.Info("agent stopped")
	return nil
}

// agentConfig turns the file's ssh_service section (and the common
// section) into an agent.Config, without the identity and the recorder.
//
// The agent uses a reverse tunnel when it knows a proxy
// (sallyport.proxy_server, or a proxy_service enabled in the same file);
// otherwise it serves SSH on ssh_service.listen_addr (direct mode) and
// talks to sallyport.auth_server.
func agentConfig(cfg *config.Config) (*agent.Config, error) {
	s := cfg.SSH
	ac := &agent.Config{
		ProxyAddr: cfg.Common.ProxyServer,
		AuthAddrs: append([]string(nil), cfg.Common.AuthServers...),
		JoinToken: cfg.Common.JoinParams.TokenName.Value(),
		NodeName:  cfg.Common.NodeName,
		Labels:    s.Labels,
	}
	if len(cfg.Common.Ciphers) > 0 {
		ac.SSH.Ciphers = append([]string(nil), cfg.Common.Ciphers...)
	}
	if len(cfg.Common.CAPins) > 0 {
		ac.CAPin = cfg.Common.CAPins[0]
	}
	if ac.ProxyAddr == "" && cfg.Proxy.Enabled {
		ac.ProxyAddr = loopback(cfg.Proxy.WebListenAddr)
	}
	if ac.ProxyAddr == "" {
		if len(cfg.AuthAddrs()) == 0 {
			return nil, errors.New("sallyport.proxy_server or sallyport.auth_server: the agent needs a proxy to tunnel to, or an auth service to register with")
		}
		ac.AuthAddrs = cfg.AuthAddrs()
		ac.DirectAddr = s.ListenAddr
		ac.PublicAddrs = append([]string(nil), s.PublicAddrs...)
	}
	return ac, nil
}

// loopback replaces an unspecified host in addr by 127.0.0.1.
func loopback(addr string) string {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, p)
}

// identity returns the saved host identity, or joins the cluster and
// saves the new one. The agent joins itself (not through agent.New) so
// that its certificates name it "<node>.<cluster>" too, the name users
// type ("ssh node.cluster").
func identity(ctx context.Context, cfg *config.Config, ac *agent.Config, path string, log *slog.Logger) (*authapi.Credentials, error) {
	if c, err := daemon.LoadIdentity(path, ac.CAPin, time.Hour); err == nil {
		log.Info("using the saved host identity", "path", path, "host_id", c.Identity.Name)
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Info("joining the cluster", "reason", err.Error())
	}
	token, pin := ac.JoinToken, ac.CAPin
	if token == "" && cfg.Auth.Enabled {
		var err error
		if token, pin, err = daemon.LocalJoinToken(ctx, cfg.Common.DataDir, cfg.AuthAddrs(), authapi.RoleAgent); err != nil {
			return nil, err
		}
		if ac.CAPin != "" {
			pin = ac.CAPin
		}
	}
	if token == "" || pin == "" {
		return nil, errors.New("no saved identity and no join token with a CA pin: set sallyport.join_params.token_name and sallyport.ca_pin (or -token and -ca-pin)")
	}
	jc := authapi.JoinConfig{Token: token, CAPin: pin, NodeName: ac.NodeName, HostID: ac.HostID}
	if old, err := authapi.LoadCredentials(path); err == nil && jc.HostID == "" {
		// Rejoining after the identity expired: keep the host ID, so that
		// proxies and users know the node by the same ID.
		jc.HostID = old.Identity.Name
	}
	if len(ac.AuthAddrs) > 0 {
		jc.Addrs = ac.AuthAddrs
	} else {
		var d proxyconnect.Dialer
		jc.Addrs = []string{ac.ProxyAddr}
		jc.ALPN = []string{authapi.ALPN}
		jc.DialContext = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	cluster, err := clusterName(ctx, jc)
	if err != nil {
		return nil, fmt.Errorf("reaching the cluster at %v: %w (check the address, HTTPS_PROXY/NO_PROXY and the CA pin)", jc.Addrs, err)
	}
	jc.PublicAddrs = append([]string{ac.NodeName + "." + cluster}, ac.PublicAddrs...)
	c, err := authapi.Join(ctx, jc)
	if err != nil {
		return nil, fmt.Errorf("joining the cluster: %w", err)
	}
	if err := daemon.SaveIdentity(path, c); err != nil {
		return nil, err
	}
	log.Info("joined the cluster", "host_id", c.Identity.Name, "cluster", c.Cluster)
	return c, nil
}

// clusterName asks the (pinned) auth service for the cluster's name.
func clusterName(ctx context.Context, jc authapi.JoinConfig) (string, error) {
	c, err := authapi.NewClient(&authapi.ClientConfig{Addrs: jc.Addrs, CAPin: jc.CAPin, DialContext: jc.DialContext, ALPN: jc.ALPN})
	if err != nil {
		return "", err
	}
	defer c.Close()
	resp, err := c.API().Ping(ctx, &authv1.PingRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetClusterName(), nil
}

// openSpool opens the recording spool in the data directory, uploading
// to sallyport.storage.audit_sessions_uri.
func openSpool(ctx context.Context, cfg *config.Config, log *slog.Logger) (*recorder.Spool, error) {
	uri := cfg.Common.Storage.AuditSessionsURI
	store, err := recorder.OpenStore(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("sallyport.storage.audit_sessions_uri: %w (this binary has the file:// driver built in)", err)
	}
	return recorder.Open(ctx, &recorder.Config{Dir: filepath.Join(cfg.Common.DataDir, "spool"), Store: store, Logger: log})
}

func spoolRecorder(spool *recorder.Spool) func(ctx context.Context, s sshserver.SessionInfo) (sshserver.Recording, error) {
	return func(ctx context.Context, s sshserver.SessionInfo) (sshserver.Recording, error) {
		return spool.NewSession(ctx, recorder.Meta{ID: s.ID, User: s.User, Login: s.Login,
			Node: s.Node, Remote: s.RemoteAddr, Command: s.Command, Start: s.Start,
			Width: s.Width, Height: s.Height, Term: s.Term})
	}
}

// supervisor runs the agent, and starts it again (with backoff) while the
// proxy cannot be reached at start-up, so that the order in which a
// cluster's processes start does not matter.
type supervisor struct {
	cfg *agent.Config
	log *slog.Logger

	mu      sync.Mutex
	cur     *agent.Agent
	stopped bool
}

// run serves until stop; it returns nil then, or the error of agent.New.
func (s *supervisor) run(ctx context.Context) error {
	backoff := time.Second
	for {
		a, err := agent.New(ctx, s.cfg)
		if err != nil {
			return err
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			a.Close()
			return nil
		}
		s.cur = a
		s.mu.Unlock()
		err = a.Serve(ctx)
		if errors.Is(err, agent.ErrServerClosed) {
			return nil
		}
		a.Close()
		s.mu.Lock()
		s.cur = nil
		s.mu.Unlock()
		s.log.Warn("cannot start serving; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// stop drains the running agent until ctx ends.
func (s *supervisor) stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	a := s.cur
	s.mu.Unlock()
	if a == nil {
		return nil
	}
	return a.Shutdown(ctx)
}

func (s *supervisor) proxies() []string {
	s.mu.Lock()
	a := s.cur
	s.mu.Unlock()
	if a == nil {
		return nil
	}
	return a.Proxies()
}
