package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sallyport/sallyport/authapi"
	"github.com/sallyport/sallyport/proxy"
	"github.com/sallyport/sallyport/proxyconnect"
)

// maxLoginResponse bounds the body of /webapi/login read by the client.
const maxLoginResponse = 1 << 20

// trust says how the client verifies the proxy's web certificate.
type trust struct {
	// hostCAs are the cluster's host CAs saved by an earlier login.
	hostCAs []*x509.Certificate
	// pin is a "sha256:<hex>" CA pin: a certificate of the chain the
	// proxy sends must have it, and the leaf must chain to it.
	pin string
	// insecure skips verification.
	insecure bool
}

// tlsConfig verifies the proxy by system roots or the cluster's CAs (from
// a saved login or the pin).
func (t trust) tlsConfig(serverName string) *tls.Config {
	conf := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if t.insecure {
		conf.InsecureSkipVerify = true
		return conf
	}
	conf.InsecureSkipVerify = true // verified below, with more roots than the system's
	conf.VerifyConnection = func(st tls.ConnectionState) error {
		if len(st.PeerCertificates) == 0 {
			return errors.New("the proxy sent no certificate")
		}
		leaf := st.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range st.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		// System roots and the proxy's name first.
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: serverName, Intermediates: inter}); err == nil {
			return nil
		}
		roots := x509.NewCertPool()
		for _, c := range t.hostCAs {
			roots.AddCert(c)
		}
		if t.pin != "" {
			for _, c := range st.PeerCertificates {
				if authapi.CAPin(c) == t.pin {
					roots.AddCert(c)
				}
			}
		}
		// Cluster-signed certificates name the proxy's host ID and public
		// addresses, not necessarily the name dialed: the chain to the
		// cluster CA is what is checked.
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
			return &untrustedError{err: err}
		}
		return nil
	}
	return conf
}

// untrustedError says the proxy's certificate could not be verified.
type untrustedError struct{ err error }

func (e *untrustedError) Error() string {
	return "the proxy's certificate is not trusted (" + e.err.Error() + "): pass --ca-pin with the cluster's CA pin (auth writes it to <data_dir>/ca-pin), or --insecure to skip the check"
}
func (e *untrustedError) Unwrap() error { return e.err }

// httpClient returns a client that dials through HTTPS_PROXY/NO_PROXY.
func httpClient(t trust, proxyAddr string) *http.Client {
	host, _, err := net.SplitHostPort(proxyAddr)
	if err != nil {
		host = proxyAddr
	}
	var d proxyconnect.Dialer
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			TLSClientConfig:     t.tlsConfig(host),
			TLSHandshakeTimeout: 15 * time.Second,
			ForceAttemptHTTP2:   true,
		},
	}
}

// explain turns a transport error into advice.
func explain(proxyAddr string, err error) error {
	var ut *untrustedError
	if errors.As(err, &ut) {
		return ut
	}
	var pe *proxyconnect.ProxyError
	if errors.As(err, &pe) {
		return fmt.Errorf("cannot reach %s through the HTTP proxy: %w (check HTTPS_PROXY and NO_PROXY)", proxyAddr, err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return fmt.Errorf("cannot reach the proxy at %s: %w (check the address, and HTTPS_PROXY/NO_PROXY if you need an HTTP proxy)", proxyAddr, err)
	}
	return err
}

// ping reads /webapi/ping.
func ping(ctx context.Context, hc *http.Client, proxyAddr string) (*proxy.PingResponse, error) {
	p, err := proxy.Ping(ctx, hc, proxyAddr)
	if err != nil {
		return nil, explain(proxyAddr, err)
	}
	return p, nil
}

// postLogin calls /webapi/login.
func postLogin(ctx context.Context, hc *http.Client, proxyAddr string, req proxy.LoginRequest) (*proxy.LoginResponse, error) {
	body, _ := json.Marshal(req)
	u := url.URL{Scheme: "https", Host: proxyAddr, Path: proxy.LoginPath}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, explain(proxyAddr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLoginResponse))
	if err != nil {
		return nil, explain(proxyAddr, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e proxy.ErrorResponse
		json.Unmarshal(data, &e)
		msg := e.Error
		if msg == "" {
			msg = resp.Status
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return nil, fmt.Errorf("login refused: %s (check the user name, the password and, if you enrolled one, the --otp code)", msg)
		case http.StatusTooManyRequests:
			return nil, fmt.Errorf("login refused: %s (too many failed attempts; wait a minute)", msg)
		case http.StatusServiceUnavailable:
			return nil, fmt.Errorf("the proxy cannot reach the auth service: %s (try again later, or tell the cluster's operator)", msg)
		}
		return nil, fmt.Errorf("login failed: %s", msg)
	}
	var lr proxy.LoginResponse
	if err := json.Unmarshal(data, &lr); err != nil {
		return nil, fmt.Errorf("login: malformed answer: %w", err)
	}
	return &lr, nil
}

// readPassword reads the password from a file, or from stdin: with a
// prompt and without echo when it is a terminal.
func readPassword(file string, stdin io.Reader, stderr io.Writer) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	f, isFile := stdin.(*os.File)
	tty := false
	if isFile {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	if tty {
		fmt.Fprint(stderr, "Password: ")
		if err := stty(f, "-echo"); err == nil {
			defer func() { stty(f, "echo"); fmt.Fprintln(stderr) }()
		}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func parsePEMCerts(s string) []*x509.Certificate {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			out = append(out, c)
		}
	}
}
