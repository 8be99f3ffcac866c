package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ErrNoIdentity is returned by LoadIdentity when no usable identity file
// exists (missing, unreadable, expiring, or of another cluster).
var ErrNoIdentity = errors.New("daemon: no usable identity")

// NewLogger returns a logger writing to w at severity (debug, info, warn,
// error; zero means info) in format (text or json; zero means text).
func NewLogger(w io.Writer, severity, format string) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(severity) {
	case "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.ToLower(format) == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// LoadIdentity reads the host identity an earlier run saved at path. It
// fails with ErrNoIdentity when there is none, when it expires within
// minValid, or when pin is set and the identity's cluster CA has another
// pin.
func LoadIdentity(path, pin string, minValid time.Duration) (*authapi.Credentials, error) {
	c, err := authapi.LoadCredentials(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoIdentity, err)
	}
	if left := time.Until(c.Certificate.Leaf.NotAfter); left < minValid {
		return nil, fmt.Errorf("%w: %s expires in %s", ErrNoIdentity, path, left.Round(time.Second))
	}
	if pin != "" && c.CAPin() != pin {
		return nil, fmt.Errorf("%w: %s belongs to a cluster with CA pin %s, not %s", ErrNoIdentity, path, c.CAPin(), pin)
	}
	return c, nil
}

// SaveIdentity writes c to path (mode 0600), creating the directory.
func SaveIdentity(path string, c *authapi.Credentials) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return c.Save(path)
}

// LocalJoinToken is how an instance whose configuration file also enables
// the auth service (a single-machine cluster) joins without a token in the
// file: it waits (until ctx ends) for the admin identity that the auth
// service writes to dataDir/admin.json, creates a one-use join token for
// role with it, and returns the token and the CA pin.
func LocalJoinToken(ctx context.Context, dataDir string, authAddrs []string, role string) (token, pin string, err error) {
	path := filepath.Join(dataDir, "admin.json")
	var admin *authapi.Credentials
	for {
		admin, err = authapi.LoadCredentials(path)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("daemon: waiting for the local auth service's %s: %w (is auth running with the same data_dir?)", path, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	c, err := authapi.NewClient(&authapi.ClientConfig{Addrs: authAddrs, Credentials: admin})
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	resp, err := c.API().CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{Roles: []string{role}, Ttl: durationpb.New(10 * time.Minute), Uses: 1})
	if err != nil {
		return "", "", fmt.Errorf("daemon: local join token: %w", err)
	}
	return resp.GetToken(), admin.CAPin(), nil
}
