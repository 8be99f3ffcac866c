package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// Version is the only file format version this package reads.
const Version = "v3"

// MaxFileSize bounds the size of a configuration file.
const MaxFileSize = 1 << 20

// Default values, also written in the file reference (see the package documentation).
const (
	DefaultDataDir          = "/var/lib/sallyport"
	DefaultAuthListenAddr   = "0.0.0.0:3025"
	DefaultWebListenAddr    = "0.0.0.0:3080"
	DefaultTunnelListenAddr = "0.0.0.0:3024"
	DefaultProxySSHAddr     = "0.0.0.0:3023"
	DefaultPeerListenAddr   = "0.0.0.0:3021"
	DefaultSSHListenAddr    = "0.0.0.0:3022"
)

// Sentinel errors. Every error returned by Parse, Load and Validate wraps
// one of them, usually inside an *Error that carries the file, line and key.
var (
	// ErrSyntax reports a file that is not well-formed YAML, or whose
	// structure (a list where a mapping belongs, ...) does not fit.
	ErrSyntax = errors.New("config: syntax error")
	// ErrUnknownKey reports a key that the file format does not define.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrInvalid reports a value that is out of range, malformed or not
	// one of the allowed words.
	ErrInvalid = errors.New("config: invalid value")
	// ErrMissing reports a value that another setting makes necessary.
	ErrMissing = errors.New("config: missing value")
	// ErrConflict reports settings that cannot be used together.
	ErrConflict = errors.New("config: conflicting values")
	// ErrSecretFile reports a secret file that cannot be read.
	ErrSecretFile = errors.New("config: cannot read secret file")
)

// Error describes one problem with a configuration. Its message has the
// form "file:line: key.path: reason", or "origin: key.path: reason" when
// the value came from a flag or the environment. Secret values never
// appear in it.
type Error struct {
	File   string // name of the file; empty when no file was read
	Line   int    // 1-based line of the offending key or value; 0 when not from the file
	Origin string // where a non-file value came from ("flag -token", "environment SALLYPORT_AUTH_TOKEN"); empty for the file
	Path   string // dotted key path, e.g. "proxy_service.proxy_listener_mode"
	Reason string // what is wrong, without secret values
	Err    error  // one of the sentinels above
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Origin != "":
		b.WriteString(e.Origin)
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d", e.Line)
	default:
		b.WriteString("config")
	}
	if e.Path != "" {
		b.WriteString(": ")
		b.WriteString(e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// Config is a whole configuration file: the common section and one
// section per service. Parse and Load return it with defaults applied and
// validated; the zero Config is not valid on its own (use Parse with an
// empty file for a defaulted one).
type Config struct {
	// Version of the file format; "v3", also when the file omits it.
	Version string `yaml:"version" check:"enum=v3"`
	// Common is the "sallyport:" section, shared by every service.
	Common Common `yaml:"sallyport"`
	// Auth is the "auth_service:" section, run by cmd/auth.
	Auth Auth `yaml:"auth_service"`
	// Proxy is the "proxy_service:" section, run by cmd/proxy.
	Proxy Proxy `yaml:"proxy_service"`
	// SSH is the "ssh_service:" section, run by cmd/agent.
	SSH SSH `yaml:"ssh_service"`
}

// Common is the "sallyport:" section.
type Common struct {
	// NodeName names this instance; zero means the host name.
	NodeName string `yaml:"nodename" check:"name"`
	// DataDir holds local state (keys, certificates, the SQLite
	// backend); zero means /var/lib/sallyport. Must be absolute.
	DataDir string `yaml:"data_dir" check:"abspath"`
	// JoinParams says how an instance without a local auth service joins.
	JoinParams JoinParams `yaml:"join_params"`
	// CAPins are "sha256:<hex>" pins of the cluster CA, or absolute paths
	// of files that hold them (one per line). Zero means no pinning.
	CAPins []string `yaml:"ca_pin" check:"capin"`
	// AuthServers are host:port addresses of the auth service (or its
	// load balancer) to join through. Exclusive with ProxyServer.
	AuthServers []string `yaml:"auth_server" check:"dial"`
	// ProxyServer is the host:port of a proxy (or its public load
	// balancer) to join through. Exclusive with AuthServers.
	ProxyServer string `yaml:"proxy_server" check:"dial"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Storage configures the cluster state backend and audit storage.
	Storage Storage `yaml:"storage"`
	// DiagAddr is the listen address of the diagnostics endpoint
	// (health, readiness, metrics); zero means off.
	DiagAddr string `yaml:"diag_addr" check:"listen"`
	// Ciphers are the SSH ciphers offered by the proxy's SSH server and
	// the node's SSH service, in order of preference (the client's order
	// decides among them). Zero means AES only, GCM then CTR, with AES-GCM
	// alone offered to clients that have it.
	Ciphers []string `yaml:"ciphers" check:"sshcipher"`
}

// JoinParams is "sallyport.join_params".
type JoinParams struct {
	// TokenName is the join token, inline or "/path/to/file". The key
	// "token" is accepted as a synonym.
	TokenName Secret `yaml:"token_name" alias:"token"`
	// Method is the join method; only "token" (the default) exists.
	Method string `yaml:"method" check:"enum=token"`
}

// Log is "sallyport.log".
type Log struct {
	// Severity is debug, info (the default), warn or error;
	// upper case is accepted.
	Severity string `yaml:"severity" check:"enum=debug,info,warn,error"`
	// Format is text (the default) or json.
	Format string `yaml:"format" check:"enum=text,json"`
}

// Storage is "sallyport.storage".
type Storage struct {
	// Type is sqlite, postgres, etcd or memory; zero means the scheme of
	// URI, or sqlite when URI is zero too.
	Type string `yaml:"type" check:"enum=sqlite,postgres,etcd,memory"`
	// URI locates the backend: sqlite:///abs/path.db,
	// postgres://user@host:5432/db?sslmode=..., etcd://host:2379[,host:2379],
	// memory://. Zero means sqlite://<data_dir>/state.db.
	URI string `yaml:"uri" check:"uri=sqlite,postgres,postgresql,etcd,memory"`
	// AuditEventsURI lists where audit events go: file:///dir,
	// stdout://, sqlite:///path, postgres://... Zero means they are kept
	// next to the cluster state in the backend.
	AuditEventsURI []string `yaml:"audit_events_uri" check:"uri=file,stdout,sqlite,postgres,postgresql"`
	// AuditSessionsURI is where session recordings are uploaded:
	// file:///dir, s3://bucket/prefix, gs://bucket/prefix,
	// azblob://container/prefix. Zero means file://<data_dir>/records.
	AuditSessionsURI string `yaml:"audit_sessions_uri" check:"uri=file,s3,gs,azblob"`
}

// Auth is the "auth_service:" section.
type Auth struct {
	// Enabled is true when the section is present unless it says
	// "enabled: no"; false when the section is absent.
	Enabled bool `yaml:"enabled" default:"present"`
	// ListenAddr is the gRPC API address; zero means 0.0.0.0:3025.
	ListenAddr string `yaml:"listen_addr" check:"listen"`
	// ClusterName is fixed when the cluster CAs are first created; zero
	// means the node name.
	ClusterName string `yaml:"cluster_name" check:"name"`
	// PublicAddrs are addresses (host or host:port) by which others reach
	// this auth service, added to its certificate.
	PublicAddrs []string `yaml:"public_addr" check:"public"`
	// Tokens are static join tokens, "role[,role...]:token"; the token
	// may be "/path/to/file".
	Tokens []StaticToken `yaml:"tokens"`
	// Authentication sets the cluster authentication preference.
	Authentication Authentication `yaml:"authentication"`
	// KeepAliveInterval is how often idle client connections are probed;
	// zero means 5m.
	KeepAliveInterval time.Duration `yaml:"keep_alive_interval"`
	// KeepAliveCountMax is how many missed probes close a connection;
	// zero means 3.
	KeepAliveCountMax int `yaml:"keep_alive_count_max"`
	// ClientIdleTimeout closes client connections idle that long; zero
	// means never.
	ClientIdleTimeout time.Duration `yaml:"client_idle_timeout"`
}

// Authentication is "auth_service.authentication".
type Authentication struct {
	// SecondFactor is otp (the default) or off.
	SecondFactor string `yaml:"second_factor" check:"enum=off,otp"`
}

// Proxy is the "proxy_service:" section.
type Proxy struct {
	// Enabled: see Auth.Enabled.
	Enabled bool `yaml:"enabled" default:"present"`
	// WebListenAddr serves the web API, and every protocol in multiplex
	// mode; zero means 0.0.0.0:3080.
	WebListenAddr string `yaml:"web_listen_addr" check:"listen"`
	// TunnelListenAddr accepts agent reverse tunnels in separate mode;
	// zero means 0.0.0.0:3024.
	TunnelListenAddr string `yaml:"tunnel_listen_addr" check:"listen"`
	// ListenAddr accepts SSH clients in separate mode; zero means
	// 0.0.0.0:3023.
	ListenAddr string `yaml:"listen_addr" check:"listen"`
	// PeerListenAddr accepts proxy peering; zero means 0.0.0.0:3021.
	PeerListenAddr string `yaml:"peer_listen_addr" check:"listen"`
	// PublicAddrs are the addresses (host or host:port) clients and
	// agents use to reach the web port, usually the public load balancer.
	PublicAddrs []string `yaml:"public_addr" check:"public"`
	// SSHPublicAddrs are the public addresses of the SSH port (separate mode).
	SSHPublicAddrs []string `yaml:"ssh_public_addr" check:"public"`
	// TunnelPublicAddrs are the public addresses of the tunnel port (separate mode).
	TunnelPublicAddrs []string `yaml:"tunnel_public_addr" check:"public"`
	// ListenerMode is multiplex (the default: every protocol on
	// WebListenAddr, told apart by TLS ALPN) or separate.
	ListenerMode string `yaml:"proxy_listener_mode" check:"enum=multiplex,separate"`
	// HTTPSKeyPairs are the web certificates; zero means a self-signed
	// certificate unless ACME is enabled.
	HTTPSKeyPairs []KeyPair `yaml:"https_keypairs"`
	// ACME obtains web certificates automatically.
	ACME ACME `yaml:"acme"`
	// ProxyProtocol is on (PROXY protocol headers required), off
	// (rejected), or zero: accepted with a warning.
	ProxyProtocol string `yaml:"proxy_protocol" check:"enum=on,off"`
	// ProxyProtocolTrustedNetworks are the CIDRs (or single IPs) from
	// which PROXY protocol headers are believed; zero means any source.
	ProxyProtocolTrustedNetworks []string `yaml:"proxy_protocol_trusted_networks" check:"cidr"`
}

// KeyPair is one entry of "proxy_service.https_keypairs".
type KeyPair struct {
	KeyFile  string `yaml:"key_file"`  // PEM private key file; required
	CertFile string `yaml:"cert_file"` // PEM certificate chain file; required
}

// ACME is "proxy_service.acme".
type ACME struct {
	// Enabled turns ACME on; it needs a public_addr and no https_keypairs.
	Enabled bool `yaml:"enabled"`
	// Email is the contact address of the ACME account; zero means none.
	Email string `yaml:"email" check:"email"`
	// URI is the ACME directory; zero means Let's Encrypt production.
	URI string `yaml:"uri" check:"uri=https,http"`
}

// SSH is the "ssh_service:" section.
type SSH struct {
	// Enabled: see Auth.Enabled.
	Enabled bool `yaml:"enabled" default:"present"`
	// ListenAddr is where the SSH service listens when reached directly
	// (not through a reverse tunnel); zero means 0.0.0.0:3022.
	ListenAddr string `yaml:"listen_addr" check:"listen"`
	// Labels are static labels of this node.
	Labels map[string]string `yaml:"labels" check:"labels"`
	// PublicAddrs are the addresses (host or host:port) of this node.
	PublicAddrs []string `yaml:"public_addr" check:"public"`
	// SessionRecording is node (the default: recorded here) or off.
	SessionRecording string `yaml:"session_recording" check:"enum=node,off"`
}

// StaticToken is one entry of "auth_service.tokens".
type StaticToken struct {
	Roles []string // proxy, node, auth, app, db, kube; at least one
	Token Secret
}

// Roles allowed in static tokens.
var tokenRoles = []string{"auth", "proxy", "node", "app", "db", "kube"}

// Joining reports whether this instance runs a proxy or SSH service
// without a local auth service, and so must join the cluster with a token.
func (c *Config) Joining() bool {
	return (c.Proxy.Enabled || c.SSH.Enabled) && !c.Auth.Enabled
}

// AuthAddrs returns the addresses at which the services of this file
// reach the auth service: sallyport.auth_server when given, else, when the
// auth service is enabled in the same file, its listen address with an
// unspecified host replaced by the loopback address. It returns nil when
// the instance joins through a proxy.
func (c *Config) AuthAddrs() []string {
	if len(c.Common.AuthServers) > 0 {
		return append([]string(nil), c.Common.AuthServers...)
	}
	if !c.Auth.Enabled {
		return nil
	}
	host, port, err := net.SplitHostPort(c.Auth.ListenAddr)
	if err != nil {
		return nil
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return []string{net.JoinHostPort(host, port)}
}

// applyDefaults fills every zero field that has a default.
func (c *Config) applyDefaults() {
	if c.Version == "" {
		c.Version = Version
	}
	cm := &c.Common
	if cm.NodeName == "" {
		cm.NodeName = hostname()
	}
	if cm.DataDir == "" {
		cm.DataDir = DefaultDataDir
	}
	if cm.JoinParams.Method == "" {
		cm.JoinParams.Method = "token"
	}
	cm.Log.Severity = strings.ToLower(cm.Log.Severity)
	if cm.Log.Severity == "warning" {
		cm.Log.Severity = "warn"
	}
	if cm.Log.Severity == "" {
		cm.Log.Severity = "info"
	}
	if cm.Log.Format == "" {
		cm.Log.Format = "text"
	}
	st := &cm.Storage
	if st.Type == "" {
		st.Type = "sqlite"
		switch s := uriScheme(st.URI); s {
		case "sqlite", "postgres", "etcd", "memory":
			st.Type = s
		case "postgresql":
			st.Type = "postgres"
		case "":
		default:
			st.Type = "" // reported by validation
		}
	}
	if st.URI == "" {
		switch st.Type {
		case "sqlite":
			st.URI = "sqlite://" + strings.TrimSuffix(cm.DataDir, "/") + "/state.db"
		case "memory":
			st.URI = "memory://"
		}
	}
	if st.AuditSessionsURI == "" {
		st.AuditSessionsURI = "file://" + strings.TrimSuffix(cm.DataDir, "/") + "/records"
	}

	a := &c.Auth
	if a.ListenAddr == "" {
		a.ListenAddr = DefaultAuthListenAddr
	}
	if a.ClusterName == "" {
		a.ClusterName = cm.NodeName
	}
	if a.Authentication.SecondFactor == "" {
		a.Authentication.SecondFactor = "otp"
	}
	if a.KeepAliveInterval == 0 {
		a.KeepAliveInterval = 5 * time.Minute
	}
	if a.KeepAliveCountMax == 0 {
		a.KeepAliveCountMax = 3
	}

	p := &c.Proxy
	if p.WebListenAddr == "" {
		p.WebListenAddr = DefaultWebListenAddr
	}
	if p.TunnelListenAddr == "" {
		p.TunnelListenAddr = DefaultTunnelListenAddr
	}
	if p.ListenAddr == "" {
		p.ListenAddr = DefaultProxySSHAddr
	}
	if p.PeerListenAddr == "" {
		p.PeerListenAddr = DefaultPeerListenAddr
	}
	if p.ListenerMode == "" {
		p.ListenerMode = "multiplex"
	}

	s := &c.SSH
	if s.ListenAddr == "" {
		s.ListenAddr = DefaultSSHListenAddr
	}
	if s.SessionRecording == "" {
		s.SessionRecording = "node"
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" || checkName(h) != "" {
		return "localhost"
	}
	return h
}

func uriScheme(s string) string {
	i := strings.Index(s, "://")
	if i <= 0 {
		return ""
	}
	return strings.ToLower(s[:i])
}

// Level returns Severity as a slog.Level (info when unset or unknown).
func (l Log) Level() slog.Level {
	switch strings.ToLower(l.Severity) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Handler returns a slog.Handler writing to w in Format at Level.
func (l Log) Handler(w io.Writer) slog.Handler {
	opts := &slog.HandlerOptions{Level: l.Level()}
	if l.Format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}
