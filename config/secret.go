package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// redacted replaces secret values in String, %v and logs.
const redacted = "[redacted]"

// maxSecretFile bounds the size of a file a secret is read from.
const maxSecretFile = 64 << 10

// Secret is a value that must not be printed: a join token or a static
// token. In the file it is written inline, or as an absolute path
// ("/run/secrets/token") whose file holds the value; the file is read by
// Config.ResolveSecrets (Load calls it), surrounding white space removed.
//
// Every way of formatting a Secret (String, %v, %#v, %q, %x, slog,
// encoding/json) shows "[redacted]" (or nothing when it is zero). Use
// Value to get the secret itself. The zero Secret means "not set".
type Secret struct {
	value string
	file  string
}

// NewSecret returns a Secret holding value, or, when value starts with
// "/", a Secret to be read from that file.
func NewSecret(value string) Secret {
	if strings.HasPrefix(value, "/") {
		return Secret{file: value}
	}
	return Secret{value: value}
}

// Value returns the secret; for a file secret, empty until
// ResolveSecrets has read the file.
func (s Secret) Value() string { return s.value }

// File returns the path the secret is read from, or "" for an inline secret.
func (s Secret) File() string { return s.file }

// IsZero reports whether the secret is unset.
func (s Secret) IsZero() bool { return s.value == "" && s.file == "" }

// raw is what the file holds: the path for a file secret, else the value.
func (s Secret) raw() string {
	if s.file != "" {
		return s.file
	}
	return s.value
}

// resolve reads a file secret.
func (s *Secret) resolve() error {
	if s.file == "" {
		return nil
	}
	v, err := readSecretFile(s.file)
	if err != nil {
		return err
	}
	s.value = v
	return nil
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("larger than %d bytes", maxSecretFile)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("file is empty")
	}
	return v, nil
}

func (s Secret) shown() string {
	if s.IsZero() {
		return ""
	}
	return redacted
}

// String returns "[redacted]", or "" for the zero Secret.
func (s Secret) String() string { return s.shown() }

// GoString returns "[redacted]", or "" for the zero Secret.
func (s Secret) GoString() string { return s.shown() }

// Format writes "[redacted]" for every verb.
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, s.shown()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }

// MarshalText implements encoding.TextMarshaler (used by encoding/json).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

// ResolveSecrets reads every secret given as a file path (the join
// token, static tokens, CA pin files). Load calls it; call it yourself
// after Parse when the secrets are needed. Errors name the file and key,
// never the content.
func (c *Config) ResolveSecrets() error {
	if err := c.Common.JoinParams.TokenName.resolve(); err != nil {
		return &Error{Path: "sallyport.join_params.token_name", Reason: "reading " + c.Common.JoinParams.TokenName.file + ": " + errText(err), Err: ErrSecretFile}
	}
	for i := range c.Auth.Tokens {
		if err := c.Auth.Tokens[i].Token.resolve(); err != nil {
			return &Error{Path: fmt.Sprintf("auth_service.tokens[%d]", i), Reason: "reading " + c.Auth.Tokens[i].Token.file + ": " + errText(err), Err: ErrSecretFile}
		}
	}
	var pins []string
	for i, p := range c.Common.CAPins {
		if !strings.HasPrefix(p, "/") {
			pins = append(pins, p)
			continue
		}
		v, err := readSecretFile(p)
		if err != nil {
			return &Error{Path: fmt.Sprintf("sallyport.ca_pin[%d]", i), Reason: "reading " + p + ": " + errText(err), Err: ErrSecretFile}
		}
		for _, line := range strings.Fields(v) {
			if r := checkPin(line); r != "" {
				return &Error{Path: fmt.Sprintf("sallyport.ca_pin[%d]", i), Reason: p + ": " + r, Err: ErrInvalid}
			}
			pins = append(pins, line)
		}
	}
	c.Common.CAPins = pins
	return nil
}

// errText shortens an *os.PathError to its cause, since the path is
// already in the message.
func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
