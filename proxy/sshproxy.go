package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/alpn"
	"github.com/sallyport/sallyport/audit"
	"github.com/sallyport/sallyport/internal/netutil"
	"github.com/sallyport/sallyport/internal/sshutil"
	"github.com/sallyport/sallyport/tunnel"
)

// SSH certificate extensions the proxy reads (set by the Auth Service).
const (
	extRoles   = "sallyport-roles@sallyport"
	extCluster = "sallyport-cluster@sallyport"
)

// SubsystemPrefix starts the name of the proxy's SSH subsystem that
// connects the session to a node: "proxy:<node>:<port>" (the port is
// ignored), used by a ProxyCommand of the form
// "ssh -p 3023 proxy -s proxy:%h:%p".
const SubsystemPrefix = "proxy:"

const (
	sshHandshakeTimeout = 10 * time.Second
	// A client that answers none of sshKeepAliveCount keepalive requests
	// sent every sshKeepAliveInterval is disconnected.
	sshKeepAliveInterval = 30 * time.Second
	sshKeepAliveCount    = 3
	// At most maxAuthFailures refused keys of a connection are kept for
	// its audit event.
	maxAuthFailures = 8
)

// Permissions extensions carrying the authenticated user to the handlers.
const (
	permUser  = "sallyport-user"
	permRoles = "sallyport-roles"
)

// authFailure is a key the proxy's SSH server refused.
type authFailure struct {
	user   string // the certificate's key ID; empty when key is no certificate
	login  string // the login name given to the proxy
	reason error
}

// checkUserCert accepts user certificates of the cluster's user CA. The
// login name at the proxy is not checked: the login that matters is the one
// asked of the node, which the node's SSH server checks. A refused
// certificate is reported to the client in an authentication banner.
func (s *Service) checkUserCert(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, *authFailure, error) {
	cert, err := s.verifyUserCert(key)
	if err == nil {
		return &ssh.Permissions{Extensions: map[string]string{
			permUser:  cert.KeyId,
			permRoles: cert.Extensions[extRoles],
		}}, nil, nil
	}
	f := &authFailure{login: meta.User(), reason: err}
	attrs := []any{"login", f.login, "client", meta.RemoteAddr(), "reason", err, "key", ssh.FingerprintSHA256(key)}
	if cert != nil {
		f.user = cert.KeyId
		attrs = append(attrs, "user", cert.KeyId, "serial", cert.Serial, "ca", ssh.FingerprintSHA256(cert.SignatureKey))
	}
	s.log.Info("proxy: ssh authentication refused", attrs...)
	if cert == nil {
		// Clients offer every key they hold; only certificates get an
		// explanation.
		return nil, f, err
	}
	return nil, f, &ssh.BannerError{Err: err, Message: "sallyport proxy: access denied: " + strings.TrimPrefix(err.Error(), "proxy: ") + "\n"}
}

// verifyUserCert checks key as a user certificate of this cluster. It
// returns the certificate (when key is one) even on failure.
func (s *Service) verifyUserCert(key ssh.PublicKey) (*ssh.Certificate, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("proxy: a user certificate is required")
	}
	if cert.CertType != ssh.UserCert {
		return cert, errors.New("proxy: not a user certificate")
	}
	trusted := false
	for _, ca := range s.creds.SSHUserCAs {
		if bytes.Equal(ca.Marshal(), cert.SignatureKey.Marshal()) {
			trusted = true
			break
		}
	}
	if !trusted {
		if c := cert.Extensions[extCluster]; c != "" && c != s.creds.Cluster {
			return cert, fmt.Errorf("proxy: certificate of another cluster (%q, this is %q)", c, s.creds.Cluster)
		}
		return cert, fmt.Errorf("proxy: certificate not signed by the user CA of cluster %q", s.creds.Cluster)
	}
	if len(cert.ValidPrincipals) == 0 {
		return cert, errors.New("proxy: certificate without principals")
	}
	if c, ok := cert.Extensions[extCluster]; ok && c != s.creds.Cluster {
		return cert, fmt.Errorf("proxy: certificate of another cluster (%q, this is %q)", c, s.creds.Cluster)
	}
	// The signature first, with a clock inside the validity period, so
	// that the validity reported below is the CA's and not a forger's.
	checker := &ssh.CertChecker{Clock: func() time.Time { return time.Unix(int64(min(cert.ValidAfter, math.MaxInt64)), 0) }}
	// The principal is the certificate's own (see checkUserCert).
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return cert, fmt.Errorf("proxy: %w", err)
	}
	now := uint64(time.Now().Unix())
	if cert.ValidBefore != ssh.CertTimeInfinity && now >= cert.ValidBefore {
		return cert, fmt.Errorf("proxy: certificate expired at %s; log in again", certTime(cert.ValidBefore))
	}
	if now < cert.ValidAfter {
		return cert, fmt.Errorf("proxy: certificate not valid before %s", certTime(cert.ValidAfter))
	}
	return cert, nil
}

// certTime formats a certificate's validity bound.
func certTime(t uint64) string {
	return time.Unix(int64(min(t, math.MaxInt64)), 0).UTC().Format(time.RFC3339)
}

// auditAuthFailures records a connection whose authentication failed as
// one access.denied event (event=auth.failure) naming every refused key.
func (s *Service) auditAuthFailures(client net.Addr, failures []*authFailure) {
	if len(failures) == 0 {
		return
	}
	user, login := "", failures[0].login
	var reasons []string
	for _, f := range failures {
		if user == "" {
			user = f.user
		}
		if r := f.reason.Error(); !slices.Contains(reasons, r) {
			reasons = append(reasons, r)
		}
	}
	src := ""
	if client != nil {
		src = client.String()
	}
	s.emit(audit.Event{Type: audit.TypeAccessDenied, Actor: user, Source: src, Fields: map[string]string{
		"event": "auth.failure", "login": login, "reason": strings.Join(reasons, "; "), "via": "ssh-proxy",
	}})
}

func (s *Service) acceptSSH(ctx context.Context, l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if !s.trackConn(c, true) {
			c.Close()
			return
		}
		go func() {
			defer s.trackConn(c, false)
			s.serveSSH(ctx, c)
		}()
	}
}

// trackConn adds (or removes) an SSH connection; it refuses to add after
// Close.
func (s *Service) trackConn(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.sshConns, c)
		s.connWG.Done()
		return true
	}
	if s.closed {
		return false
	}
	s.sshConns[c] = struct{}{}
	s.connWG.Add(1)
	return true
}

// serveSSHConn serves SSH arriving on the sallyport-proxy-ssh ALPN route.
func (s *Service) serveSSHConn(ctx context.Context, c net.Conn, _ *alpn.Hello) {
	if !s.trackConn(c, true) {
		c.Close()
		return
	}
	defer s.trackConn(c, false)
	s.serveSSH(ctx, c)
}

func (s *Service) serveSSH(ctx context.Context, c net.Conn) {
	defer c.Close()
	deadline := time.Now().Add(sshHandshakeTimeout)
	c.SetDeadline(deadline)
	// A copy of the configuration per connection collects the refused
	// keys (the callback runs on this goroutine, within NewServerConn).
	var failures []*authFailure
	conf := *s.sshConf
	conf.PublicKeyCallback = func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		perms, f, err := s.checkUserCert(meta, key)
		if f != nil && len(failures) < maxAuthFailures {
			failures = append(failures, f)
		}
		return perms, err
	}
	sc, chans, reqs, err := sshutil.NewServerConn(c, &conf, deadline, s.preferGCM)
	if err != nil {
		s.log.Debug("proxy: ssh handshake failed", "client", c.RemoteAddr(), "err", err)
		s.auditAuthFailures(c.RemoteAddr(), failures)
		return
	}
	c.SetDeadline(time.Time{})
	defer sc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		sc.Close()
	}()
	go ssh.DiscardRequests(reqs)
	u := sshUser{
		name:   sc.Permissions.Extensions[permUser],
		roles:  splitRoles(sc.Permissions.Extensions[permRoles]),
		client: sc.RemoteAddr(),
	}
	var wg sync.WaitGroup
	defer func() {
		// The channels ended with the connection; stop the keepalives.
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.keepAlive(ctx, sc)
	}()
	for nc := range chans {
		switch nc.ChannelType() {
		case "direct-tcpip":
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.handleDirectTCPIP(ctx, u, nc)
			}()
		case "session":
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.handleSession(ctx, u, nc)
			}()
		default:
			nc.Reject(ssh.UnknownChannelType, "the proxy serves direct-tcpip and the proxy: subsystem only")
		}
	}
}

// keepAlive closes sc when the client stops answering keepalive requests
// (a vanished client would otherwise hold its jump connection open).
func (s *Service) keepAlive(ctx context.Context, sc *ssh.ServerConn) {
	t := time.NewTicker(sshKeepAliveInterval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := sc.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				return // connection gone
			}
			missed = 0
			continue
		case <-ctx.Done():
			return
		case <-time.After(sshKeepAliveInterval):
		}
		if missed++; missed >= sshKeepAliveCount {
			s.log.Info("proxy: ssh client stopped answering keepalives", "client", sc.RemoteAddr())
			sc.Close()
			return
		}
	}
}

type sshUser struct {
	name   string
	roles  []string
	client net.Addr
}

func splitRoles(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

func (s *Service) handleDirectTCPIP(ctx context.Context, u sshUser, nc ssh.NewChannel) {
	var target struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &target); err != nil {
		nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	conn, err := s.DialNode(ctx, u.name, u.roles, target.Host, u.client)
	if err != nil {
		reason := ssh.ConnectionFailed
		if errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrNodeNotFound) {
			reason = ssh.Prohibited
		}
		nc.Reject(reason, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	defer ch.Close()
	pipe(ctx, ch, conn)
}

// handleSession serves a session channel: only the "proxy:<node>:<port>"
// subsystem is offered; shells and commands get an explanation.
func (s *Service) handleSession(ctx context.Context, u sshUser, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	exit := func(code uint32) {
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{code}))
	}
	for req := range reqs {
		switch req.Type {
		case "subsystem":
			var p struct{ Name string }
			if ssh.Unmarshal(req.Payload, &p) != nil || !strings.HasPrefix(p.Name, SubsystemPrefix) {
				req.Reply(false, nil)
				continue
			}
			host := strings.TrimPrefix(p.Name, SubsystemPrefix)
			if i := strings.LastIndexByte(host, ':'); i >= 0 {
				if _, err := strconv.ParseUint(host[i+1:], 10, 16); err == nil {
					host = host[:i]
				}
			}
			host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
			conn, err := s.DialNode(ctx, u.name, u.roles, host, u.client)
			if err != nil {
				fmt.Fprintf(ch.Stderr(), "sallyport proxy: %v\r\n", err)
				req.Reply(true, nil)
				exit(1)
				return
			}
			req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			pipe(ctx, ch, conn)
			exit(0)
			return
		case "shell", "exec":
			req.Reply(true, nil)
			fmt.Fprintf(ch.Stderr(), "sallyport proxy: this is a jump host; connect to a node with ssh -J or the %s<node>:<port> subsystem\r\n", SubsystemPrefix)
			exit(1)
			return
		default:
			req.Reply(false, nil)
		}
	}
}

// DialNode opens a connection to the SSH service of the node named host
// (node name or host ID, optionally followed by ".<cluster>") on behalf of
// user with roles, from client: through the node's reverse tunnel, or
// directly when the node registered a direct address. It fails with
// ErrNodeNotFound, ErrAccessDenied (the roles match none of the node's
// labels; audited) or ErrNodeOffline.
func (s *Service) DialNode(ctx context.Context, user string, roles []string, host string, client net.Addr) (net.Conn, error) {
	src := ""
	if client != nil {
		src = client.String()
	}
	deny := func(err error) (net.Conn, error) {
		s.emit(audit.Event{Type: audit.TypeAccessDenied, Actor: user, Source: src, Fields: map[string]string{"node": host, "reason": err.Error(), "via": "ssh-proxy"}})
		return nil, err
	}
	node, ok := s.cache.find(host, s.creds.Cluster)
	if !ok {
		return deny(fmt.Errorf("%w: %q", ErrNodeNotFound, host))
	}
	if !s.nodeAllowed(roles, node.Labels) {
		// A role may be newer than the cache: reload once (at most every
		// second) before refusing.
		s.mu.Lock()
		stale := time.Since(s.rolesErr) > time.Second
		if stale {
			s.rolesErr = time.Now()
		}
		s.mu.Unlock()
		if !stale || s.loadRoles(ctx) != nil || !s.nodeAllowed(roles, node.Labels) {
			return deny(fmt.Errorf("%w: your roles do not allow node %q", ErrAccessDenied, host))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	conn, err := s.tunnels.DialFrom(ctx, node.HostID, "ssh", client)
	path := "tunnel"
	if errors.Is(err, tunnel.ErrAgentNotFound) {
		path = "direct"
		err = fmt.Errorf("%w: %q has no tunnel to this proxy and no direct address", ErrNodeOffline, host)
		for _, addr := range node.Addrs {
			var c net.Conn
			c, err = s.cfg.DirectDialer.DialContext(ctx, "tcp", addr)
			if err == nil {
				return s.granted(user, src, host, node, path, c)
			}
			err = fmt.Errorf("%w: %q: %v", ErrNodeOffline, host, err)
		}
	}
	if err != nil {
		s.log.Info("proxy: dial node failed", "node", host, "err", err)
		if !errors.Is(err, ErrNodeOffline) {
			err = fmt.Errorf("%w: %q: %v", ErrNodeOffline, host, err)
		}
		return nil, err
	}
	return s.granted(user, src, host, node, path, conn)
}

func (s *Service) granted(user, src, host string, node Node, path string, c net.Conn) (net.Conn, error) {
	s.emit(audit.Event{Type: audit.TypeAccessGranted, Actor: user, Source: src, Success: true,
		Fields: map[string]string{"node": host, "host_id": node.HostID, "path": path, "via": "ssh-proxy"}})
	return c, nil
}

type closeWriter interface{ CloseWrite() error }

// pipe copies both ways until both directions end or ctx is done, then
// closes c. The caller closes ch (after sending an exit status, if any).
func pipe(ctx context.Context, ch ssh.Channel, c net.Conn) {
	done := make(chan struct{}, 2)
	go func() {
		netutil.Copy(c, ch)
		if cw, ok := c.(closeWriter); ok {
			cw.CloseWrite()
		} else {
			c.Close()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(ch, c)
		ch.CloseWrite()
		done <- struct{}{}
	}()
	left := 2
	for left > 0 {
		select {
		case <-done:
			left--
		case <-ctx.Done():
			c.Close()
			ch.Close()
			for ; left > 0; left-- {
				<-done
			}
		}
	}
	c.Close()
}
