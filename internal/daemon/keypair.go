package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrNoKeyPairs is returned by LoadKeyPairs when given no files.
var ErrNoKeyPairs = errors.New("daemon: no keypairs")

// KeyPairFiles names one PEM certificate chain and its private key.
type KeyPairFiles struct {
	CertFile, KeyFile string
}

// KeyPairs serves TLS certificates read from files and reloaded in place
// (see Reload). Its methods are safe for concurrent use.
type KeyPairs struct {
	files []KeyPairFiles
	certs atomic.Pointer[[]tls.Certificate]
	// reloads counts successful reloads (not the first load).
	reloads, failures atomic.Int64
}

// LoadKeyPairs reads the keypairs. The first one is served to clients
// whose hello matches none of them (or sends no server name).
func LoadKeyPairs(files []KeyPairFiles) (*KeyPairs, error) {
	if len(files) == 0 {
		return nil, ErrNoKeyPairs
	}
	k := &KeyPairs{files: append([]KeyPairFiles(nil), files...)}
	certs, err := k.read()
	if err != nil {
		return nil, err
	}
	k.certs.Store(&certs)
	return k, nil
}

func (k *KeyPairs) read() ([]tls.Certificate, error) {
	certs := make([]tls.Certificate, 0, len(k.files))
	for _, f := range k.files {
		c, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("daemon: keypair %s: %w", f.CertFile, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// Reload reads every file again. When all parse, the new set replaces the
// old one for the next handshakes; otherwise the old set stays and the
// error is returned.
func (k *KeyPairs) Reload() error {
	certs, err := k.read()
	if err != nil {
		k.failures.Add(1)
		return err
	}
	k.certs.Store(&certs)
	k.reloads.Add(1)
	return nil
}

// Reloads returns how many reloads succeeded and failed so far.
func (k *KeyPairs) Reloads() (ok, failed int64) { return k.reloads.Load(), k.failures.Load() }

// Certificates returns the current set (do not modify it).
func (k *KeyPairs) Certificates() []tls.Certificate { return *k.certs.Load() }

// GetCertificate is a tls.Config.GetCertificate: it returns the first
// current certificate that suits the hello, else the first one.
func (k *KeyPairs) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := *k.certs.Load()
	if hello != nil && len(certs) > 1 {
		for i := range certs {
			if hello.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
	}
	return &certs[0], nil
}

// TLSConfig returns a server configuration that serves the keypairs.
func (k *KeyPairs) TLSConfig() *tls.Config {
	return &tls.Config{GetCertificate: k.GetCertificate, MinVersion: tls.VersionTLS12}
}
