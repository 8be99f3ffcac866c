package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors returned by this package.
var (
	// ErrInvalidSecret: the base32 secret does not decode, or is too short.
	ErrInvalidSecret = errors.New("totp: invalid secret")
	// ErrInvalidConfig: digits or period are out of range, or the
	// algorithm is unknown.
	ErrInvalidConfig = errors.New("totp: invalid config")
)

// Algorithm is the HMAC hash of RFC 6238.
type Algorithm int

const (
	// SHA1 is the default of RFC 6238 and of every authenticator app.
	SHA1 Algorithm = iota
	SHA256
	SHA512
)

func (a Algorithm) String() string {
	switch a {
	case SHA1:
		return "SHA1"
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

func (a Algorithm) hash() (func() hash.Hash, error) {
	switch a {
	case SHA1:
		return sha1.New, nil
	case SHA256:
		return sha256.New, nil
	case SHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("%w: algorithm %v", ErrInvalidConfig, a)
}

// Config holds the code parameters. The zero value is the common one:
// SHA1, 6 digits, 30 s period, one period of skew either side.
type Config struct {
	// Algorithm is the HMAC hash; zero means SHA1.
	Algorithm Algorithm
	// Digits is the code length, 6 to 10; zero means 6.
	Digits int
	// Period is the time step; zero means 30 s.
	Period time.Duration
	// Skew is how many periods before and after the current one Validate
	// accepts; zero means 1, negative means 0 (exact period only).
	Skew int
}

func (c Config) norm() (Config, error) {
	if c.Digits == 0 {
		c.Digits = 6
	}
	if c.Period == 0 {
		c.Period = 30 * time.Second
	}
	if c.Skew == 0 {
		c.Skew = 1
	} else if c.Skew < 0 {
		c.Skew = 0
	}
	if c.Digits < 6 || c.Digits > 10 {
		return c, fmt.Errorf("%w: digits %d not in 6..10", ErrInvalidConfig, c.Digits)
	}
	if c.Period < time.Second {
		return c, fmt.Errorf("%w: period %v below 1s", ErrInvalidConfig, c.Period)
	}
	if _, err := c.Algorithm.hash(); err != nil {
		return c, err
	}
	return c, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a random 20-byte secret in unpadded base32, the form
// authenticator apps take.
func NewSecret() string {
	k := make([]byte, 20)
	rand.Read(k)
	return b32.EncodeToString(k)
}

// DecodeSecret decodes a base32 secret (case and padding insensitive,
// spaces ignored). Secrets shorter than 10 bytes are refused.
func DecodeSecret(secret string) ([]byte, error) {
	s := strings.ToUpper(strings.ReplaceAll(secret, " ", ""))
	s = strings.TrimRight(s, "=")
	if len(s) > 1024 {
		return nil, fmt.Errorf("%w: too long", ErrInvalidSecret)
	}
	k, err := b32.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSecret, err)
	}
	if len(k) < 10 {
		return nil, fmt.Errorf("%w: %d bytes, want at least 10", ErrInvalidSecret, len(k))
	}
	return k, nil
}

// HOTP computes the RFC 4226 code of key at counter, with digits digits.
func HOTP(h func() hash.Hash, key []byte, counter uint64, digits int) string {
	mac := hmac.New(h, key)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint64(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, uint64(bin)%mod)
}

// Code returns the code of key (raw bytes) at time t.
func (c Config) Code(key []byte, t time.Time) (string, error) {
	c, err := c.norm()
	if err != nil {
		return "", err
	}
	h, _ := c.Algorithm.hash()
	return HOTP(h, key, c.counter(t), c.Digits), nil
}

func (c Config) counter(t time.Time) uint64 {
	u := t.Unix()
	if u < 0 {
		return 0
	}
	return uint64(u) / uint64(c.Period/time.Second)
}

// Validate reports whether code is the code of key at t, or within Skew
// periods of it. It compares in constant time. A code for an earlier
// counter than notBefore is refused, so a caller that stores the counter
// Validate returns can refuse a replayed code; pass 0 to accept any.
func (c Config) Validate(key []byte, code string, t time.Time, notBefore uint64) (counter uint64, ok bool, err error) {
	c, err = c.norm()
	if err != nil {
		return 0, false, err
	}
	if len(code) != c.Digits {
		return 0, false, nil
	}
	h, _ := c.Algorithm.hash()
	now := c.counter(t)
	for d := -c.Skew; d <= c.Skew; d++ {
		ctr := int64(now) + int64(d)
		if ctr < 0 || uint64(ctr) < notBefore {
			continue
		}
		want := HOTP(h, key, uint64(ctr), c.Digits)
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return uint64(ctr), true, nil
		}
	}
	return 0, false, nil
}

// URL returns the otpauth:// URL authenticator apps read (usually from a
// QR code) for a base32 secret.
func (c Config) URL(issuer, account, secret string) string {
	c, _ = c.norm()
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", issuer)
	v.Set("algorithm", c.Algorithm.String())
	v.Set("digits", strconv.Itoa(c.Digits))
	v.Set("period", strconv.Itoa(int(c.Period/time.Second)))
	return (&url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account, RawQuery: v.Encode()}).String()
}
