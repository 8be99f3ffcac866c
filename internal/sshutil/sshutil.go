// Package sshutil holds what the cluster's SSH servers (the proxy's jump
// host and the agents' nodes) share: algorithm choices and copying.
package sshutil

import (
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Ciphers are the ciphers the cluster's SSH servers offer: AES only.
//
// OpenSSH clients list chacha20-poly1305 first, and in SSH the client's
// order decides. x/crypto implements chacha20 without assembly on amd64,
// at a fraction of the speed of AES with AES-NI, so a server that offers
// it spends most of a bulk copy's CPU on it. Every current client has
// AES-CTR (RFC 4344) and most AES-GCM.
var Ciphers = []string{
	ssh.CipherAES128GCM, ssh.CipherAES256GCM,
	ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR,
}

// The buffers of CopyFromChannel: a small one while the channel carries
// interactive traffic or sits idle (what io.Copy would hold), a large one,
// several packets, while it carries bulk data.
const (
	smallCopyBuf = 32 << 10
	largeCopyBuf = 256 << 10
)

var (
	smallCopyBufs = sync.Pool{New: func() any { b := make([]byte, smallCopyBuf); return &b }}
	largeCopyBufs = sync.Pool{New: func() any { b := make([]byte, largeCopyBuf); return &b }}
)

// CopyFromChannel copies from an SSH channel to dst until EOF or an
// error, like io.Copy. x/crypto sends a window adjustment (a packet and a
// system call) after every channel Read, so io.Copy's 32 KiB reads cost
// one per packet of bulk data. CopyFromChannel switches to a buffer of
// several packets once a read fills the small one, so that one read takes
// everything that has arrived, and back when reads come up short again,
// so an idle channel holds only the small buffer. It never uses dst's
// ReadFrom, which would read in 32 KiB pieces again.
func CopyFromChannel(dst io.Writer, ch io.Reader) (int64, error) {
	pool := &smallCopyBufs
	bp := pool.Get().(*[]byte)
	defer func() { pool.Put(bp) }()
	var written int64
	for {
		buf := *bp
		n, rerr := ch.Read(buf)
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
			if m != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
		switch {
		case pool == &smallCopyBufs && n == len(buf):
			pool.Put(bp)
			pool = &largeCopyBufs
			bp = pool.Get().(*[]byte)
		case pool == &largeCopyBufs && n <= smallCopyBuf/2:
			pool.Put(bp)
			pool = &smallCopyBufs
			bp = pool.Get().(*[]byte)
		}
	}
}
