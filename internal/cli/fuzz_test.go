package cli

import (
	"strings"
	"testing"

	"github.com/sallyport/sallyport/proxy"
)

// FuzzKnownHosts checks that any login answer's known_hosts text becomes
// only "@cert-authority" lines scoped to the cluster and the proxy.
func FuzzKnownHosts(f *testing.F) {
	f.Add("@cert-authority * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE host-ca\n", "127.0.0.1:3080")
	f.Add("# c\n\n@cert-authority\n@cert-authority *\n", "p:22")
	f.Add("x y z\n@cert-authority a b c d e f\n", "[::1]:443")
	f.Fuzz(func(t *testing.T, lines, sshAddr string) {
		p := &profile{Cluster: "c.test", SSHAddr: sshAddr}
		out := knownHosts(p, lines)
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if l == "" && out == "" {
				continue
			}
			f := strings.Fields(l)
			if len(f) < 3 || f[0] != "@cert-authority" || !strings.HasPrefix(f[1], "*.c.test") || strings.ContainsAny(f[1], "\r\t ") {
				t.Fatalf("line %q", l)
			}
		}
	})
}

// FuzzCredentialsJSON checks that malformed login answers are errors, not
// panics.
func FuzzCredentialsJSON(f *testing.F) {
	f.Add("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "", "@cert-authority * ssh-ed25519 AAAA")
	f.Add("", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "")
	f.Fuzz(func(t *testing.T, key, cas, kh string) {
		credentialsJSON(&proxy.LoginResponse{SSHPrivateKey: key, HostCAs: cas, KnownHosts: kh, TLSCert: cas})
	})
}
