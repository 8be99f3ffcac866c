// Package sshutil holds what the cluster's SSH servers (the proxy's jump
// host and the agents' nodes) share: their choice of ciphers.
package sshutil

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

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

// ServerCiphers returns what a server offers for its configured cipher
// list: the list itself, or Ciphers when it is nil, and whether to narrow
// the offer per connection with PreferGCM, which only the default does (a
// list set by hand is offered as is).
func ServerCiphers(configured []string) (ciphers []string, preferGCM bool) {
	if configured == nil {
		return slices.Clone(Ciphers), true
	}
	return slices.Clone(configured), false
}

// CheckCiphers reports the first name in a configured list that x/crypto
// does not implement, and an empty (not nil) list. Nil is the default.
func CheckCiphers(names []string) error {
	if names != nil && len(names) == 0 {
		return errors.New("the cipher list is empty (leave it unset for the default)")
	}
	for _, name := range names {
		if err := CheckCipher(name); err != nil {
			return err
		}
	}
	return nil
}

// CheckCipher says whether x/crypto implements the cipher name.
func CheckCipher(name string) error {
	supported := ssh.SupportedAlgorithms().Ciphers
	if !slices.Contains(supported, name) {
		return fmt.Errorf("%q is not a supported SSH cipher (supported: %s)", name, strings.Join(supported, ", "))
	}
	return nil
}

// NewServerConn is ssh.NewServerConn, after PreferGCM when preferGCM is
// set (see ServerCiphers). deadline is the handshake's, already set on c.
func NewServerConn(c net.Conn, cfg *ssh.ServerConfig, deadline time.Time, preferGCM bool) (*ssh.ServerConn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	if preferGCM {
		vc, err := PreferGCM(c, cfg, deadline)
		if err != nil {
			return nil, nil, nil, err
		}
		c = vc
	}
	return ssh.NewServerConn(c, cfg)
}
