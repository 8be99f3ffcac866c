package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/sqlite"
)

// BenchmarkRaw is the peer of BenchmarkDriver: the same operations
// written directly against database/sql on modernc.org/sqlite, with the
// driver's schema, pragmas and statements (a revision counter, the row,
// a change-log row, one transaction per write), without the backend
// layer. bench/backend.sh prints the ratio of the two. Put/plain is one
// autocommit upsert with no revision or change log: the floor for any
// store that offers watches and revisions.
func BenchmarkRaw(b *testing.B) {
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("Put/callers=%d", callers), func(b *testing.B) {
			db := openRaw(b, callers)
			value := make([]byte, 256)
			var n atomic.Int64
			rawParallel(b, callers, func(ctx context.Context) error {
				key := fmt.Appendf(nil, "/bench/put/%08d", n.Add(1)%10000)
				return rawTx(ctx, db, func(tx *sql.Tx, rev int64) error {
					return rawPut(ctx, tx, rev, key, value)
				})
			})
		})
	}
	b.Run("Put/plain/callers=1", func(b *testing.B) {
		db := openRaw(b, 1)
		value := make([]byte, 256)
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			key := fmt.Appendf(nil, "/bench/put/%08d", i%10000)
			if _, err := db.ExecContext(ctx, `INSERT INTO sallyport_kv (key, value, revision, expires) VALUES (?, ?, ?, 0)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision`, key, value, i); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("Get/callers=%d", callers), func(b *testing.B) {
			db := openRaw(b, 4)
			ctx := context.Background()
			for i := 0; i < 1000; i++ {
				key := fmt.Appendf(nil, "/bench/get/%06d", i)
				if err := rawTx(ctx, db, func(tx *sql.Tx, rev int64) error { return rawPut(ctx, tx, rev, key, []byte(strconv.Itoa(i))) }); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			rawParallel(b, callers, func(ctx context.Context) error {
				key := fmt.Appendf(nil, "/bench/get/%06d", n.Add(1)%1000)
				var value []byte
				var rev, exp int64
				return db.QueryRowContext(ctx, `SELECT value, revision, expires FROM sallyport_kv WHERE key = ? AND (expires = 0 OR expires > ?)`, key, time.Now().UnixNano()).Scan(&value, &rev, &exp)
			})
		})
	}
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("CompareAndSwap/callers=%d", callers), func(b *testing.B) {
			db := openRaw(b, callers)
			var id atomic.Int64
			rawParallelState(b, callers, func() func(ctx context.Context) error {
				key := fmt.Appendf(nil, "/bench/cas/%d", id.Add(1))
				var rev int64
				ctx := context.Background()
				if err := rawTx(ctx, db, func(tx *sql.Tx, r int64) error { rev = r; return rawPut(ctx, tx, r, key, []byte("0")) }); err != nil {
					b.Fatal(err)
				}
				n := 0
				return func(ctx context.Context) error {
					n++
					return rawTx(ctx, db, func(tx *sql.Tx, r int64) error {
						var cur int64
						if err := tx.QueryRowContext(ctx, `SELECT revision FROM sallyport_kv WHERE key = ? AND (expires = 0 OR expires > ?)`, key, time.Now().UnixNano()).Scan(&cur); err != nil {
							return err
						}
						if cur != rev {
							return errors.New("compare failed")
						}
						rev = r
						return rawPut(ctx, tx, r, key, []byte(strconv.Itoa(n)))
					})
				}
			})
		})
	}
}

// openRaw opens a fresh database with the driver's schema and pragmas.
func openRaw(b *testing.B, conns int) *sql.DB {
	path := filepath.Join(b.TempDir(), "raw.db")
	db, err := sql.Open("sqlite", sqlite.DSN(path, 10*time.Second, true))
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec(sqlite.Schema); err != nil {
		b.Fatal(err)
	}
	return db
}

// rawTx runs fn in a BEGIN IMMEDIATE transaction with the next revision.
func rawTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx, rev int64) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var rev int64
	if err := tx.QueryRowContext(ctx, `UPDATE sallyport_meta SET revision = revision + 1 WHERE id = 1 RETURNING revision`).Scan(&rev); err != nil {
		return err
	}
	if err := fn(tx, rev); err != nil {
		return err
	}
	return tx.Commit()
}

func rawPut(ctx context.Context, tx *sql.Tx, rev int64, key, value []byte) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO sallyport_kv (key, value, revision, expires) VALUES (?, ?, ?, 0)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, expires = excluded.expires`, key, value, rev); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO sallyport_changes (revision, seq, op, key, value, expires) VALUES (?, 0, 1, ?, ?, 0)`, rev, key, value)
	return err
}

// rawParallel runs op b.N times in total from callers goroutines.
func rawParallel(b *testing.B, callers int, op func(ctx context.Context) error) {
	rawParallelState(b, callers, func() func(ctx context.Context) error { return op })
}

// rawParallelState is rawParallel with per-goroutine state: each goroutine
// calls setup once and then runs the operation it returns.
func rawParallelState(b *testing.B, callers int, setup func() func(ctx context.Context) error) {
	backendtest.Parallel(b, callers, func(ctx context.Context) func() error {
		op := setup()
		return func() error { return op(ctx) }
	})
}
