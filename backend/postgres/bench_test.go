package postgres_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/internal/testservice"
)

// The benchmarks run on the machine's PostgreSQL (testservice.PostgresDB).
// BenchmarkDriver runs the shared driver benchmarks; BenchmarkRaw runs the
// same operations with pgx on a plain key-value table, so that
// bench/backend-postgres-etcd.sh can print the driver's share of the raw
// client's speed.

func BenchmarkDriver(b *testing.B) {
	url := testservice.PostgresDB(b)
	backendtest.Bench(b, func(t testing.TB) backend.Backend {
		return open(t, testConfig(url, randomName("b_")))
	})
}

// BenchmarkDriverWatchCrossInstance writes through one backend and waits
// for the event on a second backend with its own pool (the path between
// two auth servers), reporting p50-ms and p99-ms.
func BenchmarkDriverWatchCrossInstance(b *testing.B) {
	url := testservice.PostgresDB(b)
	schema := randomName("w_")
	writer := open(b, testConfig(url, schema))
	reader := open(b, testConfig(url, schema))
	backendtest.WatchLatency(b, writer, reader)
}

const rawSchema = `CREATE TABLE IF NOT EXISTS raw_kv (key bytea PRIMARY KEY, value bytea NOT NULL, revision bigint NOT NULL DEFAULT 1)`

func BenchmarkRaw(b *testing.B) {
	url := testservice.PostgresDB(b)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), rawSchema); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 256)
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("Put/callers=%d", callers), func(b *testing.B) {
			var n atomic.Int64
			backendtest.Parallel(b, callers, func(ctx context.Context) func() error {
				return func() error {
					i := n.Add(1)
					_, err := pool.Exec(ctx, `INSERT INTO raw_kv (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = raw_kv.revision + 1`,
						fmt.Appendf(nil, "/bench/put/%08d", i%10000), value)
					return err
				}
			})
		})
	}
	for i := range 1000 {
		if _, err := pool.Exec(context.Background(), `INSERT INTO raw_kv (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
			fmt.Appendf(nil, "/bench/get/%06d", i), value); err != nil {
			b.Fatal(err)
		}
	}
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("Get/callers=%d", callers), func(b *testing.B) {
			var n atomic.Int64
			backendtest.Parallel(b, callers, func(ctx context.Context) func() error {
				return func() error {
					i := n.Add(1) % 1000
					var v []byte
					return pool.QueryRow(ctx, `SELECT value FROM raw_kv WHERE key = $1`, fmt.Appendf(nil, "/bench/get/%06d", i)).Scan(&v)
				}
			})
		})
	}
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("CompareAndSwap/callers=%d", callers), func(b *testing.B) {
			var id atomic.Int64
			backendtest.Parallel(b, callers, func(ctx context.Context) func() error {
				key := fmt.Appendf(nil, "/bench/cas/%d/%d", callers, id.Add(1))
				var rev int64
				if err := pool.QueryRow(ctx, `INSERT INTO raw_kv (key, value) VALUES ($1, '0')
ON CONFLICT (key) DO UPDATE SET value = '0' RETURNING revision`, key).Scan(&rev); err != nil {
					b.Fatal(err)
				}
				n := 0
				return func() error {
					n++
					return pool.QueryRow(ctx, `UPDATE raw_kv SET value = $2, revision = revision + 1
WHERE key = $1 AND revision = $3 RETURNING revision`, key, []byte(strconv.Itoa(n)), rev).Scan(&rev)
				}
			})
		})
	}
}

// BenchmarkRawWatchCrossInstance: the raw counterpart of the watch path,
// an upsert whose trigger-free NOTIFY reaches a listener on another
// connection.
func BenchmarkRawWatchCrossInstance(b *testing.B) {
	url := testservice.PostgresDB(b)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, rawSchema); err != nil {
		b.Fatal(err)
	}
	listener := connect(b, url)
	if _, err := listener.Exec(ctx, "LISTEN raw_bench"); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 256)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		key := fmt.Appendf(nil, "/bench/x/%d", i%100)
		if _, err := pool.Exec(ctx, `WITH up AS (INSERT INTO raw_kv (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value RETURNING 1) SELECT pg_notify('raw_bench', '') FROM up`, key, value); err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	backendtest.ReportLatency(b, lat)
}
