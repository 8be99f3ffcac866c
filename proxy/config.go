package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/sallyport/sallyport/authapi"
	"github.com/sallyport/sallyport/internal/sshutil"
	"github.com/sallyport/sallyport/mux"
)

// Default ports of the Proxy Service.
const (
	DefaultWebPort    = 3080
	DefaultSSHPort    = 3023
	DefaultTunnelPort = 3024
	// DefaultAgentSSHPort is the port of an agent's SSH service when it is
	// joined directly (without a reverse tunnel).
	DefaultAgentSSHPort = 3022
)

// Defaults of zero Config fields.
const (
	DefaultDialTimeout       = 10 * time.Second
	DefaultHeartbeatInterval = 20 * time.Second
	DefaultLoginRateLimit    = 10
	DefaultRoleRefresh       = 30 * time.Second
	// MaxLoginRequest bounds the body of POST /webapi/login.
	MaxLoginRequest = 64 << 10
)

// Mode chooses how the proxy lays out its listeners.
type Mode int

const (
	// Multiplex serves everything on the web port (3080): TLS connections
	// are routed by ALPN (web API, auth passthrough, reverse tunnels, SSH
	// over TLS) and plain SSH connections are told apart by their first
	// bytes. This is TLS routing; /webapi/ping reports
	// tls_routing_enabled.
	Multiplex Mode = iota
	// Separate serves the web API (and the auth passthrough) on the web
	// port, client SSH on its own port (3023) and reverse tunnels on
	// another (3024).
	Separate
)

// String returns "multiplex" or "separate".
func (m Mode) String() string {
	switch m {
	case Multiplex:
		return "multiplex"
	case Separate:
		return "separate"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Errors of the package.
var (
	// ErrInvalidConfig is wrapped by the errors of New about its Config.
	ErrInvalidConfig = errors.New("proxy: invalid config")
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("proxy: server closed")
	// ErrNodeNotFound: no live agent has the requested name or host ID.
	ErrNodeNotFound = errors.New("proxy: node not found")
	// ErrAccessDenied: the user's roles do not allow the node.
	ErrAccessDenied = errors.New("proxy: access denied")
	// ErrNodeOffline: the agent is known but has neither a reverse tunnel
	// to this proxy nor a direct address that answers.
	ErrNodeOffline = errors.New("proxy: node offline")
)

// Config configures a Service. The zero value of every field documents its
// meaning; AuthAddrs and one of Credentials or JoinToken+CAPin are
// required.
type Config struct {
	// AuthAddrs are the Auth Service addresses ("host:port"). Required:
	// the proxy calls auth (login, roles, presence, audit) and forwards
	// the sallyport-auth ALPN route to them as TLS passthrough.
	AuthAddrs []string
	// Credentials is the proxy's host identity (with the proxy role).
	// Nil means New joins the cluster with JoinToken and CAPin.
	Credentials *authapi.Credentials
	// JoinToken and CAPin join the cluster when Credentials is nil (see
	// authapi.Join).
	JoinToken, CAPin string
	// HostID is the proxy's host ID when joining; zero lets auth pick one.
	HostID string
	// NodeName is the proxy's name, a principal of its SSH host
	// certificate; zero means "proxy".
	NodeName string

	// Mode is the listener layout; zero is Multiplex.
	Mode Mode
	// WebListenAddr, SSHListenAddr and TunnelListenAddr are where
	// ListenAndServe listens: zero means ":3080", ":3023" and ":3024".
	// SSH and tunnel addresses are used in Separate mode only.
	WebListenAddr, SSHListenAddr, TunnelListenAddr string
	// PublicAddrs are the addresses clients reach the proxy at ("host" or
	// "host:port"), for example the load balancer's. Only the first is
	// advertised by /webapi/ping; all become principals and SANs of the
	// proxy's certificates when it joins. Zero means the listeners'
	// addresses.
	PublicAddrs []string

	// ProxyProtocol and TrustedNetworks configure the PROXY protocol
	// header of Layer-4 load balancers on every listener (see package
	// mux); zero means off.
	ProxyProtocol   mux.ProxyMode
	TrustedNetworks []netip.Prefix

	// TLSConfig is the web API's TLS configuration (Certificates or
	// GetCertificate). Nil means the proxy's host certificate, which
	// clients verify against the cluster's host CA.
	TLSConfig *tls.Config

	// SecondFactor is reported as auth.second_factor by /webapi/ping
	// ("off", "otp", "optional"); zero means "optional" (TOTP is enforced
	// for the users who enrolled it).
	SecondFactor string
	// LoginRateLimit is how many failed logins one client address may
	// make per minute (with a burst of the same size) before
	// /webapi/login answers 429; zero means DefaultLoginRateLimit,
	// negative means unlimited.
	LoginRateLimit int
	// DialTimeout bounds dialing an agent; zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// HeartbeatInterval is how often the proxy announces itself; zero
	// means DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// RoleRefresh is how often the role cache is reloaded from auth; zero
	// means DefaultRoleRefresh.
	RoleRefresh time.Duration
	// DirectDialer dials agents that are joined directly (no reverse
	// tunnel). Nil means a net.Dialer.
	DirectDialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
	// SSHCiphers are the ciphers the proxy's SSH server (the jump host)
	// offers; the client's order decides among them. Nil means AES only,
	// GCM then CTR, and AES-GCM only to a client whose KEXINIT offers it
	// (OpenSSH lists AES-CTR first, and CTR with its HMAC costs more per
	// byte). A list set here is offered as is to every client; a name
	// x/crypto does not implement fails New.
	SSHCiphers []string
	// Logger receives the proxy's logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	if len(cfg.AuthAddrs) == 0 {
		return cfg, fmt.Errorf("%w: AuthAddrs is required", ErrInvalidConfig)
	}
	if err := sshutil.CheckCiphers(cfg.SSHCiphers); err != nil {
		return cfg, fmt.Errorf("%w: SSHCiphers: %w", ErrInvalidConfig, err)
	}
	if cfg.Credentials == nil && (cfg.JoinToken == "" || cfg.CAPin == "") {
		return cfg, fmt.Errorf("%w: Credentials or JoinToken and CAPin are required", ErrInvalidConfig)
	}
	if cfg.Credentials != nil && (cfg.Credentials.Identity == nil || !cfg.Credentials.Identity.HasRole(authapi.RoleProxy)) {
		return cfg, fmt.Errorf("%w: Credentials must be a host identity with the proxy role", ErrInvalidConfig)
	}
	if cfg.Mode != Multiplex && cfg.Mode != Separate {
		return cfg, fmt.Errorf("%w: unknown mode %d", ErrInvalidConfig, cfg.Mode)
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "proxy"
	}
	if cfg.WebListenAddr == "" {
		cfg.WebListenAddr = fmt.Sprintf(":%d", DefaultWebPort)
	}
	if cfg.SSHListenAddr == "" {
		cfg.SSHListenAddr = fmt.Sprintf(":%d", DefaultSSHPort)
	}
	if cfg.TunnelListenAddr == "" {
		cfg.TunnelListenAddr = fmt.Sprintf(":%d", DefaultTunnelPort)
	}
	if cfg.SecondFactor == "" {
		cfg.SecondFactor = "optional"
	}
	if cfg.LoginRateLimit == 0 {
		cfg.LoginRateLimit = DefaultLoginRateLimit
	}
	if cfg.DialTimeout < 0 || cfg.HeartbeatInterval < 0 || cfg.RoleRefresh < 0 {
		return cfg, fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.RoleRefresh == 0 {
		cfg.RoleRefresh = DefaultRoleRefresh
	}
	if cfg.DirectDialer == nil {
		cfg.DirectDialer = &net.Dialer{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// hostOnly returns the host of a "host" or "host:port" address.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
