// Package sshutil holds what the cluster's SSH servers (the proxy's jump
// host and the agents' nodes) share: their choice of ciphers.
package sshutil

import "golang.org/x/crypto/ssh"

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
