package sshserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Action is what an authenticated user asks to do.
type Action string

// Actions passed to Config.Authorize.
const (
	ActionShell       Action = "shell"
	ActionExec        Action = "exec"
	ActionSubsystem   Action = "subsystem"
	ActionPortForward Action = "port-forward"
)

// AccessRequest is what Config.Authorize decides on: who (from the
// verified user certificate), as which login, on which node, wants to do
// what.
type AccessRequest struct {
	// User is the certificate's key ID (the cluster user name).
	User string
	// Login is the OS login requested; it is one of Principals.
	Login string
	// Principals are the certificate's valid principals.
	Principals []string
	// Roles are the roles from the ExtRoles extension (nil when absent).
	Roles []string
	// Extensions and CriticalOptions are the certificate's, unmodified.
	Extensions      map[string]string
	CriticalOptions map[string]string
	// CertSerial is the certificate's serial number.
	CertSerial uint64
	// RemoteAddr is the client's address.
	RemoteAddr string
	// Node and Labels describe this node (Config.NodeName, Config.Labels).
	Node   string
	Labels map[string]string
	// Action is what is asked for.
	Action Action
	// PTY reports whether the session has a terminal (shell, exec).
	PTY bool
	// Command is the command for ActionExec, the subsystem name for
	// ActionSubsystem, and empty otherwise. With a force-command critical
	// option it is the forced command.
	Command string
	// Target is the "host:port" of ActionPortForward.
	Target string
	// SessionID is the session's ID (empty for ActionPortForward).
	SessionID string
}

// CheckCertificatePermissions is the built-in check that runs before
// Config.Authorize: a terminal needs the permit-pty extension and port
// forwarding needs permit-port-forwarding, as in OpenSSH. It returns an
// error wrapping ErrAccessDenied.
func CheckCertificatePermissions(req AccessRequest) error {
	if req.PTY {
		if _, ok := req.Extensions[ExtPermitPTY]; !ok {
			return fmt.Errorf("%w: certificate lacks %s", ErrAccessDenied, ExtPermitPTY)
		}
	}
	if req.Action == ActionPortForward {
		if _, ok := req.Extensions[ExtPermitPortForwarding]; !ok {
			return fmt.Errorf("%w: certificate lacks %s", ErrAccessDenied, ExtPermitPortForwarding)
		}
	}
	return nil
}

// EventType names an audit event.
type EventType string

// Audit event types.
const (
	// EventAuthFailure: a login was refused (Event.Reason says why).
	EventAuthFailure EventType = "auth.failure"
	// EventSessionStart: a session began running a shell, command or
	// subsystem.
	EventSessionStart EventType = "session.start"
	// EventExec: a session runs a command (Event.Command).
	EventExec EventType = "exec"
	// EventSessionEnd: a session ended (Event.ExitCode, Event.ExitSignal).
	EventSessionEnd EventType = "session.end"
	// EventPortForward: a direct-tcpip channel was opened to Event.Target.
	EventPortForward EventType = "port-forward"
	// EventAccessDenied: an authenticated user's action was refused by
	// the certificate checks or Config.Authorize (Event.Action,
	// Event.Reason).
	EventAccessDenied EventType = "access.denied"
)

// Event is an audit event.
type Event struct {
	Type       EventType
	Time       time.Time
	User       string // certificate key ID
	Login      string
	RemoteAddr string // the client's address (the conn's RemoteAddr)
	Node       string
	SessionID  string
	Action     Action
	Command    string // exec command or subsystem name
	Target     string // port-forward target host:port
	PTY        bool
	ExitCode   int    // session.end: the exit status; -1 when killed by a signal or unknown
	ExitSignal string // session.end: the signal name ("KILL") when killed by one
	Reason     string // auth.failure, access.denied: why
}

type certKey struct{}

// publicKeyCallback authenticates user certificates. Every refusal is
// logged and audited with its reason.
func (s *Server) publicKeyCallback(ctx context.Context, meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	login := meta.User()
	remote := addrString(meta.RemoteAddr())
	cert, err := s.checkUserCert(login, key, meta.RemoteAddr())
	if err != nil {
		user := ""
		if cert != nil {
			user = cert.KeyId
		}
		ae := &AuthError{User: user, Login: login, RemoteAddr: remote, Err: err}
		attrs := []any{"user", user, "login", login, "remote", remote, "reason", err, "key", ssh.FingerprintSHA256(key)}
		if cert != nil {
			attrs = append(attrs, "serial", cert.Serial, "ca", ssh.FingerprintSHA256(cert.SignatureKey))
		}
		s.log.Info("sshserver: authentication refused", attrs...)
		s.audit(ctx, Event{Type: EventAuthFailure, User: user, Login: login, RemoteAddr: remote, Reason: err.Error()})
		return nil, ae
	}
	return &ssh.Permissions{
		CriticalOptions: cert.CriticalOptions,
		Extensions:      cert.Extensions,
		ExtraData:       map[any]any{certKey{}: cert},
	}, nil
}

// checkUserCert checks key as a user certificate for login. It returns the
// certificate (when key is one) even on failure, for the log.
func (s *Server) checkUserCert(login string, key ssh.PublicKey, remote net.Addr) (*ssh.Certificate, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, ErrNotCertificate
	}
	if cert.CertType != ssh.UserCert {
		return cert, ErrNotUserCert
	}
	if !s.isUserAuthority(cert.SignatureKey) {
		return cert, ErrUnknownAuthority
	}
	if err := s.checker.CheckCert(login, cert); err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "principal"):
			return cert, ErrLoginNotAllowed
		case strings.Contains(msg, "expired"):
			return cert, ErrCertExpired
		case strings.Contains(msg, "not yet valid"):
			return cert, ErrCertNotYetValid
		case strings.Contains(msg, "critical option"):
			return cert, ErrCriticalOption
		default:
			return cert, ErrBadCertificate
		}
	}
	// CheckCert accepts a certificate with no principals for any login;
	// require an explicit grant.
	if len(cert.ValidPrincipals) == 0 {
		return cert, ErrLoginNotAllowed
	}
	if s.cfg.ClusterName != "" {
		if c, ok := cert.Extensions[ExtCluster]; ok && c != s.cfg.ClusterName {
			return cert, ErrClusterMismatch
		}
	}
	if sa, ok := cert.CriticalOptions[OptSourceAddress]; ok {
		if err := checkSourceAddress(remote, sa); err != nil {
			return cert, err
		}
	}
	if _, err := s.lookupLogin(login); err != nil {
		return cert, ErrUnknownLogin
	}
	return cert, nil
}

// checkSourceAddress reports whether addr matches one of the
// comma-separated CIDRs or addresses in list.
func checkSourceAddress(addr net.Addr, list string) error {
	ap, err := netip.ParseAddrPort(addrString(addr))
	if err != nil {
		return ErrSourceAddress
	}
	ip := ap.Addr().Unmap()
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if p, err := netip.ParsePrefix(item); err == nil {
			if p.Contains(ip) {
				return nil
			}
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil && a.Unmap() == ip {
			return nil
		}
	}
	return ErrSourceAddress
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// parseRoles splits the ExtRoles value.
func parseRoles(v string) []string {
	var out []string
	for _, r := range strings.Split(v, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// authorize runs the built-in checks and Config.Authorize, auditing a
// refusal.
func (c *serverConn) authorize(ctx context.Context, req AccessRequest) error {
	req.User = c.cert.KeyId
	req.Login = c.login
	req.Principals = c.cert.ValidPrincipals
	req.Roles = parseRoles(c.cert.Extensions[ExtRoles])
	req.Extensions = c.cert.Extensions
	req.CriticalOptions = c.cert.CriticalOptions
	req.CertSerial = c.cert.Serial
	req.RemoteAddr = c.remote
	req.Node = c.srv.node
	req.Labels = c.srv.cfg.Labels
	err := CheckCertificatePermissions(req)
	if err == nil && c.srv.cfg.Authorize != nil {
		if err = c.srv.cfg.Authorize(ctx, req); err != nil && !errors.Is(err, ErrAccessDenied) {
			err = fmt.Errorf("%w: %w", ErrAccessDenied, err)
		}
	}
	if err != nil {
		c.srv.log.Info("sshserver: access denied", "user", req.User, "login", req.Login, "remote", req.RemoteAddr,
			"action", req.Action, "command", req.Command, "target", req.Target, "reason", err)
		c.srv.audit(ctx, Event{Type: EventAccessDenied, User: req.User, Login: req.Login, RemoteAddr: req.RemoteAddr,
			SessionID: req.SessionID, Action: req.Action, Command: req.Command, Target: req.Target, PTY: req.PTY, Reason: err.Error()})
	}
	return err
}
