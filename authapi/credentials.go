package authapi

import (
	"crypto"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

// Credentials are what a host, user or admin holds: its keys, the
// certificates the Auth Service issued for them, and the cluster's CA
// certificates to verify peers with.
type Credentials struct {
	// Cluster is the cluster's name.
	Cluster string
	// Identity is parsed from the X.509 certificate.
	Identity *Identity
	// Certificate is the X.509 certificate (Leaf set) and its key. The key
	// is nil when the caller supplied its own public key (Login).
	Certificate tls.Certificate
	// SSHCert is the SSH certificate; nil when none was issued.
	SSHCert *ssh.Certificate
	// SSHSigner signs with the SSH certificate (nil when SSHCert or SSHKey
	// is nil).
	SSHSigner ssh.Signer
	// SSHKey is the SSH private key; nil when the caller supplied its own
	// public key (Login).
	SSHKey ed25519.PrivateKey
	// HostCAs, UserCAs and DBCAs are the cluster's CA certificates.
	HostCAs, UserCAs, DBCAs []*x509.Certificate
	// SSHHostCAs and SSHUserCAs are the CAs' SSH keys.
	SSHHostCAs, SSHUserCAs []ssh.PublicKey
}

func newCredentials(tlsDER []byte, sshCert string, cas []*authv1.CertAuthority, key crypto.Signer, skey ed25519.PrivateKey) (*Credentials, error) {
	leaf, err := x509.ParseCertificate(tlsDER)
	if err != nil {
		return nil, fmt.Errorf("%w: issued certificate: %v", ErrInvalidIdentity, err)
	}
	id, err := ParseIdentity(leaf)
	if err != nil {
		return nil, err
	}
	c := &Credentials{Cluster: id.Cluster, Identity: id, Certificate: tls.Certificate{Certificate: [][]byte{tlsDER}, Leaf: leaf}, SSHKey: skey}
	if key != nil {
		c.Certificate.PrivateKey = key
	}
	for _, ca := range cas {
		cert, err := x509.ParseCertificate(ca.TlsCert)
		if err != nil {
			return nil, fmt.Errorf("%w: CA certificate: %v", ErrInvalidIdentity, err)
		}
		var spub ssh.PublicKey
		if ca.SshPublicKey != "" {
			if spub, _, _, _, err = ssh.ParseAuthorizedKey([]byte(ca.SshPublicKey)); err != nil {
				return nil, fmt.Errorf("%w: CA ssh key: %v", ErrInvalidIdentity, err)
			}
		}
		switch ca.Type {
		case CAHost:
			c.HostCAs = append(c.HostCAs, cert)
			if spub != nil {
				c.SSHHostCAs = append(c.SSHHostCAs, spub)
			}
		case CAUser:
			c.UserCAs = append(c.UserCAs, cert)
			if spub != nil {
				c.SSHUserCAs = append(c.SSHUserCAs, spub)
			}
		case CADB:
			c.DBCAs = append(c.DBCAs, cert)
		}
	}
	if sshCert != "" {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sshCert))
		if err != nil {
			return nil, fmt.Errorf("%w: ssh certificate: %v", ErrInvalidIdentity, err)
		}
		cert, ok := k.(*ssh.Certificate)
		if !ok {
			return nil, fmt.Errorf("%w: ssh certificate is a plain key", ErrInvalidIdentity)
		}
		c.SSHCert = cert
		if skey == nil {
			// The caller holds the private key (LoginRequest.SSHPublicKey).
			return c, nil
		}
		signer, err := ssh.NewSignerFromKey(skey)
		if err != nil {
			return nil, err
		}
		if c.SSHSigner, err = ssh.NewCertSigner(cert, signer); err != nil {
			return nil, fmt.Errorf("%w: ssh certificate: %v", ErrInvalidIdentity, err)
		}
	}
	return c, nil
}

// CAPin returns the pin of the cluster's host CA.
func (c *Credentials) CAPin() string {
	if len(c.HostCAs) == 0 {
		return ""
	}
	return CAPin(c.HostCAs[0])
}

// ServerTLSConfig returns a TLS configuration for a host that serves
// mutual TLS to cluster members: its certificate, and client certificates
// required and verified against the host and user CAs. Use
// IdentityFromState on the connection state to learn who connected.
func (c *Credentials) ServerTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	for _, ca := range append(append([]*x509.Certificate{}, c.HostCAs...), c.UserCAs...) {
		pool.AddCert(ca)
	}
	cert := c.Certificate
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
}

// ClientTLSConfig returns a TLS configuration for dialing another host of
// the cluster: it presents the credentials and verifies that the server
// chains to the host CA (by identity, not by name).
func (c *Credentials) ClientTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	for _, ca := range c.HostCAs {
		pool.AddCert(ca)
	}
	cert := c.Certificate
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // replaced by VerifyConnection
		VerifyConnection: func(st tls.ConnectionState) error {
			if len(st.PeerCertificates) == 0 {
				return fmt.Errorf("%w: server sent no certificate", ErrInvalidIdentity)
			}
			inter := x509.NewCertPool()
			for _, cert := range st.PeerCertificates[1:] {
				inter.AddCert(cert)
			}
			_, err := st.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
}

// credentialsFile is the on-disk form of Credentials: JSON with PEM
// blocks, readable by humans and other tools.
type credentialsFile struct {
	Cluster string   `json:"cluster"`
	TLSCert string   `json:"tls_cert"` // PEM CERTIFICATE
	TLSKey  string   `json:"tls_key"`  // PEM PRIVATE KEY (PKCS#8)
	SSHCert string   `json:"ssh_cert,omitempty"`
	SSHKey  string   `json:"ssh_key"` // PEM PRIVATE KEY (PKCS#8, Ed25519)
	CAs     []caFile `json:"cas"`
}

type caFile struct {
	Type         string `json:"type"`
	TLSCert      string `json:"tls_cert"`
	SSHPublicKey string `json:"ssh_public_key"`
}

// MaxCredentialsFile bounds the size of a credentials file.
const MaxCredentialsFile = 1 << 20

// Save writes the credentials to path with mode 0600 (atomically, through
// a temporary file in the same directory).
func (c *Credentials) Save(path string) error {
	tlsKey, err := x509.MarshalPKCS8PrivateKey(c.Certificate.PrivateKey)
	if err != nil {
		return fmt.Errorf("authapi: save credentials: %w", err)
	}
	sshKey, err := x509.MarshalPKCS8PrivateKey(c.SSHKey)
	if err != nil {
		return fmt.Errorf("authapi: save credentials: %w", err)
	}
	f := credentialsFile{
		Cluster: c.Cluster,
		TLSCert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate.Certificate[0]})),
		TLSKey:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: tlsKey})),
		SSHKey:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: sshKey})),
	}
	if c.SSHCert != nil {
		f.SSHCert = string(ssh.MarshalAuthorizedKey(c.SSHCert))
	}
	for _, ca := range c.authorities() {
		f.CAs = append(f.CAs, caFile{Type: ca.Type, TLSCert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.TlsCert})), SSHPublicKey: ca.SshPublicKey})
	}
	data, _ := json.MarshalIndent(f, "", "  ")
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return fmt.Errorf("authapi: save credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("authapi: save credentials: %w", err)
	}
	return nil
}

func (c *Credentials) authorities() []*authv1.CertAuthority {
	var out []*authv1.CertAuthority
	add := func(typ string, certs []*x509.Certificate, keys []ssh.PublicKey) {
		for i, cert := range certs {
			ca := &authv1.CertAuthority{Type: typ, ClusterName: c.Cluster, TlsCert: cert.Raw}
			if i < len(keys) {
				ca.SshPublicKey = string(ssh.MarshalAuthorizedKey(keys[i]))
			}
			out = append(out, ca)
		}
	}
	add(CAHost, c.HostCAs, c.SSHHostCAs)
	add(CAUser, c.UserCAs, c.SSHUserCAs)
	add(CADB, c.DBCAs, nil)
	return out
}

// LoadCredentials reads credentials written by Save.
func LoadCredentials(path string) (*Credentials, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("authapi: load credentials: %w", err)
	}
	if fi.Size() > MaxCredentialsFile {
		return nil, fmt.Errorf("%w: credentials file too large", ErrInvalidArgument)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authapi: load credentials: %w", err)
	}
	return ParseCredentials(data)
}

// ParseCredentials decodes the contents of a credentials file.
func ParseCredentials(data []byte) (*Credentials, error) {
	if len(data) > MaxCredentialsFile {
		return nil, fmt.Errorf("%w: credentials file too large", ErrInvalidArgument)
	}
	var f credentialsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: credentials file: %v", ErrInvalidArgument, err)
	}
	pemBytes := func(s, what string) ([]byte, error) {
		b, _ := pem.Decode([]byte(s))
		if b == nil {
			return nil, fmt.Errorf("%w: credentials file: no PEM %s", ErrInvalidArgument, what)
		}
		return b.Bytes, nil
	}
	certDER, err := pemBytes(f.TLSCert, "tls_cert")
	if err != nil {
		return nil, err
	}
	keyDER, err := pemBytes(f.TLSKey, "tls_key")
	if err != nil {
		return nil, err
	}
	sshDER, err := pemBytes(f.SSHKey, "ssh_key")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("%w: tls_key: %v", ErrInvalidArgument, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: tls_key is not a signing key", ErrInvalidArgument)
	}
	sk, err := x509.ParsePKCS8PrivateKey(sshDER)
	if err != nil {
		return nil, fmt.Errorf("%w: ssh_key: %v", ErrInvalidArgument, err)
	}
	skey, ok := sk.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: ssh_key is not Ed25519", ErrInvalidArgument)
	}
	var cas []*authv1.CertAuthority
	for _, ca := range f.CAs {
		der, err := pemBytes(ca.TLSCert, "CA certificate")
		if err != nil {
			return nil, err
		}
		cas = append(cas, &authv1.CertAuthority{Type: ca.Type, TlsCert: der, SshPublicKey: ca.SSHPublicKey})
	}
	c, err := newCredentials(certDER, f.SSHCert, cas, signer, skey)
	if err != nil {
		return nil, errors.Join(ErrInvalidArgument, err)
	}
	return c, nil
}
