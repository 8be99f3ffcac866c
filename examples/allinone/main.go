// Command allinone runs a whole sallyport cluster in one process: the Auth
// Service on an embedded SQLite backend, the Proxy Service (web API, SSH
// jump host and reverse tunnels on one port) and an agent that serves SSH
// for this machine through a reverse tunnel, recording sessions to a local
// directory. The proxy serves its certificate signed by the cluster's own
// (self-signed) CA; clients pin that CA.
//
//	go run ./examples/allinone                # serve until interrupted; prints how to log in and ssh
//	go run ./examples/allinone -selftest      # log in with the CLI code path, ssh with OpenSSH, exit 0/1
//
// State lives in -data-dir (default ./sallyport-data): state.db (the
// cluster), records/ (session recordings), spool/, agent-identity.json
// (the node's host identity) and alice.password (the demo user's password,
// made up at the first start).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/backend"
	_ "github.com/sallyport/sallyport/backend/sqlite"
	"github.com/sallyport/sallyport/internal/cli"
	"github.com/sallyport/sallyport/proxy"
	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/file"
	"github.com/sallyport/sallyport/sshserver"
)

// options are the example's flags.
type options struct {
	dataDir, webAddr, authAddr, cluster, node, user string
	selftest, verbose                               bool
}

func main() {
	var o options
	flag.StringVar(&o.dataDir, "data-dir", "sallyport-data", "directory for the cluster state, recordings and the demo password (a temporary one with -selftest)")
	flag.StringVar(&o.webAddr, "web-addr", "", "proxy address: web API, SSH and tunnels (default 127.0.0.1:3080; a free port with -selftest)")
	flag.StringVar(&o.authAddr, "auth-addr", "", "auth API address (default 127.0.0.1:3025; a free port with -selftest)")
	flag.StringVar(&o.cluster, "cluster", "sallyport.local", "cluster name")
	flag.StringVar(&o.node, "node", "", "this machine's node name (default the short host name)")
	flag.StringVar(&o.user, "user", "alice", "demo cluster user")
	flag.BoolVar(&o.selftest, "selftest", false, "log in with the CLI code path, ssh with the OpenSSH client, print checked results, exit 0 or 1")
	flag.BoolVar(&o.verbose, "v", false, "log what the services do")
	flag.Parse()
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	} else if !o.selftest {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(o, log); err != nil {
		fmt.Fprintln(os.Stderr, "allinone:", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger) error {
	if o.webAddr == "" {
		o.webAddr = "127.0.0.1:3080"
		if o.selftest {
			o.webAddr = "127.0.0.1:0"
		}
	}
	if o.authAddr == "" {
		o.authAddr = "127.0.0.1:3025"
		if o.selftest {
			o.authAddr = "127.0.0.1:0"
		}
	}
	if o.selftest {
		tmp, err := os.MkdirTemp("", "sallyport-allinone-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		o.dataDir = filepath.Join(tmp, "data")
		os.Setenv("SALLYPORT_HOME", filepath.Join(tmp, "home"))
	}
	if o.node == "" {
		h, _ := os.Hostname()
		o.node, _, _ = strings.Cut(h, ".")
		if o.node == "" {
			o.node = "node1"
		}
	}
	me, err := user.Current()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := start(ctx, o, me.Username, log)
	if err != nil {
		return err
	}
	defer c.close(log)
	if o.selftest {
		return selftest(ctx, c, o, me.Username)
	}
	fmt.Printf(`sallyport all-in-one cluster %q is running.
  proxy (web API, SSH, tunnels): %s
  auth API:                      %s
  node:                          %s (labels env=demo), SSH logins: %s
  user:                          %s, password in %s
  data:                          %s (recordings in records/)

Log in with the CLI and ssh with the stock OpenSSH client:
  go run ./cmd/sallyport login --proxy %s --user %s --password-file %s --ca-pin %s
  ssh -F ~/.sallyport/keys/%s/ssh_config %s@%s.%s
or:
  go run ./cmd/sallyport ssh %s@%s

Stop with Ctrl-C.
`, o.cluster, c.webAddr, c.authAddr, o.node, me.Username, o.user, c.pwFile, c.dataDir,
		c.webAddr, o.user, c.pwFile, c.pin, strings.ReplaceAll(c.webAddr, ":", "_"), me.Username, o.node, o.cluster, me.Username, o.node)
	select {
	case <-ctx.Done():
	case err := <-c.errc:
		return err
	}
	fmt.Println("\nshutting down")
	return nil
}

// cluster is the running composition.
type cluster struct {
	dataDir, webAddr, authAddr, pwFile, pin string
	backend                                 backend.Backend
	auth                                    *authapi.Server
	admin                                   *authapi.Client
	proxy                                   *proxy.Service
	agent                                   *agent.Agent
	spool                                   *recorder.Spool
	errc                                    chan error
	done                                    []chan struct{}
}

// start composes auth, proxy and agent the way cmd/auth, cmd/proxy and
// cmd/agent do, in one process.
func start(ctx context.Context, o options, login string, log *slog.Logger) (_ *cluster, err error) {
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &cluster{dataDir: dir, errc: make(chan error, 3)}
	defer func() {
		if err != nil {
			c.close(log)
		}
	}()
	serve := func(name string, f func() error) {
		done := make(chan struct{})
		c.done = append(c.done, done)
		go func() {
			defer close(done)
			if err := f(); err != nil && !errors.Is(err, authapi.ErrServerClosed) && !errors.Is(err, proxy.ErrServerClosed) && !errors.Is(err, agent.ErrServerClosed) {
				c.errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	// Auth Service on SQLite.
	if c.backend, err = backend.Open(ctx, "sqlite://"+filepath.Join(dir, "state.db")); err != nil {
		return nil, err
	}
	if c.auth, err = authapi.New(ctx, &authapi.Config{Backend: c.backend, ClusterName: o.cluster, HostID: "auth-allinone", Logger: log.With("service", "auth")}); err != nil {
		return nil, err
	}
	c.pin = c.auth.CAPin()
	authL, err := net.Listen("tcp", o.authAddr)
	if err != nil {
		return nil, err
	}
	c.authAddr = authL.Addr().String()
	serve("auth", func() error { return c.auth.Serve(authL) })
	adminCreds, err := c.auth.IssueIdentity(ctx, "admin", "allinone-admin", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if c.admin, err = authapi.NewClient(&authapi.ClientConfig{Addrs: []string{c.authAddr}, Credentials: adminCreds}); err != nil {
		return nil, err
	}
	api := c.admin.API()

	// The demo role and user.
	role := authapi.Role{Name: "access", Logins: []string{login}, NodeLabels: map[string][]string{"*": {"*"}}}
	if _, err := api.UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: role.Proto()}); err != nil {
		return nil, err
	}
	c.pwFile = filepath.Join(dir, o.user+".password")
	pw, err := os.ReadFile(c.pwFile)
	if err != nil {
		var b [12]byte
		rand.Read(b[:])
		pw = []byte(hex.EncodeToString(b[:]))
		if err := os.WriteFile(c.pwFile, append(pw, '\n'), 0o600); err != nil {
			return nil, err
		}
	}
	if _, err := api.UpsertUser(ctx, &authv1.UpsertUserRequest{Name: o.user, Roles: []string{"access"}, Password: strings.TrimSpace(string(pw))}); err != nil {
		return nil, err
	}
	token := func(role string) (string, error) {
		r, err := api.CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{Roles: []string{role}, Uses: 1})
		return r.GetToken(), err
	}

	// Proxy Service: everything on one port.
	webL, err := net.Listen("tcp", o.webAddr)
	if err != nil {
		return nil, err
	}
	c.webAddr = webL.Addr().String()
	ptok, err := token(authapi.RoleProxy)
	if err != nil {
		webL.Close()
		return nil, err
	}
	if c.proxy, err = proxy.New(ctx, &proxy.Config{AuthAddrs: []string{c.authAddr}, JoinToken: ptok, CAPin: c.pin, NodeName: "proxy", PublicAddrs: []string{c.webAddr}, Logger: log.With("service", "proxy")}); err != nil {
		webL.Close()
		return nil, err
	}
	serve("proxy", func() error { return c.proxy.Serve(proxy.Listeners{Web: webL}) })

	// Recordings: a local spool uploading to a local directory.
	store, err := file.Open(filepath.Join(dir, "records"))
	if err != nil {
		return nil, err
	}
	if c.spool, err = recorder.Open(ctx, &recorder.Config{Dir: filepath.Join(dir, "spool"), Store: store, Logger: log.With("service", "recorder")}); err != nil {
		return nil, err
	}

	// Agent: joins (its certificate names it <node>.<cluster> too, the name
	// users type) and serves SSH through a reverse tunnel to the proxy.
	atok, err := token(authapi.RoleAgent)
	if err != nil {
		return nil, err
	}
	// The identity is kept in the data directory, so that a restarted
	// cluster knows the node by the same host ID.
	idFile := filepath.Join(dir, "agent-identity.json")
	creds, err := authapi.LoadCredentials(idFile)
	if err != nil || creds.CAPin() != c.pin || time.Until(creds.Certificate.Leaf.NotAfter) < time.Hour {
		if creds, err = authapi.Join(ctx, authapi.JoinConfig{Addrs: []string{c.authAddr}, Token: atok, CAPin: c.pin, NodeName: o.node, PublicAddrs: []string{o.node + "." + o.cluster}}); err != nil {
			return nil, err
		}
		if err := creds.Save(idFile); err != nil {
			return nil, err
		}
	}
	spool := c.spool
	if c.agent, err = agent.New(ctx, &agent.Config{
		ProxyAddr: c.webAddr, Credentials: creds, NodeName: o.node, Labels: map[string]string{"env": "demo"},
		SSH: sshserver.Config{Recorder: func(ctx context.Context, s sshserver.SessionInfo) (sshserver.Recording, error) {
			return spool.NewSession(ctx, recorder.Meta{ID: s.ID, User: s.User, Login: s.Login, Node: s.Node, Remote: s.RemoteAddr,
				Command: s.Command, Start: s.Start, Width: s.Width, Height: s.Height, Term: s.Term})
		}},
		Logger: log.With("service", "agent"),
	}); err != nil {
		return nil, err
	}
	a := c.agent
	serve("agent", func() error { return a.Serve(ctx) })

	// Ready when the proxy knows the node and holds its tunnel.
	deadline := time.Now().Add(30 * time.Second)
	for !c.nodeReady(o.node) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the node did not come up within 30s (tunnels %v)", a.Proxies())
		}
		select {
		case err := <-c.errc:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return c, nil
}

func (c *cluster) nodeReady(name string) bool {
	for _, n := range c.proxy.Nodes() {
		if n.Name != name {
			continue
		}
		for _, id := range c.proxy.Tunnels().Agents() {
			if id == n.HostID {
				return true
			}
		}
	}
	return false
}

// close drains the services in reverse order.
func (c *cluster) close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c.agent != nil {
		c.agent.Shutdown(ctx)
	}
	if c.proxy != nil {
		c.proxy.Shutdown(ctx)
	}
	if c.admin != nil {
		c.admin.Close()
	}
	if c.auth != nil {
		c.auth.Shutdown(ctx)
	}
	for _, d := range c.done {
		<-d
	}
	if c.spool != nil {
		if err := c.spool.Shutdown(ctx); err != nil {
			log.Warn("recordings left in the spool", "err", err)
		}
	}
	if c.backend != nil {
		c.backend.Close()
	}
}

// selftest logs in with the CLI code path and runs the OpenSSH client.
func selftest(ctx context.Context, c *cluster, o options, login string) error {
	failed := 0
	check := func(name string, ok bool, detail string) {
		if ok {
			fmt.Printf("ok   %s\n", name)
			return
		}
		failed++
		fmt.Printf("FAIL %s\n%s\n", name, indent(detail))
	}
	cliRun := func(args ...string) (string, error) {
		var out strings.Builder
		err := cli.Run(ctx, args, strings.NewReader(""), &out, &out)
		return out.String(), err
	}
	out, err := cliRun("login", "--proxy", c.webAddr, "--user", o.user, "--password-file", c.pwFile, "--ca-pin", c.pin)
	check("sallyport login --proxy "+c.webAddr+" --user "+o.user, err == nil && strings.Contains(out, "Logged in to cluster "+o.cluster), fmt.Sprint(err, "\n", out))
	out, err = cliRun("login", "--proxy", c.webAddr, "--user", o.user, "--password-file", "/dev/null")
	check("a wrong password is refused with advice", err != nil && strings.Contains(err.Error(), "login refused"), fmt.Sprint(err, "\n", out))
	out, err = cliRun("ls")
	check("sallyport ls lists "+o.node+"."+o.cluster, err == nil && strings.Contains(out, o.node+"."+o.cluster), fmt.Sprint(err, "\n", out))

	home := os.Getenv("SALLYPORT_HOME")
	snippet := filepath.Join(home, "keys", strings.ReplaceAll(c.webAddr, ":", "_"), "ssh_config")
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		check("OpenSSH client installed", false, "apt-get install openssh-client")
	} else {
		target := login + "@" + o.node + "." + o.cluster
		cmd := exec.CommandContext(ctx, sshBin, "-F", snippet, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", target, "echo allinone-$((6*7))")
		b, err := cmd.CombinedOutput()
		check("ssh -F "+snippet+" "+target+" (stock OpenSSH through the proxy and the reverse tunnel)", err == nil && strings.TrimSpace(string(b)) == "allinone-42", fmt.Sprint(err, "\n", string(b)))
		// An interactive (pty) session is recorded and uploaded.
		cmd = exec.CommandContext(ctx, sshBin, "-F", snippet, "-tt", "-o", "BatchMode=yes", target, "echo recorded-$((6*7))")
		b, err = cmd.CombinedOutput()
		recorded := err == nil && waitRecording(filepath.Join(c.dataDir, "records"), 15*time.Second)
		check("the pty session was recorded to "+filepath.Join(c.dataDir, "records"), recorded, fmt.Sprint(err, "\n", string(b)))
	}
	out, err = cliRun("ssh", login+"@"+o.node, "echo", "cli-ssh-ok")
	check("sallyport ssh "+login+"@"+o.node, err == nil && strings.TrimSpace(out) == "cli-ssh-ok", fmt.Sprint(err, "\n", out))
	out, err = cliRun("logout")
	check("sallyport logout", err == nil && strings.Contains(out, "Logged out"), fmt.Sprint(err, "\n", out))
	if failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	fmt.Println("all checks passed")
	return nil
}

// waitRecording waits until dir holds a file.
func waitRecording(dir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		found := false
		filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() && fi.Size() > 0 {
				found = true
			}
			return nil
		})
		if found {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "     " + strings.ReplaceAll(s, "\n", "\n     ")
}
