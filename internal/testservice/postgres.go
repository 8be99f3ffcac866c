package testservice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Postgres is a private PostgreSQL server started for a test: its own data
// directory, a free loopback port, trust authentication for the superuser
// "postgres". It can be stopped and restarted, so fault tests can take the
// database away under a running client.
type Postgres struct {
	Addr    string // "127.0.0.1:PORT"
	DataDir string
	Process *Process

	t       testing.TB
	sockDir string
}

// PostgresOptions tune a private PostgreSQL server. The zero value is a
// server tuned for speed (fsync off).
type PostgresOptions struct {
	// Durable keeps fsync on. Zero (false) turns fsync off, which is safe
	// for tests that stop or kill the server process (an acknowledged
	// commit has reached the operating system) but not the machine.
	Durable bool
	// Settings are extra "name=value" server settings (-c).
	Settings []string
}

// StartPostgres starts a private PostgreSQL server (initdb into a temporary
// directory, then postgres on a free port) and stops it when the test ends.
// PostgreSQL refuses to run as root, so when the test runs as root the
// server runs as the "postgres" system user. The server binaries are looked
// up in PATH and /usr/lib/postgresql/15/bin.
func StartPostgres(t testing.TB, opts *PostgresOptions) *Postgres {
	t.Helper()
	if opts == nil {
		opts = &PostgresOptions{}
	}
	initdb := Bin(t, "initdb")
	postgresBin := Bin(t, "postgres")

	// t.TempDir's parents are private to root; the server user needs its
	// own readable tree.
	root, err := os.MkdirTemp("", "sallyport-pg-")
	if err != nil {
		t.Fatalf("testservice: postgres: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, "data")
	sock := filepath.Join(root, "sock")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var prefix []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("testservice: postgres must not run as root and there is no \"postgres\" user: %v (install the postgresql package: scripts/install-deps)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{data, sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		// setpriv changes user and execs (runuser would fork and stay
		// the parent), so the server is the process this package starts
		// and waits for, even when it is killed.
		prefix = []string{Bin(t, "setpriv"), "--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups", "--"}
	}

	args := append(append([]string{}, prefix...), initdb, "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testservice: initdb: %v\n%s", err, out)
	}

	port := FreePort(t)
	pg := &Postgres{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), DataDir: data, t: t, sockDir: sock}
	srv := []string{postgresBin, "-D", data, "-p", strconv.Itoa(port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
		"-c", "log_min_messages=warning", "-c", "shared_buffers=32MB"}
	if !opts.Durable {
		// Commits still reach the operating system before they are
		// acknowledged, so killing the server loses nothing.
		srv = append(srv, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	for _, s := range opts.Settings {
		srv = append(srv, "-c", s)
	}
	name := postgresBin
	if len(prefix) > 0 {
		name = prefix[0]
		srv = append(prefix[1:], srv...)
	}
	pg.Process = Start(t, name, srv, nil, "")
	pg.Process.Dir = root // the server user cannot enter the test's directory
	pg.waitReady()
	return pg
}

// waitReady waits until the server accepts queries (not only TCP: a
// starting server accepts connections before it finishes recovery).
func (p *Postgres) waitReady() {
	p.t.Helper()
	if err := WaitTCP(p.Addr, 30*time.Second); err != nil {
		p.t.Fatalf("%v\npostgres output:\n%s", err, p.Process.Output())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := p.psql("postgres", "SELECT 1")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("testservice: postgres at %s not ready: %v: %s\n%s", p.Addr, err, out, p.Process.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL returns a connection URL for database db as the superuser.
func (p *Postgres) URL(db string) string {
	return PostgresURL(p.Addr, "postgres", db)
}

// Stop shuts the server down at once (PostgreSQL's "fast" shutdown:
// connections are closed, committed work is kept) and waits for it.
func (p *Postgres) Stop() {
	p.Process.Signal(syscall.SIGINT)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.Process.Wait(ctx); err != nil {
		p.Process.Kill()
	}
	p.Process.Stop() // reap and mark stopped
}

// Kill kills the server without a shutdown (SIGKILL to every server
// process), as a crash would; the next start runs crash recovery.
func (p *Postgres) Kill() { p.Process.Kill() }

// Start starts the server again after Stop or Kill and waits until it
// accepts queries.
func (p *Postgres) Start() {
	p.t.Helper()
	// A killed server may leave its pid file; postgres checks whether the
	// pid is alive, so a stale file is harmless.
	p.Process.Restart("")
	p.waitReady()
}

// Exec runs SQL statements in database db as the superuser, with psql,
// and fails the test on error.
func (p *Postgres) Exec(t testing.TB, db, sql string) {
	t.Helper()
	if out, err := p.psql(db, sql); err != nil {
		t.Fatalf("testservice: psql on %s/%s: %v\n%s", p.Addr, db, err, out)
	}
}

// CreateDatabase creates a database with a fresh name and returns the name.
func (p *Postgres) CreateDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, p.Addr)
}

func (p *Postgres) psql(db, sql string) ([]byte, error) {
	return runPsql(p.Addr, db, sql)
}

// PostgresURL builds a postgres:// URL without a password.
func PostgresURL(addr, user, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(user), Host: addr, Path: "/" + db}
	q := url.Values{"sslmode": {"disable"}}
	u.RawQuery = q.Encode()
	return u.String()
}

// SharedPostgresAddr is the machine's PostgreSQL server that PostgresDB
// uses: $SALLYPORT_TEST_PGADDR, default 127.0.0.1:5432 (superuser
// "postgres", trust authentication).
func SharedPostgresAddr() string {
	if a := os.Getenv("SALLYPORT_TEST_PGADDR"); a != "" {
		return a
	}
	return "127.0.0.1:5432"
}

// PostgresDB creates a database with a fresh name on the machine's
// PostgreSQL server (SharedPostgresAddr), drops it when the test ends, and
// returns its connection URL. Use StartPostgres instead when the test
// needs to stop or reconfigure the server.
func PostgresDB(t testing.TB) string {
	t.Helper()
	addr := SharedPostgresAddr()
	if err := WaitTCP(addr, 2*time.Second); err != nil {
		t.Fatalf("testservice: the machine's PostgreSQL is not reachable at %s (start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start; or set SALLYPORT_TEST_PGADDR): %v", addr, err)
	}
	db := createDatabase(t, addr)
	return PostgresURL(addr, "postgres", db)
}

func createDatabase(t testing.TB, addr string) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	db := "test_" + hex.EncodeToString(b[:])
	if out, err := runPsql(addr, "postgres", "CREATE DATABASE "+db); err != nil {
		t.Fatalf("testservice: create database on %s: %v\n%s", addr, err, out)
	}
	t.Cleanup(func() {
		// WITH (FORCE) ends sessions a failed test left behind.
		if out, err := runPsql(addr, "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Logf("testservice: drop database %s on %s: %v\n%s", db, addr, err, out)
		}
	})
	return db
}

func runPsql(addr, db, sql string) ([]byte, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	bin, err := LookBin("psql")
	if err != nil {
		return nil, fmt.Errorf("%w (install postgresql-client: scripts/install-deps)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", "postgres", "-d", db, "-c", sql)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	return []byte(strings.TrimSpace(string(out))), err
}
