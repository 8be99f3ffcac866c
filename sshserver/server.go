package sshserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/internal/netutil"
	"github.com/sallyport/sallyport/internal/sshutil"
)

// Certificate extensions and critical options this package reads.
const (
	// ExtRoles is the user-certificate extension that carries the user's
	// cluster roles, comma separated ("admin,dev"). AccessRequest.Roles
	// holds them parsed, for Authorize hooks that check roles.
	ExtRoles = "sallyport-roles@sallyport"
	// ExtCluster is the certificate extension that names the cluster that
	// issued the certificate. When Config.ClusterName is set, a user
	// certificate that carries ExtCluster with another value is refused.
	ExtCluster = "sallyport-cluster@sallyport"
	// ExtPermitPTY must be present for a session to get a terminal.
	ExtPermitPTY = "permit-pty"
	// ExtPermitPortForwarding must be present for direct-tcpip (ssh -L,
	// ssh -W, ProxyJump through the node) to be allowed.
	ExtPermitPortForwarding = "permit-port-forwarding"
	// OptForceCommand is the critical option that replaces every command
	// the client asks for (shell, exec, subsystem) with its value.
	OptForceCommand = "force-command"
	// OptSourceAddress is the critical option that lists the client
	// addresses (comma-separated CIDRs or IPs) the certificate may be
	// used from.
	OptSourceAddress = "source-address"
)

// Default values of Config fields.
const (
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultKeepAliveInterval = 30 * time.Second
	DefaultKeepAliveCountMax = 3
	DefaultSFTPServer        = "/usr/lib/openssh/sftp-server"
	// InternalSFTP as Config.SFTPServer serves SFTP in process.
	InternalSFTP = "internal-sftp"
)

// Errors. Authentication refusals are returned to the x/crypto/ssh
// handshake wrapped in an *AuthError and reported through Config.Audit and
// Config.Logger; the client only learns that the key was not accepted.
var (
	ErrServerClosed = errors.New("sshserver: server closed")
	ErrConfig       = errors.New("sshserver: invalid config")

	ErrNotCertificate   = errors.New("sshserver: plain public keys are not accepted, a user certificate is required")
	ErrNotUserCert      = errors.New("sshserver: certificate is not a user certificate")
	ErrUnknownAuthority = errors.New("sshserver: certificate signed by an unknown authority")
	ErrLoginNotAllowed  = errors.New("sshserver: login not in the certificate's principals")
	ErrCertExpired      = errors.New("sshserver: certificate has expired")
	ErrCertNotYetValid  = errors.New("sshserver: certificate is not yet valid")
	ErrCriticalOption   = errors.New("sshserver: unsupported critical option")
	ErrSourceAddress    = errors.New("sshserver: client address not allowed by source-address")
	ErrClusterMismatch  = errors.New("sshserver: certificate issued for another cluster")
	ErrBadCertificate   = errors.New("sshserver: certificate is invalid")
	ErrUnknownLogin     = errors.New("sshserver: login does not exist on this node")

	ErrAccessDenied = errors.New("sshserver: access denied")
)

// AuthError is an authentication refusal: who tried which login from where
// and why (Err, one of the sentinels above). It carries no key material.
type AuthError struct {
	User       string // the certificate's key ID; empty for a plain key
	Login      string
	RemoteAddr string
	Err        error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("sshserver: refused %q as login %q from %s: %v", e.User, e.Login, e.RemoteAddr, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// Config configures a Server. HostKey and UserCAs are required; the zero
// value of every other field means the documented default. A Config must
// not be modified after New.
type Config struct {
	// HostKey is the node's private host key (required).
	HostKey ssh.Signer
	// HostCert is HostKey's host certificate, signed by the cluster's host
	// CA, so that clients that trust the CA (known_hosts
	// "@cert-authority") verify the node without a per-host entry. The
	// plain host key is offered as well for clients that do not use
	// certificates. Nil offers the plain host key only.
	HostCert *ssh.Certificate
	// UserCAs are the public keys of the user certificate authorities whose
	// certificates are accepted (required, at least one).
	UserCAs []ssh.PublicKey
	// ClusterName is the cluster this node belongs to. When set, user
	// certificates carrying the ExtCluster extension must name it. Zero
	// skips the check.
	ClusterName string
	// NodeName names this node in audit events, access requests and
	// recordings. Zero means os.Hostname.
	NodeName string
	// Labels are the node's labels, passed to Authorize. Nil means none.
	Labels map[string]string
	// Logger receives the server's log. Nil discards.
	Logger *slog.Logger

	// Authorize decides every action of an authenticated user (see
	// AccessRequest). It runs after the built-in certificate checks
	// (CheckCertificatePermissions), which it cannot loosen. A non-nil
	// error refuses the action; the client sees a generic refusal, the
	// error goes to the log and the audit event. Nil allows whatever the
	// certificate permits.
	Authorize func(ctx context.Context, req AccessRequest) error
	// Audit receives the audit events (see Event). It is called
	// synchronously from the connection's goroutines and should not block.
	// Nil drops them.
	Audit func(ctx context.Context, ev Event)
	// Recorder, when set, is called for every session that has a terminal;
	// the session's terminal output is copied into the returned Recording
	// and window changes are passed to its Resize. If Recorder fails the
	// session is refused (recording is mandatory once configured). Nil
	// records nothing.
	Recorder func(ctx context.Context, info SessionInfo) (Recording, error)

	// Ciphers are the SSH ciphers offered, in order of preference (the
	// client's order decides among them). Nil means AES only, GCM then
	// CTR: OpenSSH clients pick chacha20-poly1305 when it is offered,
	// which x/crypto implements without assembly on amd64 at a fraction
	// of AES's speed. With nil, a client whose KEXINIT offers AES-GCM
	// is offered AES-GCM only, since OpenSSH would otherwise pick AES-CTR
	// with an HMAC, the slower of the two; other clients get the whole
	// list. A list set here is offered as is.
	Ciphers []string

	// AcceptEnv lists the environment variables a client may set with
	// "env" requests, in addition to TERM, LANG and LC_*. A trailing "*"
	// matches any suffix. Nil means only the defaults.
	AcceptEnv []string
	// Shell replaces the login's shell from /etc/passwd. Zero means the
	// passwd shell, or /bin/sh when that is empty.
	Shell string
	// SFTPServer is the sftp-server program run (as the login user) for
	// the "sftp" subsystem. InternalSFTP serves SFTP in process
	// (github.com/pkg/sftp), which is only possible when the session runs
	// as the server's own user (it is refused otherwise). Zero means
	// DefaultSFTPServer when it exists, else InternalSFTP.
	SFTPServer string
	// PortForwardDialer dials direct-tcpip targets. Nil means a
	// net.Dialer with a 10s timeout.
	PortForwardDialer interface {
		DialContext(ctx context.Context, network, address string) (net.Conn, error)
	}

	// HandshakeTimeout bounds the SSH handshake and authentication. Zero
	// means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection when none of its channels carried
	// data for this long. Zero means no idle timeout.
	IdleTimeout time.Duration
	// KeepAliveInterval is how often the server sends a
	// keepalive@openssh.com request; after KeepAliveCountMax unanswered
	// ones the connection is closed. Zero means DefaultKeepAliveInterval;
	// negative disables keepalives.
	KeepAliveInterval time.Duration
	// KeepAliveCountMax is described at KeepAliveInterval. Zero means
	// DefaultKeepAliveCountMax.
	KeepAliveCountMax int
	// KillGrace is how long a command gets after SIGHUP, when its
	// connection goes away, before it is killed. Zero means 2s.
	KillGrace time.Duration
}

// Recording receives a copy of a session's terminal output. It matches
// *recorder.Recording, so a recorder.Spool plugs in directly:
//
//	Recorder: func(ctx context.Context, s sshserver.SessionInfo) (sshserver.Recording, error) {
//		return spool.NewSession(ctx, recorder.Meta{ID: s.ID, User: s.User, Login: s.Login,
//			Node: s.Node, Remote: s.RemoteAddr, Command: s.Command, Start: s.Start,
//			Width: s.Width, Height: s.Height, Term: s.Term})
//	}
//
// When the hook returns a non-nil error its Recording is ignored (so a nil
// *recorder.Recording in a non-nil interface is harmless).
type Recording interface {
	io.Writer
	// Resize records a window change to width columns and height rows.
	Resize(width, height int) error
	// Close ends the recording; it is called once, after the session's
	// last output.
	Close() error
}

// SessionInfo describes a session for the Recorder hook.
type SessionInfo struct {
	ID         string    // the session ID, also in the session's audit events
	User       string    // the certificate's key ID
	Login      string    // the OS login
	Node       string    // Config.NodeName
	RemoteAddr string    // the client's address
	Command    string    // the command, empty for an interactive shell
	Start      time.Time // when the session started
	Width      int       // terminal columns
	Height     int       // terminal rows
	Term       string    // TERM from the pty request
}

// Server is an SSH server for a node. Create it with New; serve
// connections with Serve or ServeConn; stop it with Shutdown or Close.
type Server struct {
	cfg    Config
	log    *slog.Logger
	sshCfg *ssh.ServerConfig
	// preferGCM: Config.Ciphers was nil (see sshutil.PreferGCM).
	preferGCM bool
	checker   *ssh.CertChecker
	node      string
	uid       int
	dialer    interface {
		DialContext(ctx context.Context, network, address string) (net.Conn, error)
	}

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closed    bool
	shutting  bool
	wg        sync.WaitGroup // Serve accept loops and connections
	idle      chan struct{}  // closed and replaced when a connection ends
	closeOnce atomic.Bool
}

// New validates cfg and returns a Server. It does not listen.
func New(cfg *Config) (*Server, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: HostKey and UserCAs are required", ErrConfig)
	}
	c := *cfg
	if c.HostKey == nil {
		return nil, fmt.Errorf("%w: HostKey is required", ErrConfig)
	}
	if len(c.UserCAs) == 0 {
		return nil, fmt.Errorf("%w: at least one user CA is required", ErrConfig)
	}
	for i, ca := range c.UserCAs {
		if ca == nil {
			return nil, fmt.Errorf("%w: UserCAs[%d] is nil", ErrConfig, i)
		}
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.KeepAliveInterval == 0 {
		c.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if c.KeepAliveCountMax <= 0 {
		c.KeepAliveCountMax = DefaultKeepAliveCountMax
	}
	if c.KillGrace <= 0 {
		c.KillGrace = 2 * time.Second
	}
	if c.HandshakeTimeout < 0 || c.IdleTimeout < 0 {
		return nil, fmt.Errorf("%w: negative timeout", ErrConfig)
	}
	s := &Server{
		cfg:       c,
		log:       c.Logger,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*serverConn]struct{}{},
		idle:      make(chan struct{}),
		uid:       os.Geteuid(),
		dialer:    c.PortForwardDialer,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.dialer == nil {
		s.dialer = &net.Dialer{Timeout: 10 * time.Second}
	}
	s.node = c.NodeName
	if s.node == "" {
		s.node, _ = os.Hostname()
	}
	s.checker = &ssh.CertChecker{
		IsUserAuthority:          s.isUserAuthority,
		SupportedCriticalOptions: []string{OptForceCommand, OptSourceAddress},
	}
	if err := sshutil.CheckCiphers(c.Ciphers); err != nil {
		return nil, fmt.Errorf("%w: Ciphers: %w", ErrConfig, err)
	}
	var ciphers []string
	ciphers, s.preferGCM = sshutil.ServerCiphers(c.Ciphers)
	s.sshCfg = &ssh.ServerConfig{ServerVersion: "SSH-2.0-sallyport", Config: ssh.Config{Ciphers: ciphers}}
	if c.HostCert != nil {
		if c.HostCert.CertType != ssh.HostCert {
			return nil, fmt.Errorf("%w: HostCert is not a host certificate", ErrConfig)
		}
		if !keysEqual(c.HostCert.Key, c.HostKey.PublicKey()) {
			return nil, fmt.Errorf("%w: HostCert does not certify HostKey", ErrConfig)
		}
		cs, err := ssh.NewCertSigner(c.HostCert, c.HostKey)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		s.sshCfg.AddHostKey(cs)
	}
	s.sshCfg.AddHostKey(c.HostKey)
	return s, nil
}

func keysEqual(a, b ssh.PublicKey) bool {
	return a != nil && b != nil && string(a.Marshal()) == string(b.Marshal())
}

func (s *Server) isUserAuthority(auth ssh.PublicKey) bool {
	for _, ca := range s.cfg.UserCAs {
		if keysEqual(ca, auth) {
			return true
		}
	}
	return false
}

// Serve accepts connections on l and serves each in its own goroutine
// until l fails or the server is shut down. It always returns a non-nil
// error: ErrServerClosed after Shutdown or Close. Serve closes l when it
// returns.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed || s.shutting {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff netutil.AcceptBackoff
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if delay, ok := backoff.Retry(err); ok {
				s.log.Warn("sshserver: accept", "err", err, "retry", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		backoff.Reset()
		s.mu.Lock()
		if s.closed || s.shutting {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveAccepted(c)
	}
}

func (s *Server) serveAccepted(c net.Conn) {
	defer s.wg.Done()
	s.serveConn(context.Background(), c)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || s.shutting
}

// ServeConn serves one connection (for example a reverse-tunnel stream,
// whose RemoteAddr is the original client's address) and returns when it
// ends. Canceling ctx closes the connection, ending its sessions. It
// returns nil when the client disconnected after authenticating, an
// *AuthError when authentication failed, and ErrServerClosed when the
// server is shutting down. ServeConn closes c.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	s.mu.Lock()
	if s.closed || s.shutting {
		s.mu.Unlock()
		c.Close()
		return ErrServerClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	return s.serveConn(ctx, c)
}

// Shutdown stops accepting connections and new sessions, closes
// connections that have no open channel, and waits until the remaining
// sessions end or ctx is done; then it closes everything that is left
// (as Close) and returns ctx's error, or nil when all sessions ended on
// their own.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("sshserver: shutdown: %w", net.ErrClosed)
	}
	s.shutting = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		n := len(s.conns)
		idle := s.idle
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-idle:
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		}
	}
	return s.Close()
}

// Close closes the listeners and every connection at once (running
// commands get SIGHUP, then SIGKILL after Config.KillGrace) and waits for
// the server's goroutines. A second Close returns an error wrapping
// net.ErrClosed.
func (s *Server) Close() error {
	if s.closeOnce.Swap(true) {
		return fmt.Errorf("sshserver: close: %w", net.ErrClosed)
	}
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.netConn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) addConn(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.shutting {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) removeConn(c *serverConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	close(s.idle)
	s.idle = make(chan struct{})
}

func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutting || s.closed
}

func (s *Server) audit(ctx context.Context, ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.Node == "" {
		ev.Node = s.node
	}
	if s.cfg.Audit != nil {
		s.cfg.Audit(ctx, ev)
	}
}

// newID returns a random UUID (version 4) string.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
