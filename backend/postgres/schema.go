package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Operation codes stored in the change table's op column.
const (
	opNoop   = 0 // a revision that changed nothing (fills the gap it leaves)
	opPut    = 1
	opDelete = 2
)

// names are the quoted, schema-qualified names of the driver's objects.
type names struct {
	schema  string // quoted schema, or "" for the search_path default
	kv      string // items table
	events  string // change table
	seq     string // revision sequence, as a SQL string literal for nextval
	seqName string // revision sequence, as an identifier
	channel string // LISTEN/NOTIFY channel, unquoted
	lockKey int64  // advisory lock key for schema setup
}

func newNames(schema string) names {
	ident := func(name string) string {
		if schema == "" {
			return pgx.Identifier{name}.Sanitize()
		}
		return pgx.Identifier{schema, name}.Sanitize()
	}
	n := names{
		kv:      ident("sallyport_kv"),
		events:  ident("sallyport_events"),
		seqName: ident("sallyport_revision"),
		channel: "sallyport_events",
	}
	if schema != "" {
		n.schema = pgx.Identifier{schema}.Sanitize()
		n.channel = "sallyport_events." + schema
		if len(n.channel) > 63 { // identifier limit; LISTEN would truncate
			h := fnv.New64a()
			h.Write([]byte(schema))
			n.channel = fmt.Sprintf("sallyport_events.%x", h.Sum64())
		}
	}
	n.seq = quoteLiteral(n.seqName)
	h := fnv.New64a()
	h.Write([]byte("sallyport schema " + schema))
	n.lockKey = int64(h.Sum64() >> 1)
	return n
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// schemaSQL creates the objects the driver needs. Every statement is
// idempotent; they run in one transaction under an advisory lock so that
// instances starting together do not race.
func (n names) schemaSQL() []string {
	s := []string{
		`CREATE TABLE IF NOT EXISTS ` + n.kv + ` (
	key bytea PRIMARY KEY,
	value bytea NOT NULL,
	revision bigint NOT NULL,
	expires timestamptz
)`,
		`CREATE INDEX IF NOT EXISTS sallyport_kv_expires ON ` + n.kv + ` (expires) WHERE expires IS NOT NULL`,
		`CREATE UNLOGGED TABLE IF NOT EXISTS ` + n.events + ` (
	revision bigint NOT NULL,
	key bytea NOT NULL,
	op smallint NOT NULL,
	value bytea,
	expires timestamptz,
	created timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (revision, key)
)`,
		`CREATE SEQUENCE IF NOT EXISTS ` + n.seqName + ` AS bigint CACHE 1`,
	}
	if n.schema != "" {
		s = append([]string{`CREATE SCHEMA IF NOT EXISTS ` + n.schema}, s...)
	}
	return s
}

// ErrPermission is wrapped by the error Open returns when the database
// role may not create the driver's tables.
var ErrPermission = errors.New("postgres: permission denied")

// setupSchema makes sure the tables and the sequence exist. When they
// all exist already it changes nothing (so a role without the CREATE
// privilege can use tables an administrator created).
func setupSchema(ctx context.Context, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}, n names, schemaName string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: setup: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	var ready bool
	err = tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL`,
		n.kv, n.events, n.seqName).Scan(&ready)
	if err != nil {
		return fmt.Errorf("postgres: setup: checking the schema: %w", err)
	}
	if ready {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, n.lockKey); err != nil {
		return fmt.Errorf("postgres: setup: %w", err)
	}
	for _, stmt := range n.schemaSQL() {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return setupError(err, schemaName, strings.HasPrefix(stmt, "CREATE SCHEMA"))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return setupError(err, schemaName, false)
	}
	return nil
}

func setupError(err error, schema string, creatingSchema bool) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
		where := "the current schema (usually public)"
		switch {
		case creatingSchema:
			where = fmt.Sprintf("the database, to create schema %q,", schema)
		case schema != "":
			where = fmt.Sprintf("schema %q", schema)
		}
		return fmt.Errorf("%w: creating the backend's tables needs the CREATE privilege on %s "+
			"(GRANT CREATE ON SCHEMA or DATABASE ... TO the role), or an administrator creates them beforehand "+
			"as the package documentation shows: %w", ErrPermission, where, err)
	}
	return fmt.Errorf("postgres: setup: creating the tables: %w", err)
}
