package authapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Limits on the public keys and certificate requests that callers hand in
// to be certified (Login, Join, RenewHostIdentity, SignIdentity).
const (
	// MinRSABits and MaxRSABits bound the size of RSA keys.
	MinRSABits = 2048
	MaxRSABits = 8192
	// MaxPublicKeySize bounds an encoded public key: PKIX DER, or an
	// authorized_keys line.
	MaxPublicKeySize = 4096
	// MaxCSRSize bounds a PKCS#10 certificate request (DER).
	MaxCSRSize = 16 << 10
)

// ValidateTLSPublicKey reports whether k may be certified: Ed25519, ECDSA
// on P-256 or P-384, or RSA of MinRSABits to MaxRSABits. The error wraps
// ErrInvalidArgument.
func ValidateTLSPublicKey(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("%w: tls public key: ECDSA curve must be P-256 or P-384", ErrInvalidArgument)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: tls public key: bad Ed25519 key", ErrInvalidArgument)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < MinRSABits || n > MaxRSABits {
			return fmt.Errorf("%w: tls public key: RSA key of %d bits (want %d to %d)", ErrInvalidArgument, n, MinRSABits, MaxRSABits)
		}
	default:
		return fmt.Errorf("%w: tls public key: want Ed25519, ECDSA or RSA, got %T", ErrInvalidArgument, k)
	}
	return nil
}

// ValidateSSHPublicKey reports whether k may be certified: ssh-ed25519,
// ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, or ssh-rsa of MinRSABits to
// MaxRSABits. Certificates, DSA, P-521 and security-key types are refused.
// The error wraps ErrInvalidArgument.
func ValidateSSHPublicKey(k ssh.PublicKey) error {
	if k == nil {
		return fmt.Errorf("%w: ssh public key missing", ErrInvalidArgument)
	}
	switch k.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoRSA:
	default:
		return fmt.Errorf("%w: ssh public key: type %q not allowed (want ed25519, ecdsa P-256/P-384 or rsa)", ErrInvalidArgument, k.Type())
	}
	cp, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return fmt.Errorf("%w: ssh public key: unsupported key", ErrInvalidArgument)
	}
	return ValidateTLSPublicKey(cp.CryptoPublicKey())
}

// ParseSSHPublicKey parses and validates (ValidateSSHPublicKey) an
// authorized_keys line of at most MaxPublicKeySize bytes.
func ParseSSHPublicKey(line []byte) (ssh.PublicKey, error) {
	if len(line) == 0 {
		return nil, fmt.Errorf("%w: ssh public key missing", ErrInvalidArgument)
	}
	if len(line) > MaxPublicKeySize {
		return nil, fmt.Errorf("%w: ssh public key larger than %d bytes", ErrInvalidArgument, MaxPublicKeySize)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return nil, fmt.Errorf("%w: ssh public key: %v", ErrInvalidArgument, err)
	}
	if _, isCert := k.(*ssh.Certificate); isCert {
		return nil, fmt.Errorf("%w: ssh public key is a certificate", ErrInvalidArgument)
	}
	if err := ValidateSSHPublicKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// ParseTLSPublicKey parses and validates (ValidateTLSPublicKey) a PKIX
// (SubjectPublicKeyInfo) DER public key of at most MaxPublicKeySize bytes.
func ParseTLSPublicKey(der []byte) (crypto.PublicKey, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: tls public key missing", ErrInvalidArgument)
	}
	if len(der) > MaxPublicKeySize {
		return nil, fmt.Errorf("%w: tls public key larger than %d bytes", ErrInvalidArgument, MaxPublicKeySize)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: tls public key: %v", ErrInvalidArgument, err)
	}
	if err := ValidateTLSPublicKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// ParseCSR parses a PKCS#10 certificate request (DER, at most MaxCSRSize
// bytes), checks its signature (proof that the caller holds the private
// key) and returns its validated public key. The request's subject and
// extensions are ignored: the Auth Service decides what it certifies.
func ParseCSR(der []byte) (crypto.PublicKey, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: certificate request missing", ErrInvalidArgument)
	}
	if len(der) > MaxCSRSize {
		return nil, fmt.Errorf("%w: certificate request larger than %d bytes", ErrInvalidArgument, MaxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate request: %v", ErrInvalidArgument, err)
	}
	if err := ValidateTLSPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: certificate request signature: %v", ErrInvalidArgument, err)
	}
	return csr.PublicKey, nil
}
