package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// SQL stores events in a table of their own in a SQL database, indexed by
// time and by type: one row per event (id, time in Unix nanoseconds, type,
// actor, success, and the whole event as JSON). It works with PostgreSQL
// (through pgx's database/sql driver) and SQLite (modernc.org/sqlite); the
// statements use $n placeholders, which both accept.
type SQL struct {
	db    *sql.DB
	table string
	now   func() time.Time
}

var tableRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// NewSQL creates the table (and its indexes) when missing and returns a
// Log over it. table is the table name; empty means "audit_events". now is
// the clock; nil means time.Now. The caller owns db.
func NewSQL(ctx context.Context, db *sql.DB, table string, now func() time.Time) (*SQL, error) {
	if table == "" {
		table = "audit_events"
	}
	if !tableRe.MatchString(table) {
		return nil, fmt.Errorf("%w: table name %q", ErrInvalidEvent, table)
	}
	if now == nil {
		now = time.Now
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + table + ` (
			id TEXT NOT NULL,
			time_ns BIGINT NOT NULL,
			type TEXT NOT NULL,
			actor TEXT NOT NULL,
			success BOOLEAN NOT NULL,
			data TEXT NOT NULL,
			PRIMARY KEY (time_ns, id))`,
		`CREATE INDEX IF NOT EXISTS ` + table + `_type_time ON ` + table + ` (type, time_ns)`,
	}
	// Two processes creating the table at once can make PostgreSQL fail
	// one CREATE ... IF NOT EXISTS on its catalog's unique index: retry.
	var err error
	for attempt := range 5 {
		if err = createTable(ctx, db, stmts); err == nil {
			return &SQL{db: db, table: table, now: now}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("audit: create table: %w", ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("audit: create table: %w", err)
}

func createTable(ctx context.Context, db *sql.DB, stmts []string) error {
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// Emit implements Log.
func (l *SQL) Emit(ctx context.Context, e Event) error {
	data, err := prepare(&e, l.now)
	if err != nil {
		return err
	}
	_, err = l.db.ExecContext(ctx, `INSERT INTO `+l.table+` (id, time_ns, type, actor, success, data) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.ID, e.Time.UnixNano(), e.Type, e.Actor, e.Success, string(data))
	if err != nil {
		return fmt.Errorf("audit: store event: %w", err)
	}
	return nil
}

// Search implements Log with one indexed query.
func (l *SQL) Search(ctx context.Context, q Query) ([]Event, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !q.From.IsZero() {
		where = append(where, "time_ns >= "+arg(q.From.UnixNano()))
	}
	if !q.To.IsZero() {
		where = append(where, "time_ns < "+arg(q.To.UnixNano()))
	}
	if len(q.Types) > 0 {
		ph := make([]string, len(q.Types))
		for i, t := range q.Types {
			ph[i] = arg(t)
		}
		where = append(where, "type IN ("+strings.Join(ph, ", ")+")")
	}
	query := `SELECT data FROM ` + l.table
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY time_ns, id LIMIT " + arg(q.limit())
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: search: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("audit: search: %w", err)
		}
		var e Event
		if json.Unmarshal([]byte(data), &e) != nil {
			continue
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: search: %w", err)
	}
	return out, nil
}
