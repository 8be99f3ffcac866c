package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/alpn"
	"github.com/sallyport/sallyport/audit"
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
)

// Permissions extensions carrying the authenticated user to the handlers.
const (
	permUser  = "sallyport-user"
	permRoles = "sallyport-roles"
)

// checkUserCert accepts user certificates of the cluster's user CA. The
// login name at the proxy is not checked: the login that matters is the one
// asked of the node, which the node's SSH server checks.
func (s *Service) checkUserCert(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("proxy: a user certificate is required")
	}
	if cert.CertType != ssh.UserCert {
		return nil, errors.New("proxy: not a user certificate")
	}
	trusted := false
	for _, ca := range s.creds.SSHUserCAs {
		if bytes.Equal(ca.Marshal(), cert.SignatureKey.Marshal()) {
			trusted = true
			break
		}
	}
	if !trusted {
		return nil, errors.New("proxy: certificate signed by an unknown authority")
	}
	if len(cert.ValidPrincipals) == 0 {
		return nil, errors.New("proxy: certificate without principals")
	}
	if c, ok := cert.Extensions[extCluster]; ok && c != s.creds.Cluster {
		return nil, errors.New("proxy: certificate of another cluster")
	}
	checker := &ssh.CertChecker{}
	// CheckCert verifies validity and signature; the principal is the
	// certificate's own (see above).
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return &ssh.Permissions{Extensions: map[string]string{
		permUser:  cert.KeyId,
		permRoles: cert.Extensions[extRoles],
	}}, nil
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
	c.SetDeadline(time.Now().Add(sshHandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.sshConf)
	if err != nil {
		s.log.Debug("proxy: ssh handshake failed", "client", c.RemoteAddr(), "err", err)
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
		io.Copy(c, ch)
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
