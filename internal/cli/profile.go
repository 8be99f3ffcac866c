package cli

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/authapi"
	"github.com/sallyport/sallyport/proxy"
)

// errNotLoggedIn says no login is stored.
var errNotLoggedIn = errors.New("not logged in: run `sallyport login --proxy HOST:PORT --user NAME`")

// profile is what a login leaves in ~/.sallyport/keys/<proxy>/profile.json.
type profile struct {
	Proxy   string    `json:"proxy"`    // the proxy's web address, as given to login
	SSHAddr string    `json:"ssh_addr"` // where OpenSSH reaches the proxy's SSH jump host
	Cluster string    `json:"cluster"`
	User    string    `json:"user"`
	Logins  []string  `json:"logins"`
	Expires time.Time `json:"expires"`

	dir string
}

// Files of a profile directory.
const (
	fileProfile     = "profile.json"
	fileKey         = "id_ed25519"
	fileCert        = "id_ed25519-cert.pub"
	fileTLSCert     = "tls.crt"
	fileTLSKey      = "tls.key"
	fileCAs         = "cas.pem"
	fileKnownHosts  = "known_hosts"
	fileSSHConfig   = "ssh_config"
	fileCredentials = "identity.json"
	fileCurrent     = "current"
)

// home is $SALLYPORT_HOME or ~/.sallyport.
func home() (string, error) {
	if h := os.Getenv("SALLYPORT_HOME"); h != "" {
		return filepath.Abs(h)
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(h, ".sallyport"), nil
}

// dirName turns a proxy address into a directory name.
func dirName(proxyAddr string) string {
	r := strings.NewReplacer(":", "_", "/", "_", "[", "", "]", "")
	return r.Replace(proxyAddr)
}

func profileDir(proxyAddr string) (string, error) {
	h, err := home()
	if err != nil {
		return "", err
	}
	return filepath.Join(h, "keys", dirName(proxyAddr)), nil
}

// loadProfile reads the profile of proxyAddr, or of the current login
// when proxyAddr is empty.
func loadProfile(proxyAddr string) (*profile, error) {
	h, err := home()
	if err != nil {
		return nil, err
	}
	if proxyAddr == "" {
		b, err := os.ReadFile(filepath.Join(h, fileCurrent))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNotLoggedIn
		} else if err != nil {
			return nil, err
		}
		proxyAddr = strings.TrimSpace(string(b))
	}
	dir := filepath.Join(h, "keys", dirName(proxyAddr))
	b, err := os.ReadFile(filepath.Join(dir, fileProfile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNotLoggedIn
	} else if err != nil {
		return nil, err
	}
	var p profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w (run `sallyport login` again)", filepath.Join(dir, fileProfile), err)
	}
	p.dir = dir
	return &p, nil
}

func (p *profile) path(name string) string { return filepath.Join(p.dir, name) }

// valid fails with advice when the certificates expired.
func (p *profile) valid() error {
	if time.Now().After(p.Expires) {
		return fmt.Errorf("your certificates for %s expired at %s: run `sallyport login --proxy %s --user %s`", p.Cluster, p.Expires.Local().Format(time.RFC1123), p.Proxy, p.User)
	}
	return nil
}

// hostCAs returns the cluster's host CAs saved at login.
func (p *profile) hostCAs() []*x509.Certificate {
	b, err := os.ReadFile(p.path(fileCAs))
	if err != nil {
		return nil
	}
	return parsePEMCerts(string(b))
}

// save writes the login answer as the profile's files and makes it the
// current login.
func save(p *profile, lr *proxy.LoginResponse) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	creds, err := credentialsJSON(lr)
	if err != nil {
		return err
	}
	pj, _ := json.MarshalIndent(p, "", "  ")
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{fileKey, lr.SSHPrivateKey, 0o600},
		{fileCert, lr.SSHCert, 0o644},
		{fileTLSCert, lr.TLSCert, 0o644},
		{fileTLSKey, lr.TLSKey, 0o600},
		{fileCAs, lr.HostCAs, 0o644},
		{fileKnownHosts, knownHosts(p, lr.KnownHosts), 0o644},
		{fileSSHConfig, sshConfig(p), 0o644},
		{fileCredentials, string(creds), 0o600},
		{fileProfile, string(pj) + "\n", 0o644},
	}
	for _, f := range files {
		if err := writeFile(p.path(f.name), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	h, err := home()
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(h, fileCurrent), []byte(p.Proxy+"\n"), 0o644)
}

// writeFile replaces path atomically.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// validHostPort reports whether s is a host:port that is safe to write
// into ssh_config and known_hosts (no white space, quotes or patterns).
func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" || len(s) > 300 {
		return false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range host {
		ok := c == '.' || c == '-' || c == '_' || c == ':' || c == '%' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// proxyHostPatterns are the known_hosts names of the proxy's SSH address
// (none when the address is not a plain host:port).
func proxyHostPatterns(sshAddr string) []string {
	if !validHostPort(sshAddr) {
		return nil
	}
	host, port, _ := net.SplitHostPort(sshAddr)
	if port == "22" {
		return []string{host}
	}
	return []string{"[" + host + "]:" + port}
}

// knownHosts rewrites the answer's "@cert-authority * KEY" lines so that
// they name the cluster's nodes and the proxy only.
func knownHosts(p *profile, lines string) string {
	names := append([]string{"*." + p.Cluster}, proxyHostPatterns(p.SSHAddr)...)
	var b strings.Builder
	for _, line := range strings.Split(lines, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "@cert-authority" {
			continue
		}
		fmt.Fprintf(&b, "@cert-authority %s %s\n", strings.Join(names, ","), strings.Join(f[2:], " "))
	}
	return b.String()
}

// proxyAlias is the Host name the snippet gives the proxy's jump host.
func proxyAlias(p *profile) string { return "sallyport-proxy." + p.Cluster }

// sshConfig is the OpenSSH configuration snippet of a login: every
// "*.<cluster>" host goes through the proxy with the login's certificate
// and the cluster's host CA.
func sshConfig(p *profile) string {
	host, port, err := net.SplitHostPort(p.SSHAddr)
	if err != nil {
		host, port = p.SSHAddr, "22"
	}
	q := func(s string) string {
		if strings.ContainsAny(s, " \t\"") {
			return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
		}
		return s
	}
	common := fmt.Sprintf(`    IdentityFile %s
    CertificateFile %s
    IdentitiesOnly yes
    UserKnownHostsFile %s
    StrictHostKeyChecking yes
`, q(p.path(fileKey)), q(p.path(fileCert)), q(p.path(fileKnownHosts)))
	return fmt.Sprintf(`# sallyport: cluster %s through the proxy %s, logged in as %s.
# Written by "sallyport login"; include it from ~/.ssh/config with
#   Include %s
Host %s
    HostName %s
    Port %s
    ProxyJump none
%s
Host *.%s
    ProxyJump %s
%s`, p.Cluster, p.Proxy, p.User, q(p.path(fileSSHConfig)), proxyAlias(p), host, port, common, p.Cluster, proxyAlias(p), common)
}

// credentialsJSON converts the login answer into an authapi credentials
// file, to call the auth service (through the proxy) as the user.
func credentialsJSON(lr *proxy.LoginResponse) ([]byte, error) {
	raw, err := ssh.ParseRawPrivateKey([]byte(lr.SSHPrivateKey))
	if err != nil {
		return nil, fmt.Errorf("login answer: ssh key: %w", err)
	}
	if k, ok := raw.(*ed25519.PrivateKey); ok {
		raw = *k
	}
	der, err := x509.MarshalPKCS8PrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("login answer: ssh key: %w", err)
	}
	type ca struct {
		Type         string `json:"type"`
		TLSCert      string `json:"tls_cert"`
		SSHPublicKey string `json:"ssh_public_key"`
	}
	var sshCA string
	for _, line := range strings.Split(lr.KnownHosts, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "@cert-authority" {
			sshCA = f[2] + " " + f[3]
			break
		}
	}
	var cas []ca
	for _, c := range parsePEMCerts(lr.HostCAs) {
		cas = append(cas, ca{Type: authapi.CAHost, TLSCert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})), SSHPublicKey: sshCA})
	}
	f := struct {
		Cluster string `json:"cluster"`
		TLSCert string `json:"tls_cert"`
		TLSKey  string `json:"tls_key"`
		SSHCert string `json:"ssh_cert"`
		SSHKey  string `json:"ssh_key"`
		CAs     []ca   `json:"cas"`
	}{lr.ClusterName, lr.TLSCert, lr.TLSKey, lr.SSHCert, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), cas}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	if _, err := authapi.ParseCredentials(b); err != nil {
		return nil, fmt.Errorf("login answer: %w", err)
	}
	return b, nil
}
