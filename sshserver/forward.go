package sshserver

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// directTCPIP is the "direct-tcpip" channel-open payload (RFC 4254 7.2).
type directTCPIP struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

// parseDirectTCPIP decodes a "direct-tcpip" payload into the target
// "host:port".
func parseDirectTCPIP(p []byte) (string, bool) {
	var d directTCPIP
	if err := ssh.Unmarshal(p, &d); err != nil {
		return "", false
	}
	if d.Host == "" || len(d.Host) > 255 || d.Port == 0 || d.Port > 65535 {
		return "", false
	}
	for _, r := range d.Host {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("[]/@%\\", r) {
			return "", false
		}
	}
	if strings.Contains(d.Host, ":") {
		if _, err := netip.ParseAddr(d.Host); err != nil {
			return "", false
		}
	}
	return net.JoinHostPort(d.Host, strconv.FormatUint(uint64(d.Port), 10)), true
}

func (c *serverConn) handleDirectTCPIP(ctx context.Context, nch ssh.NewChannel) {
	defer c.wg.Done()
	defer c.channelClosed()
	target, ok := parseDirectTCPIP(nch.ExtraData())
	if !ok {
		nch.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	if err := c.authorize(ctx, AccessRequest{Action: ActionPortForward, Target: target}); err != nil {
		nch.Reject(ssh.Prohibited, "port forwarding is not permitted")
		return
	}
	dst, err := c.srv.dialer.DialContext(ctx, "tcp", target)
	if err != nil {
		c.srv.log.Info("sshserver: port forward dial failed", "user", c.cert.KeyId, "target", target, "err", err)
		nch.Reject(ssh.ConnectionFailed, "cannot connect to target")
		return
	}
	defer dst.Close()
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	c.srv.audit(ctx, Event{Type: EventPortForward, User: c.cert.KeyId, Login: c.login, RemoteAddr: c.remote,
		Action: ActionPortForward, Target: target})
	ach := activeChannel{ch, c}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(dst, ach)
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		} else {
			dst.Close()
		}
	}()
	_, _ = io.Copy(ach, dst)
	_ = ch.CloseWrite()
	// The client closes the channel once its side is done too (or the
	// connection ends), which ends the copy above.
	wg.Wait()
}
