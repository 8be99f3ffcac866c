package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/proxy"
	"github.com/sallyport/sallyport/proxyconnect"
)

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sallyport "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func login(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("login", stderr)
	proxyAddr := fs.String("proxy", os.Getenv("SALLYPORT_PROXY"), "the proxy's web address, host:port (default $SALLYPORT_PROXY)")
	user := fs.String("user", os.Getenv("USER"), "cluster user name")
	passwordFile := fs.String("password-file", "", "read the password from this file (default: prompt, or a line of standard input)")
	otp := fs.String("otp", "", "current code of your authenticator app, if you enrolled one")
	pin := fs.String("ca-pin", "", "the cluster CA pin (sha256:...) to trust a proxy whose certificate the system does not")
	insecure := fs.Bool("insecure", false, "do not verify the proxy's certificate (testing only)")
	ttl := fs.Duration("ttl", 0, "certificate lifetime wanted; zero means the longest your roles allow")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of the whole login")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *proxyAddr == "" {
		return errors.New("login: --proxy HOST:PORT is required (the address of the cluster's proxy, e.g. proxy.example.com:443)")
	}
	if _, _, err := net.SplitHostPort(*proxyAddr); err != nil {
		*proxyAddr = net.JoinHostPort(*proxyAddr, "443")
	}
	if !validHostPort(*proxyAddr) {
		return fmt.Errorf("login: --proxy %q is not a host:port", *proxyAddr)
	}
	if *user == "" {
		return errors.New("login: --user is required")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	tr := trust{pin: *pin, insecure: *insecure}
	if old, err := loadProfile(*proxyAddr); err == nil {
		tr.hostCAs = old.hostCAs()
	}
	if *pin != "" {
		cas, err := pinnedHostCAs(ctx, *proxyAddr, *pin)
		if err != nil {
			return err
		}
		tr.hostCAs = append(tr.hostCAs, cas...)
	}
	hc := httpClient(tr, *proxyAddr)
	defer hc.CloseIdleConnections()
	pr, err := ping(ctx, hc, *proxyAddr)
	if err != nil {
		return err
	}
	password, err := readPassword(*passwordFile, stdin, stderr)
	if err != nil {
		return fmt.Errorf("reading the password: %w", err)
	}
	lr, err := postLogin(ctx, hc, *proxyAddr, proxy.LoginRequest{User: *user, Password: password, TOTP: *otp, TTL: authapi.Duration(*ttl)})
	if err != nil {
		return err
	}
	if !validHostPort(lr.ClusterName+":1") || strings.Contains(lr.ClusterName, ":") {
		return fmt.Errorf("login: the proxy answered an unusable cluster name %q", lr.ClusterName)
	}
	dir, err := profileDir(*proxyAddr)
	if err != nil {
		return err
	}
	p := &profile{Proxy: *proxyAddr, SSHAddr: sshAddr(*proxyAddr, pr), Cluster: lr.ClusterName, User: lr.User, Logins: lr.Logins, Expires: lr.Expires, dir: dir}
	if err := save(p, lr); err != nil {
		return err
	}
	example := "LOGIN"
	if len(p.Logins) > 0 {
		example = p.Logins[0]
	}
	fmt.Fprintf(stdout, `Logged in to cluster %s as %s, valid until %s.
Logins: %s
Files:  %s

To use the stock ssh client, add this line to ~/.ssh/config:
    Include %s
then:   ssh %s@NODE.%s
or:     sallyport ssh %s@NODE      (list nodes with: sallyport ls)
`, p.Cluster, p.User, p.Expires.Local().Format(time.RFC1123), strings.Join(p.Logins, ", "), p.dir, p.path(fileSSHConfig), example, p.Cluster, example)
	return nil
}

// sshAddr is where OpenSSH reaches the proxy's SSH jump host: the address
// the user gave when the proxy routes everything on one port, else the
// advertised SSH address.
func sshAddr(proxyAddr string, pr *proxy.PingResponse) string {
	if pr.Proxy.TLSRoutingEnabled {
		return proxyAddr
	}
	if a := pr.Proxy.SSH.SSHPublicAddr; validHostPort(a) {
		return a
	}
	host, _, _ := net.SplitHostPort(proxyAddr)
	_, port, err := net.SplitHostPort(pr.Proxy.SSH.ListenAddr)
	if a := net.JoinHostPort(host, port); err == nil && validHostPort(a) {
		return a
	}
	return net.JoinHostPort(host, fmt.Sprint(proxy.DefaultSSHPort))
}

// authClient calls the auth service as the logged-in user, through the
// proxy's TLS passthrough (and HTTPS_PROXY when set).
func authClient(p *profile) (*authapi.Client, error) {
	creds, err := authapi.LoadCredentials(p.path(fileCredentials))
	if err != nil {
		return nil, fmt.Errorf("%w (run `sallyport login --proxy %s --user %s`)", err, p.Proxy, p.User)
	}
	var d proxyconnect.Dialer
	return authapi.NewClient(&authapi.ClientConfig{
		Addrs:       []string{p.Proxy},
		Credentials: creds,
		ALPN:        []string{authapi.ALPN},
		DialContext: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		MaxRetries:  2,
	})
}

func ls(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ls", stderr)
	proxyAddr := fs.String("proxy", "", "the login to use (default: the current one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := loadProfile(*proxyAddr)
	if err != nil {
		return err
	}
	if err := p.valid(); err != nil {
		return err
	}
	c, err := authClient(p)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.API().ListServers(ctx, &authv1.ListServersRequest{Kind: authapi.RoleAgent})
	if err != nil {
		switch status.Code(err) {
		case codes.Unauthenticated, codes.PermissionDenied:
			return fmt.Errorf("the cluster refused your certificate: %v (run `sallyport login --proxy %s --user %s`)", err, p.Proxy, p.User)
		case codes.Unavailable, codes.DeadlineExceeded:
			return fmt.Errorf("cannot reach the cluster through %s: %v (check the proxy address and HTTPS_PROXY/NO_PROXY)", p.Proxy, err)
		}
		return err
	}
	srvs := resp.GetServers()
	sort.Slice(srvs, func(i, j int) bool { return srvs[i].GetHostname() < srvs[j].GetHostname() })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHOST ID\tLABELS\tSSH AS")
	for _, s := range srvs {
		var labels []string
		for k, v := range s.GetLabels() {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s.%s\n", s.GetHostname(), s.GetName(), strings.Join(labels, ","), s.GetHostname(), p.Cluster)
	}
	return tw.Flush()
}

// sshValueFlags are the ssh options that take a value.
const sshValueFlags = "BbcDEeFIiJLlmOopQRSWw"

func sshCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	p, err := loadProfile(os.Getenv("SALLYPORT_PROXY"))
	if err != nil {
		return err
	}
	if err := p.valid(); err != nil {
		return err
	}
	// ssh options before the target pass through.
	var opts []string
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		opts = append(opts, args[i])
		if len(args[i]) == 2 && strings.ContainsRune(sshValueFlags, rune(args[i][1])) && i+1 < len(args) {
			i++
			opts = append(opts, args[i])
		}
	}
	if i >= len(args) {
		return errors.New("ssh: want [LOGIN@]NODE [COMMAND...] (list nodes with: sallyport ls)")
	}
	target, rest := args[i], args[i+1:]
	login, host, hasLogin := strings.Cut(target, "@")
	if !hasLogin {
		host, login = target, ""
		// Without a login, ssh would use the local user name; use the
		// certificate's first login when that is not one of them.
		if u, err := osuser.Current(); len(p.Logins) > 0 && (err != nil || !slices.Contains(p.Logins, u.Username)) && !slices.Contains(opts, "-l") {
			login = p.Logins[0]
		}
	}
	if !strings.HasSuffix(host, "."+p.Cluster) {
		host += "." + p.Cluster
	}
	if login != "" {
		host = login + "@" + host
	}
	bin, err := exec.LookPath("ssh")
	if err != nil {
		return errors.New("ssh: the OpenSSH client is not installed (apt-get install openssh-client)")
	}
	argv := append([]string{"-F", p.path(fileSSHConfig)}, opts...)
	argv = append(argv, host)
	argv = append(argv, rest...)
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	return cmd.Run()
}

func statusCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	proxyAddr := fs.String("proxy", "", "the login to show (default: the current one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := loadProfile(*proxyAddr)
	if err != nil {
		return err
	}
	state := "valid until " + p.Expires.Local().Format(time.RFC1123) + " (" + time.Until(p.Expires).Round(time.Minute).String() + " left)"
	verr := p.valid()
	if verr != nil {
		state = "EXPIRED at " + p.Expires.Local().Format(time.RFC1123)
	}
	fmt.Fprintf(stdout, "Proxy:        %s\nCluster:      %s\nUser:         %s\nLogins:       %s\nCertificates: %s\nSSH config:   %s\n",
		p.Proxy, p.Cluster, p.User, strings.Join(p.Logins, ", "), state, p.path(fileSSHConfig))
	return verr
}

func logout(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("logout", stderr)
	proxyAddr := fs.String("proxy", "", "the login to remove (default: the current one)")
	all := fs.Bool("all", false, "remove every login")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h, err := home()
	if err != nil {
		return err
	}
	if *all {
		if err := os.RemoveAll(filepath.Join(h, "keys")); err != nil {
			return err
		}
		os.Remove(filepath.Join(h, fileCurrent))
		fmt.Fprintln(stdout, "Logged out of every cluster.")
		return nil
	}
	p, err := loadProfile(*proxyAddr)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return err
	}
	if cur, err := os.ReadFile(filepath.Join(h, fileCurrent)); err == nil && strings.TrimSpace(string(cur)) == p.Proxy {
		os.Remove(filepath.Join(h, fileCurrent))
	}
	fmt.Fprintf(stdout, "Logged out of %s (%s); remove its Include line from ~/.ssh/config if you added one.\n", p.Cluster, p.Proxy)
	return nil
}

// pinnedHostCAs fetches the cluster's host CAs from the auth service
// through the proxy's TLS passthrough; the auth client checks the CA
// against pin before anything is sent.
func pinnedHostCAs(ctx context.Context, proxyAddr, pin string) ([]*x509.Certificate, error) {
	var d proxyconnect.Dialer
	c, err := authapi.NewClient(&authapi.ClientConfig{
		Addrs: []string{proxyAddr}, CAPin: pin, ALPN: []string{authapi.ALPN}, MaxRetries: -1,
		DialContext: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	resp, err := c.API().GetCertAuthorities(ctx, &authv1.GetCertAuthoritiesRequest{})
	if err != nil {
		if errors.Is(err, authapi.ErrPinMismatch) || strings.Contains(err.Error(), "pin") {
			return nil, fmt.Errorf("the cluster behind %s does not match --ca-pin %s: %w (check the pin; auth writes it to <data_dir>/ca-pin)", proxyAddr, pin, err)
		}
		return nil, explain(proxyAddr, fmt.Errorf("fetching the cluster CA: %w", err))
	}
	var out []*x509.Certificate
	for _, ca := range resp.GetAuthorities() {
		if ca.GetType() != authapi.CAHost {
			continue
		}
		if cert, err := x509.ParseCertificate(ca.GetTlsCert()); err == nil {
			out = append(out, cert)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the cluster sent no host CA")
	}
	return out, nil
}
