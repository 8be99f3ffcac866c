package sshserver

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/internal/sshutil"
)

// serverConn is one authenticated SSH connection.
type serverConn struct {
	srv     *Server
	netConn net.Conn
	sconn   *ssh.ServerConn
	cert    *ssh.Certificate
	login   string
	remote  string
	user    *osUser

	mu       sync.Mutex
	channels int

	lastActive atomic.Int64 // unix nanos of the last channel data
	wg         sync.WaitGroup
}

func (c *serverConn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// closeIfIdle closes the connection when it has no open channel. Called
// with srv.mu held.
func (c *serverConn) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels == 0 {
		c.netConn.Close()
	}
}

func (c *serverConn) channelOpened() {
	c.mu.Lock()
	c.channels++
	c.mu.Unlock()
}

func (c *serverConn) channelClosed() {
	c.mu.Lock()
	c.channels--
	idle := c.channels == 0
	c.mu.Unlock()
	if idle && c.srv.shuttingDown() {
		c.netConn.Close()
	}
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) error {
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	remote := addrString(nc.RemoteAddr())
	deadline := time.Now().Add(s.cfg.HandshakeTimeout)
	if err := nc.SetDeadline(deadline); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		s.log.Debug("sshserver: set handshake deadline", "remote", remote, "err", err)
	}
	cfg := *s.sshCfg // per connection, so that the callback sees ctx
	cfg.PublicKeyCallback = func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		return s.publicKeyCallback(ctx, meta, key)
	}
	sconn, chans, reqs, err := sshutil.NewServerConn(nc, &cfg, deadline, s.preferGCM)
	if err != nil {
		s.log.Debug("sshserver: handshake failed", "remote", remote, "err", err)
		var sae *ssh.ServerAuthError
		if errors.As(err, &sae) {
			for _, e := range sae.Errors {
				var ae *AuthError
				if errors.As(e, &ae) {
					return ae
				}
			}
		}
		return err
	}
	_ = nc.SetDeadline(time.Time{})
	cert, _ := sconn.Permissions.ExtraData[certKey{}].(*ssh.Certificate)
	if cert == nil { // cannot happen: publickey is the only method
		sconn.Close()
		return ErrNotCertificate
	}
	c := &serverConn{srv: s, netConn: nc, sconn: sconn, cert: cert, login: sconn.User(), remote: remote}
	c.touch()
	if !s.addConn(c) {
		sconn.Close()
		go ssh.DiscardRequests(reqs)
		for ch := range chans {
			ch.Reject(ssh.ResourceShortage, "server is shutting down")
		}
		return ErrServerClosed
	}
	defer s.removeConn(c)
	s.log.Debug("sshserver: authenticated", "user", cert.KeyId, "login", c.login, "remote", remote, "serial", cert.Serial)

	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if u, err := s.lookupLogin(c.login); err == nil {
		c.user = u
	}

	c.wg.Add(1)
	go c.serveGlobalRequests(reqs)
	if s.cfg.KeepAliveInterval > 0 {
		c.wg.Add(1)
		go c.keepAlive(connCtx)
	}
	if s.cfg.IdleTimeout > 0 {
		c.wg.Add(1)
		go c.watchIdle(connCtx)
	}
	for nch := range chans {
		if s.shuttingDown() {
			nch.Reject(ssh.ResourceShortage, "server is shutting down")
			continue
		}
		switch nch.ChannelType() {
		case "session":
			c.channelOpened()
			c.wg.Add(1)
			go c.handleSession(connCtx, nch)
		case "direct-tcpip":
			c.channelOpened()
			c.wg.Add(1)
			go c.handleDirectTCPIP(connCtx, nch)
		default:
			nch.Reject(ssh.UnknownChannelType, "unsupported channel type")
		}
	}
	cancel()
	sconn.Close()
	c.wg.Wait()
	return nil
}

// serveGlobalRequests refuses global requests (remote forwarding) and
// answers keepalives.
func (c *serverConn) serveGlobalRequests(reqs <-chan *ssh.Request) {
	defer c.wg.Done()
	for r := range reqs {
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
}

// keepAlive sends keepalive@openssh.com requests and closes the
// connection after KeepAliveCountMax unanswered ones.
func (c *serverConn) keepAlive(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.srv.cfg.KeepAliveInterval)
	defer t.Stop()
	var missed atomic.Int32
	var pending atomic.Bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if pending.Load() {
			if int(missed.Add(1)) >= c.srv.cfg.KeepAliveCountMax {
				c.srv.log.Info("sshserver: keepalive timeout", "user", c.cert.KeyId, "login", c.login, "remote", c.remote)
				c.netConn.Close()
				return
			}
			continue
		}
		pending.Store(true)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if _, _, err := c.sconn.SendRequest("keepalive@openssh.com", true, nil); err == nil {
				missed.Store(0)
			}
			pending.Store(false)
		}()
	}
}

// watchIdle closes the connection when its channels carried no data for
// IdleTimeout.
func (c *serverConn) watchIdle(ctx context.Context) {
	defer c.wg.Done()
	timeout := c.srv.cfg.IdleTimeout
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, c.lastActive.Load()))
		if idle >= timeout {
			c.srv.log.Info("sshserver: idle timeout", "user", c.cert.KeyId, "login", c.login, "remote", c.remote, "idle", idle)
			c.netConn.Close()
			return
		}
		t.Reset(timeout - idle)
	}
}

// activeChannel records data activity for the idle timeout.
type activeChannel struct {
	ssh.Channel
	c *serverConn
}

func (a activeChannel) Read(p []byte) (int, error) {
	n, err := a.Channel.Read(p)
	if n > 0 {
		a.c.touch()
	}
	return n, err
}

func (a activeChannel) Write(p []byte) (int, error) {
	a.c.touch()
	return a.Channel.Write(p)
}

func (a activeChannel) Stderr() io.ReadWriter {
	return activeStderr{a.Channel.Stderr(), a.c}
}

type activeStderr struct {
	io.ReadWriter
	c *serverConn
}

func (a activeStderr) Write(p []byte) (int, error) {
	a.c.touch()
	return a.ReadWriter.Write(p)
}
