package authapi

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/backend"
)

// Certificate authority types.
const (
	CAHost = "host" // signs host identities (X.509 and SSH host certificates)
	CAUser = "user" // signs user and admin identities
	CADB   = "db"   // signs database server certificates
)

// caTypes are the authorities every cluster has, in a fixed order.
var caTypes = []string{CAHost, CAUser, CADB}

// caRecord is what the backend stores under /authorities/<type>. The
// private keys are stored in the backend in the clear: whoever can read the
// backend can impersonate the cluster (see the package documentation).
type caRecord struct {
	Type    string    `json:"type"`
	Cluster string    `json:"cluster"`
	TLSCert []byte    `json:"tls_cert"` // DER
	TLSKey  []byte    `json:"tls_key"`  // PKCS#8 DER, ECDSA P-256
	SSHKey  []byte    `json:"ssh_key"`  // PKCS#8 DER, Ed25519
	Created time.Time `json:"created"`
}

// certAuthority is a loaded CA.
type certAuthority struct {
	typ    string
	cert   *x509.Certificate
	key    crypto.Signer
	ssh    ssh.Signer
	sshPub string // authorized_keys line
}

func caKey(typ string) []byte { return backend.Key("authorities", typ) }

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// newCARecord generates the keys and the self-signed certificate of a CA.
func newCARecord(cluster, typ string, now time.Time) (*caRecord, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: cluster + " " + typ + " CA", Organization: []string{cluster}, OrganizationalUnit: []string{typ}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	tlsKey, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	_, sshPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	sshKey, err := x509.MarshalPKCS8PrivateKey(sshPriv)
	if err != nil {
		return nil, err
	}
	return &caRecord{Type: typ, Cluster: cluster, TLSCert: der, TLSKey: tlsKey, SSHKey: sshKey, Created: now.UTC()}, nil
}

func (r *caRecord) load() (*certAuthority, error) {
	cert, err := x509.ParseCertificate(r.TLSCert)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(r.TLSKey)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("tls key is not a signer")
	}
	sk, err := x509.ParsePKCS8PrivateKey(r.SSHKey)
	if err != nil {
		return nil, err
	}
	sshSigner, err := ssh.NewSignerFromKey(sk)
	if err != nil {
		return nil, err
	}
	return &certAuthority{
		typ: r.Type, cert: cert, key: signer, ssh: sshSigner,
		sshPub: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshSigner.PublicKey()))),
	}, nil
}

// loadOrCreateCAs makes sure the cluster's CAs exist, creating each one
// exactly once: every instance generates a candidate and calls Create, and
// whichever write lost reads back the winner.
func loadOrCreateCAs(ctx context.Context, b backend.Backend, cluster string, now time.Time) (map[string]*certAuthority, error) {
	cas := make(map[string]*certAuthority, len(caTypes))
	for _, typ := range caTypes {
		var rec caRecord
		item, err := b.Get(ctx, caKey(typ))
		switch {
		case err == nil:
		case errors.Is(err, backend.ErrNotFound):
			cand, err := newCARecord(cluster, typ, now)
			if err != nil {
				return nil, fmt.Errorf("authapi: generate %s CA: %w", typ, err)
			}
			data, _ := json.Marshal(cand)
			_, err = b.Create(ctx, backend.Item{Key: caKey(typ), Value: data})
			if err != nil && !errors.Is(err, backend.ErrAlreadyExists) {
				return nil, fmt.Errorf("authapi: store %s CA: %w", typ, err)
			}
			if item, err = b.Get(ctx, caKey(typ)); err != nil {
				return nil, fmt.Errorf("authapi: read %s CA: %w", typ, err)
			}
		default:
			return nil, fmt.Errorf("authapi: read %s CA: %w", typ, err)
		}
		if err := json.Unmarshal(item.Value, &rec); err != nil {
			return nil, fmt.Errorf("authapi: decode %s CA: %w", typ, err)
		}
		if rec.Cluster != cluster {
			return nil, fmt.Errorf("%w: the backend holds the CAs of cluster %q, not %q", ErrInvalidArgument, rec.Cluster, cluster)
		}
		ca, err := rec.load()
		if err != nil {
			return nil, fmt.Errorf("authapi: load %s CA: %w", typ, err)
		}
		cas[typ] = ca
	}
	return cas, nil
}

// CAPin returns the pin of a CA certificate: "sha256:" and the hex SHA-256
// of its SubjectPublicKeyInfo. Joining hosts pass the pin of the host CA.
func CAPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// certRequest is what signTLS puts in a certificate.
type certRequest struct {
	pub       crypto.PublicKey
	id        *Identity
	notBefore time.Time
	notAfter  time.Time
	dnsNames  []string
	ips       []net.IP
	server    bool // add ServerAuth (hosts serve TLS with their identity)
}

// signTLS issues an X.509 certificate for the identity.
func (ca *certAuthority) signTLS(r certRequest) ([]byte, error) {
	ext, err := r.id.extension()
	if err != nil {
		return nil, err
	}
	eku := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if r.server {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    randomSerial(),
		Subject:         r.id.subject(),
		NotBefore:       r.notBefore,
		NotAfter:        r.notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     eku,
		DNSNames:        r.dnsNames,
		IPAddresses:     r.ips,
		ExtraExtensions: []pkix.Extension{ext},
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.cert, r.pub, ca.key)
}

// signSSH issues an SSH certificate.
func (ca *certAuthority) signSSH(pub ssh.PublicKey, certType uint32, keyID string, principals []string, notBefore, notAfter time.Time, exts map[string]string) (string, error) {
	c := &ssh.Certificate{
		Key:             pub,
		Serial:          randomSerial().Uint64(),
		CertType:        certType,
		KeyId:           keyID,
		ValidPrincipals: principals,
		ValidAfter:      uint64(notBefore.Unix()),
		ValidBefore:     uint64(notAfter.Unix()),
		Permissions:     ssh.Permissions{Extensions: exts},
	}
	if err := c.SignCert(rand.Reader, ca.ssh); err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c))), nil
}

// parseTLSPublicKey is ParseTLSPublicKey, for the handlers.
func parseTLSPublicKey(der []byte) (crypto.PublicKey, error) { return ParseTLSPublicKey(der) }

// parseSSHPublicKey is ParseSSHPublicKey, except that empty gives nil.
func parseSSHPublicKey(s string) (ssh.PublicKey, error) {
	if s == "" {
		return nil, nil
	}
	return ParseSSHPublicKey([]byte(s))
}

// hostNames splits "host:port" addresses into DNS names and IPs for a
// certificate.
func hostNames(names ...string) (dns []string, ips []net.IP) {
	seen := map[string]bool{}
	for _, n := range names {
		if h, _, err := net.SplitHostPort(n); err == nil {
			n = h
		}
		n = strings.Trim(n, "[]")
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	return dns, ips
}
