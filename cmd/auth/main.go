package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	"github.com/sallyport/sallyport/audit"
	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/backend"
	_ "github.com/sallyport/sallyport/backend/etcd"
	_ "github.com/sallyport/sallyport/backend/memory"
	"github.com/sallyport/sallyport/backend/postgres"
	"github.com/sallyport/sallyport/backend/sqlite"
	"github.com/sallyport/sallyport/config"
	"github.com/sallyport/sallyport/internal/daemon"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "auth:", err)
		os.Exit(1)
	}
}

const usage = `usage: auth start|tokens|users|roles|sign|events [flags]   (auth CMD -h for flags)`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		args = []string{"start"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "start":
		return start(ctx, rest, stderr)
	case "tokens", "users", "roles":
		if len(rest) == 0 {
			return fmt.Errorf("%s: want a subcommand (add, ls, rm)", cmd)
		}
		return admin(ctx, cmd+" "+rest[0], rest[1:], stdin, stdout)
	case "sign", "events":
		return admin(ctx, cmd, rest, stdin, stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

func defaultDataDir() string {
	if d := os.Getenv("SALLYPORT_DATA_DIR"); d != "" {
		return d
	}
	return "/var/lib/sallyport"
}

func start(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:3025", "address to serve the API on")
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory (SQLite state, admin identity, host ID)")
	backendURI := fs.String("backend", "", "backend URI (default sqlite://<data-dir>/state.db)")
	cluster := fs.String("cluster-name", "sallyport", "cluster name (fixed when the CAs are first created)")
	hostID := fs.String("host-id", "", "host ID of this instance (default: kept in <data-dir>/host_id)")
	serverNames := fs.String("server-names", "", "comma-separated extra DNS names/IPs for the instance certificate")
	auditLog := fs.String("audit", "auto", "audit log: auto (a table of its own in the SQLite file or PostgreSQL database of --backend, else backend keys), backend, or file:///path.jsonl")
	debug := fs.Bool("debug", false, "debug logging")
	configPath := fs.String("config", "", "configuration file whose auth_service section to run (default $SALLYPORT_CONFIG); flags given explicitly win over it")
	pidFile := fs.String("pid-file", "", "write the process ID to this file")
	diagAddr := fs.String("diag-addr", "", "diagnostics address (/healthz, /readyz, /metrics); default sallyport.diag_addr of the file, else off")
	drainTimeout := fs.Duration("drain-timeout", 10*time.Second, "on SIGTERM, how long running calls may continue")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logSeverity, logFormat := "info", "text"
	if *debug {
		logSeverity = "debug"
	}
	if *configPath == "" {
		*configPath = os.Getenv("SALLYPORT_CONFIG")
	}
	if *configPath != "" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		fc, err := config.Load(*configPath, &config.Overrides{ConfigPath: *configPath})
		if err != nil {
			return err
		}
		if !fc.Auth.Enabled {
			return fmt.Errorf("%s: auth_service is not enabled", *configPath)
		}
		fromFile := fileSettings(fc)
		for name, v := range map[string]*string{"listen": listen, "data-dir": dataDir, "backend": backendURI, "cluster-name": cluster, "server-names": serverNames, "audit": auditLog, "diag-addr": diagAddr} {
			if !set[name] && fromFile[name] != "" {
				*v = fromFile[name]
			}
		}
		if !*debug {
			logSeverity = fc.Common.Log.Severity
		}
		logFormat = fc.Common.Log.Format
		if len(fc.Auth.Tokens) > 0 {
			defer daemon.NewLogger(stderr, logSeverity, logFormat).Warn("auth_service.tokens: static join tokens are not supported yet and were ignored; create tokens with `auth tokens add`")
		}
	}
	log := daemon.NewLogger(stderr, logSeverity, logFormat)
	removePID, err := daemon.WritePIDFile(*pidFile)
	if err != nil {
		return err
	}
	defer removePID()
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	if *backendURI == "" {
		abs, err := filepath.Abs(filepath.Join(*dataDir, "state.db"))
		if err != nil {
			return err
		}
		*backendURI = "sqlite://" + abs
	}
	if *hostID == "" {
		id, err := stableHostID(*dataDir)
		if err != nil {
			return err
		}
		*hostID = id
	}
	b, err := backend.Open(ctx, *backendURI)
	if err != nil {
		return err
	}
	defer b.Close()
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(*listen); err == nil && h != "" {
		names = append(names, h)
	}
	if *serverNames != "" {
		names = append(names, strings.Split(*serverNames, ",")...)
	}
	al, closeAudit, err := openAudit(ctx, *auditLog, *backendURI, b)
	if err != nil {
		return err
	}
	defer closeAudit()
	srv, err := authapi.New(ctx, &authapi.Config{Backend: b, ClusterName: *cluster, HostID: *hostID, ServerNames: names, Logger: log, Audit: al})
	if err != nil {
		return err
	}
	if err := writeAdminIdentity(ctx, srv, *dataDir); err != nil {
		srv.Close()
		return err
	}
	if err := os.WriteFile(filepath.Join(*dataDir, "ca-pin"), []byte(srv.CAPin()+"\n"), 0o644); err != nil {
		srv.Close()
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		srv.Close()
		return err
	}
	log.Info("auth service serving", "addr", l.Addr().String(), "cluster", srv.ClusterName(), "host_id", srv.HostID(), "ca_pin", srv.CAPin())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	var diag *daemon.Diag
	if *diagAddr != "" {
		dl, err := net.Listen("tcp", *diagAddr)
		if err != nil {
			srv.Close()
			<-errc
			return fmt.Errorf("diag-addr: %w", err)
		}
		diag = daemon.NewDiag(daemon.DiagConfig{Logger: log})
		go diag.Serve(dl)
		defer diag.Close()
	}
	sig, err := daemon.Wait(ctx, daemon.WaitConfig{Errc: errc, Logger: log})
	if sig == nil {
		srv.Close()
		if err == nil || errors.Is(err, authapi.ErrServerClosed) || errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	if diag != nil {
		diag.SetDraining()
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *drainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	if err := <-errc; !errors.Is(err, authapi.ErrServerClosed) {
		return err
	}
	return nil
}

// fileSettings maps the configuration file's auth_service section (and
// the common section) to the values of start's flags.
func fileSettings(fc *config.Config) map[string]string {
	m := map[string]string{
		"listen":       fc.Auth.ListenAddr,
		"data-dir":     fc.Common.DataDir,
		"backend":      fc.Common.Storage.URI,
		"cluster-name": fc.Auth.ClusterName,
		"diag-addr":    fc.Common.DiagAddr,
	}
	var names []string
	for _, a := range fc.Auth.PublicAddrs {
		if h, _, err := net.SplitHostPort(a); err == nil {
			a = h
		}
		names = append(names, a)
	}
	m["server-names"] = strings.Join(names, ",")
	if len(fc.Common.Storage.AuditEventsURI) > 0 {
		u := fc.Common.Storage.AuditEventsURI[0]
		if dir, ok := strings.CutPrefix(u, "file://"); ok {
			m["audit"] = "file://" + filepath.Join(dir, "events.jsonl")
		} else {
			m["audit"] = u
		}
	}
	return m
}

// openAudit opens the audit log the --audit flag names.
func openAudit(ctx context.Context, spec, backendURI string, b backend.Backend) (audit.Log, func(), error) {
	nop := func() {}
	if spec == "backend" {
		return audit.NewBackend(b, "", nil), nop, nil
	}
	if path, ok := strings.CutPrefix(spec, "file://"); ok {
		f, err := audit.OpenFile(path, nil)
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
	if spec != "auto" {
		// A database URI of its own (sallyport.storage.audit_events_uri).
		if u, err := url.Parse(spec); err == nil && (u.Scheme == "sqlite" || u.Scheme == "postgres" || u.Scheme == "postgresql") {
			backendURI = spec
		} else {
			return nil, nil, fmt.Errorf("--audit %q: want auto, backend, file:///path, or a sqlite:// or postgres:// URI", spec)
		}
	}
	u, err := url.Parse(backendURI)
	if err != nil {
		return nil, nil, err
	}
	var db *sql.DB
	switch strings.ToLower(u.Scheme) {
	case "sqlite":
		path := u.Host + u.Path
		if u.Opaque != "" {
			path = u.Opaque
		}
		db, err = sql.Open("sqlite", sqlite.DSN(path, 10*time.Second, true))
	case "postgres", "postgresql":
		var cfg *postgres.Config
		if cfg, err = postgres.ParseURI(u); err == nil {
			db, err = sql.Open("pgx", cfg.ConnString)
		}
	default:
		return audit.NewBackend(b, "", nil), nop, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("audit: %w", err)
	}
	db.SetMaxOpenConns(4)
	l, err := audit.NewSQL(ctx, db, "sallyport_audit_events", nil)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return l, func() { db.Close() }, nil
}

func stableHostID(dir string) (string, error) {
	p := filepath.Join(dir, "host_id")
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	h, _ := os.Hostname()
	var r [4]byte
	if f, err := os.Open("/dev/urandom"); err == nil {
		io.ReadFull(f, r[:])
		f.Close()
	}
	id := fmt.Sprintf("auth-%s-%x", strings.ReplaceAll(h, ".", "-"), r)
	return id, os.WriteFile(p, []byte(id+"\n"), 0o600)
}

// writeAdminIdentity writes <dir>/admin.json when missing or expiring
// within a week.
func writeAdminIdentity(ctx context.Context, srv *authapi.Server, dir string) error {
	p := filepath.Join(dir, "admin.json")
	if c, err := authapi.LoadCredentials(p); err == nil && c.Cluster == srv.ClusterName() && c.CAPin() == srv.CAPin() && time.Until(c.Certificate.Leaf.NotAfter) > 7*24*time.Hour {
		return nil
	}
	c, err := srv.IssueIdentity(ctx, "admin", "admin@"+srv.HostID(), 90*24*time.Hour)
	if err != nil {
		return err
	}
	return c.Save(p)
}

// admin runs an admin subcommand against a running service.
func admin(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	server := fs.String("auth-server", "127.0.0.1:3025", "comma-separated auth addresses")
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory holding admin.json")
	identity := fs.String("identity", "", "identity file (default <data-dir>/admin.json)")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of the whole command")
	// Subcommand flags.
	roles := fs.String("roles", "", "comma-separated roles")
	ttl := fs.Duration("ttl", 0, "lifetime (tokens: default 30m; sign: default 720h)")
	uses := fs.Int("uses", 1, "number of joins a token allows")
	passwordFile := fs.String("password-file", "", "read the password from this file")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	enableTOTP := fs.Bool("totp", false, "enrol TOTP and print the otpauth:// URL")
	kind := fs.String("kind", "admin", "sign: admin, user, agent, proxy or auth")
	name := fs.String("name", "", "sign: user name or host ID")
	out := fs.String("out", "", "sign: write the identity file here")
	since := fs.Duration("since", 24*time.Hour, "events: how far back")
	evType := fs.String("type", "", "events: only this type (comma-separated)")
	// Allow positional arguments before flags: `users add alice --roles x`.
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if *identity == "" {
		*identity = filepath.Join(*dataDir, "admin.json")
	}
	creds, err := authapi.LoadCredentials(*identity)
	if err != nil {
		return fmt.Errorf("%w (run `auth start` once, or pass --identity)", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c, err := authapi.NewClient(&authapi.ClientConfig{Addrs: strings.Split(*server, ","), Credentials: creds})
	if err != nil {
		return err
	}
	defer c.Close()
	api := c.API()
	arg := func(i int, what string) (string, error) {
		if i >= len(pos) {
			return "", fmt.Errorf("%s: missing %s", cmd, what)
		}
		return pos[i], nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch cmd {
	case "tokens add":
		r, err := api.CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{Roles: splitList(*roles), Ttl: durationpb.New(*ttl), Uses: int32(*uses)})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "token: %s\nid: %s\nroles: %s\nexpires: %s\nuses: %d\nca-pin: %s\n", r.Token, r.Info.Id, strings.Join(r.Info.Roles, ","), fmtTime(r.Info.Expires), r.Info.UsesLeft, creds.CAPin())
	case "tokens ls":
		r, err := api.ListJoinTokens(ctx, &authv1.ListJoinTokensRequest{})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tROLES\tUSES LEFT\tEXPIRES")
		for _, t := range r.Tokens {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t.Id, strings.Join(t.Roles, ","), t.UsesLeft, fmtTime(t.Expires))
		}
	case "tokens rm":
		id, err := arg(0, "token ID")
		if err != nil {
			return err
		}
		_, err = api.DeleteJoinToken(ctx, &authv1.DeleteJoinTokenRequest{Id: id})
		return err
	case "users add":
		user, err := arg(0, "user name")
		if err != nil {
			return err
		}
		var password string
		switch {
		case *passwordFile != "":
			b, err := os.ReadFile(*passwordFile)
			if err != nil {
				return err
			}
			password = strings.TrimRight(string(b), "\r\n")
		case *passwordStdin:
			line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			password = strings.TrimRight(line, "\r\n")
		}
		r, err := api.UpsertUser(ctx, &authv1.UpsertUserRequest{Name: user, Roles: splitList(*roles), Password: password, EnableTotp: *enableTOTP})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s: roles %s\n", r.User.Name, strings.Join(r.User.Roles, ","))
		if r.SignupToken != "" {
			fmt.Fprintf(stdout, "sign-up token (one use, until %s): %s\n", fmtTime(r.SignupExpires), r.SignupToken)
		}
		if r.TotpUrl != "" {
			fmt.Fprintf(stdout, "totp: %s\n", r.TotpUrl)
		}
	case "users ls":
		r, err := api.ListUsers(ctx, &authv1.ListUsersRequest{})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "NAME\tROLES\tPASSWORD\tTOTP")
		for _, u := range r.Users {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%v\n", u.Name, strings.Join(u.Roles, ","), u.HasPassword, u.HasTotp)
		}
	case "users rm":
		user, err := arg(0, "user name")
		if err != nil {
			return err
		}
		_, err = api.DeleteUser(ctx, &authv1.DeleteUserRequest{Name: user})
		return err
	case "roles add":
		file, err := arg(0, "role file")
		if err != nil {
			return err
		}
		rs, err := readRoles(file)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if _, err := api.UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: r.Proto()}); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "role %s saved\n", r.Name)
		}
	case "roles ls":
		r, err := api.ListRoles(ctx, &authv1.ListRolesRequest{})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "NAME\tLOGINS\tNODE LABELS\tDATABASES\tAPPS\tMAX TTL")
		for _, p := range r.Roles {
			role := authapi.RoleFromProto(p)
			labels, _ := json.Marshal(role.NodeLabels)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", role.Name, strings.Join(role.Logins, ","), labels, strings.Join(role.DBNames, ","), strings.Join(role.Apps, ","), time.Duration(role.MaxSessionTTL))
		}
	case "roles rm":
		n, err := arg(0, "role name")
		if err != nil {
			return err
		}
		_, err = api.DeleteRole(ctx, &authv1.DeleteRoleRequest{Name: n})
		return err
	case "sign":
		if *name == "" || *out == "" {
			return errors.New("sign: --name and --out are required")
		}
		t := *ttl
		if t == 0 {
			t = 720 * time.Hour
		}
		signed, err := c.SignIdentity(ctx, *kind, *name, t)
		if err != nil {
			return err
		}
		if err := signed.Save(*out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s identity %q to %s (expires %s)\n", *kind, *name, *out, signed.Certificate.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case "events":
		r, err := api.SearchAuditEvents(ctx, &authv1.SearchAuditEventsRequest{From: timestamppb.New(time.Now().Add(-*since)), Types: splitList(*evType)})
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "TIME\tTYPE\tACTOR\tSOURCE\tSUCCESS\tFIELDS")
		for _, e := range r.Events {
			f, _ := json.Marshal(e.Fields)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", fmtTime(e.Time), e.Type, e.Actor, e.Source, e.Success, f)
		}
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fmtTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// readRoles reads one role or a list of roles from a YAML or JSON file
// (JSON is YAML). Field names are those of authapi.Role's JSON form.
func readRoles(path string) ([]authapi.Role, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) > 1<<20 {
		return nil, errors.New("role file larger than 1 MiB")
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Re-encode as JSON so authapi.Role's JSON decoding (durations as
	// "8h") applies.
	j, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var roles []authapi.Role
	if _, isList := v.([]any); isList {
		err = json.Unmarshal(j, &roles)
	} else {
		var r authapi.Role
		err = json.Unmarshal(j, &r)
		roles = []authapi.Role{r}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return roles, nil
}
