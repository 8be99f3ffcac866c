package sshutil

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	// maxVersionLine is the longest identification line RFC 4253
	// allows, CR LF included.
	maxVersionLine = 255
	// maxKexInitPacket bounds the client's first binary packet (RFC 4253
	// requires implementations to handle packets of 35,000 bytes).
	maxKexInitPacket = 35000
	msgKexInit       = 20
)

// kexInitWait is how long PreferGCM waits for the client's KEXINIT.
// Clients send it at once (RFC 4253, section 7.1); one that waits for the
// server's gets the whole cipher list after this delay.
var kexInitWait = 2 * time.Second

// PreferGCM picks AES-GCM, before the SSH handshake, for clients that
// have it. In SSH the client's order of ciphers decides, and OpenSSH
// lists AES-CTR ahead of AES-GCM, so a server that offers both gets CTR
// with an HMAC, which costs x/crypto about a fifth more CPU per byte than
// GCM. PreferGCM sends the server's identification line and reads the
// client's, then the client's KEXINIT: when the client offers AES-GCM in
// both directions and cfg offers it too, it narrows cfg.Ciphers to its
// AES-GCM entries, which the client then picks. Any other client gets the
// whole list, so no client loses a cipher it could use.
//
// It returns the connection to give ssh.NewServerConn with cfg: that
// connection replays what PreferGCM read and drops x/crypto's own
// identification line, already sent. cfg.ServerVersion must be set.
// deadline is the handshake's deadline, set on c by the caller; PreferGCM
// restores it. Malformed input is left for ssh.NewServerConn to refuse.
func PreferGCM(c net.Conn, cfg *ssh.ServerConfig, deadline time.Time) (net.Conn, error) {
	if cfg.ServerVersion == "" {
		return nil, errors.New("sshutil: PreferGCM needs ServerConfig.ServerVersion")
	}
	sent := []byte(cfg.ServerVersion + "\r\n")
	if _, err := c.Write(sent); err != nil {
		return nil, err
	}
	wait := time.Now().Add(kexInitWait)
	if !deadline.IsZero() && deadline.Before(wait) {
		wait = deadline
	}
	if err := c.SetReadDeadline(wait); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return nil, err
	}
	buf, rerr := readKexInit(c)
	if errors.Is(rerr, os.ErrDeadlineExceeded) && (deadline.IsZero() || time.Now().Before(deadline)) {
		rerr = nil // only the wait for KEXINIT ran out
	}
	if err := c.SetReadDeadline(deadline); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return nil, err
	}
	if c2s, s2c, ok := clientCiphers(buf); ok {
		var gcm []string
		for _, name := range cfg.Ciphers {
			if isGCM(name) && slices.Contains(c2s, name) && slices.Contains(s2c, name) {
				gcm = append(gcm, name)
			}
		}
		if len(gcm) > 0 {
			cfg.Ciphers = gcm
		}
	}
	return &versionConn{Conn: c, pending: buf, rerr: rerr, sent: sent}, nil
}

func isGCM(name string) bool { return name == ssh.CipherAES128GCM || name == ssh.CipherAES256GCM }

// readKexInit reads the client's identification line and, when it reads
// as SSH 2, the first binary packet after it. It stops early, without an
// error, at anything malformed; the bytes read are returned in any case.
func readKexInit(c net.Conn) ([]byte, error) {
	buf := make([]byte, 0, 4096)
	fill := func(n int) error { // until len(buf) >= n
		for len(buf) < n {
			if cap(buf) < n {
				buf = slices.Grow(buf, n-len(buf))
			}
			m, err := c.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+m]
			if err != nil {
				return err
			}
		}
		return nil
	}
	// The identification line.
	for bytes.IndexByte(buf, '\n') < 0 {
		if len(buf) >= maxVersionLine {
			return buf, nil
		}
		if err := fill(len(buf) + 1); err != nil {
			return buf, err
		}
	}
	line := buf[:bytes.IndexByte(buf, '\n')+1]
	if !bytes.HasPrefix(line, []byte("SSH-2.0-")) && !bytes.HasPrefix(line, []byte("SSH-1.99-")) {
		return buf, nil
	}
	// The packet: uint32 length, then that many bytes.
	start := len(line)
	if err := fill(start + 4); err != nil {
		return buf, err
	}
	n := int(binary.BigEndian.Uint32(buf[start:]))
	if n < 1 || n > maxKexInitPacket {
		return buf, nil
	}
	return buf, fill(start + 4 + n)
}

// clientCiphers returns the client's encryption algorithms, client to
// server and server to client, from what readKexInit read.
func clientCiphers(buf []byte) (c2s, s2c []string, ok bool) {
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		return nil, nil, false
	}
	p := buf[i+1:]
	if len(p) < 5 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint32(p))
	if n < 1 || n > maxKexInitPacket || len(p) < 4+n {
		return nil, nil, false
	}
	pad := int(p[4])
	if pad >= n {
		return nil, nil, false
	}
	payload := p[5 : 4+n-pad]
	// byte SSH_MSG_KEXINIT, byte[16] cookie, then name-lists: kex, host
	// key, ciphers client to server, ciphers server to client, ...
	if len(payload) < 17 || payload[0] != msgKexInit {
		return nil, nil, false
	}
	rest := payload[17:]
	var lists [4][]string
	for k := range lists {
		if len(rest) < 4 {
			return nil, nil, false
		}
		l := binary.BigEndian.Uint32(rest)
		if uint64(l) > uint64(len(rest)-4) {
			return nil, nil, false
		}
		if l > 0 {
			lists[k] = strings.Split(string(rest[4:4+l]), ",")
		}
		rest = rest[4+l:]
	}
	return lists[2], lists[3], true
}

// versionConn replays the bytes PreferGCM read, then reads on; its first
// write, x/crypto's identification line, is dropped.
type versionConn struct {
	net.Conn
	pending []byte
	rerr    error
	sent    []byte
}

func (c *versionConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.rerr != nil {
		return 0, c.rerr
	}
	return c.Conn.Read(p)
}

func (c *versionConn) Write(p []byte) (int, error) {
	if c.sent != nil {
		sent := c.sent
		c.sent = nil
		if !bytes.Equal(p, sent) {
			return 0, errors.New("sshutil: the SSH library's identification line differs from the one PreferGCM sent")
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}
