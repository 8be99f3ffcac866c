package etcd_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/etcd"
	"github.com/sallyport/sallyport/internal/testservice"
)

// BenchmarkDriver runs the shared driver benchmarks on a private etcd;
// BenchmarkRaw runs the same operations with the etcd client, so that
// bench/backend-postgres-etcd.sh can print the driver's share of the raw
// client's speed.

func BenchmarkDriver(b *testing.B) {
	srv := testservice.StartEtcd(b)
	backendtest.Bench(b, func(t testing.TB) backend.Backend {
		return open(t, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: randomPrefix()})
	})
}

// BenchmarkDriverWatchCrossInstance writes through one backend and waits
// for the event on a second backend with its own client, reporting p50-ms
// and p99-ms.
func BenchmarkDriverWatchCrossInstance(b *testing.B) {
	srv := testservice.StartEtcd(b)
	prefix := randomPrefix()
	writer := open(b, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: prefix})
	reader := open(b, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: prefix})
	backendtest.WatchLatency(b, writer, reader)
}

func rawClient(b *testing.B, endpoint string) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	return cli
}

func BenchmarkRaw(b *testing.B) {
	srv := testservice.StartEtcd(b)
	cli := rawClient(b, srv.Endpoint)
	value := string(make([]byte, 256))
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("Put/callers=%d", callers), func(b *testing.B) {
			var n atomic.Int64
			backendtest.Parallel(b, callers, func(ctx context.Context) func() error {
				return func() error {
					_, err := cli.Put(ctx, fmt.Sprintf("/raw/put/%08d", n.Add(1)%10000), value)
					return err
				}
			})
		})
	}
	for i := range 1000 {
		if _, err := cli.Put(context.Background(), fmt.Sprintf("/raw/get/%06d", i), value); err != nil {
			b.Fatal(err)
		}
	}
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("Get/callers=%d", callers), func(b *testing.B) {
			var n atomic.Int64
			backendtest.Parallel(b, callers, func(ctx context.Context) func() error {
				return func() error {
					_, err := cli.Get(ctx, fmt.Sprintf("/raw/get/%06d", n.Add(1)%1000))
					return err
				}
			})
		})
	}
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("CompareAndSwap/callers=%d", callers), func(b *testing.B) {
			var id atomic.Int64
			backendtest.Parallel(b, callers, func(ctx context.Context) func() error {
				key := fmt.Sprintf("/raw/cas/%d/%d", callers, id.Add(1))
				resp, err := cli.Put(ctx, key, "0")
				if err != nil {
					b.Fatal(err)
				}
				rev := resp.Header.Revision
				n := 0
				return func() error {
					n++
					resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
						Then(clientv3.OpPut(key, strconv.Itoa(n))).Commit()
					if err != nil {
						return err
					}
					if !resp.Succeeded {
						return fmt.Errorf("raw compare and swap on %s failed", key)
					}
					rev = resp.Header.Revision
					return nil
				}
			})
		})
	}
}

// BenchmarkRawWatchCrossInstance: a put by one client, its event on
// another client's watch.
func BenchmarkRawWatchCrossInstance(b *testing.B) {
	srv := testservice.StartEtcd(b)
	writer := rawClient(b, srv.Endpoint)
	reader := rawClient(b, srv.Endpoint)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wch := reader.Watch(ctx, "/raw/x/", clientv3.WithPrefix())
	value := string(make([]byte, 256))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		resp, err := writer.Put(ctx, fmt.Sprintf("/raw/x/%d", i%100), value)
		if err != nil {
			b.Fatal(err)
		}
	wait:
		for {
			select {
			case wr := <-wch:
				for _, ev := range wr.Events {
					if ev.Kv.ModRevision >= resp.Header.Revision {
						break wait
					}
				}
			case <-time.After(30 * time.Second):
				b.Fatal("no watch event")
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	backendtest.ReportLatency(b, lat)
}
