// Package totp implements time-based one-time passwords (RFC 6238, built on
// the HOTP of RFC 4226), the second factor of user logins.
//
// Usage:
//
//	secret := totp.NewSecret()               // store it; show cfg.URL(...) once
//	var cfg totp.Config                      // SHA1, 6 digits, 30 s, ±1 period
//	key, err := totp.DecodeSecret(secret)
//	counter, ok, err := cfg.Validate(key, userCode, time.Now(), lastCounter+1)
//
// # Lifecycle
//
// There is no state: a Config is a value, and the caller stores the secret
// and, to refuse replays, the last accepted counter.
//
// # Errors
//
// ErrInvalidSecret for a secret that does not decode; ErrInvalidConfig for
// parameters out of range. A wrong code is not an error: Validate returns
// ok == false.
//
// # Cancellation
//
// Nothing blocks.
package totp
