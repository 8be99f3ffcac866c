package backendtest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
)

// Bench runs the driver benchmarks on backends from newBackend:
//
//	Put/callers=1, Put/callers=16            write one 256-byte item
//	Get/callers=1, Get/callers=16            read one of 1,000 items
//	CompareAndSwap/callers=1, .../callers=16 read, then swap on its revision
//	                                         (each caller its own key)
//	AtomicWrite/callers=1                    two puts with revision conditions
//	WatchLatency                             put, then wait for its event;
//	                                         reports p50-ms and p99-ms
//
// Each benchmark gets its own backend. ns/op is per operation, whatever
// the number of callers.
func Bench(b *testing.B, newBackend NewFunc) {
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("Put/callers=%d", callers), func(b *testing.B) {
			be := openBench(b, newBackend)
			value := make([]byte, 256)
			var n atomic.Int64
			parallel(b, callers, func(ctx context.Context) error {
				i := n.Add(1)
				_, err := be.Put(ctx, backend.Item{Key: fmt.Appendf(nil, "/bench/put/%08d", i%10000), Value: value})
				return err
			})
		})
	}
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("Get/callers=%d", callers), func(b *testing.B) {
			be := openBench(b, newBackend)
			// One Put per item, 256 bytes each, as the drivers' raw
			// benchmarks fill their stores (on etcd, reads of keys that
			// AtomicWrite batches had written measured a third slower,
			// through the driver and through the raw client alike).
			value := make([]byte, 256)
			for i := range 1000 {
				if _, err := be.Put(context.Background(), backend.Item{Key: keyN("/bench/get/", i), Value: value}); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			parallel(b, callers, func(ctx context.Context) error {
				i := int(n.Add(1) % 1000)
				_, err := be.Get(ctx, keyN("/bench/get/", i))
				return err
			})
		})
	}
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("CompareAndSwap/callers=%d", callers), func(b *testing.B) {
			be := openBench(b, newBackend)
			var id atomic.Int64
			parallelState(b, callers, func() func(ctx context.Context) error {
				key := fmt.Appendf(nil, "/bench/cas/%d", id.Add(1))
				rev, err := be.Put(context.Background(), backend.Item{Key: key, Value: []byte("0")})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				return func(ctx context.Context) error {
					n++
					r, err := be.CompareAndSwap(ctx, backend.Item{Revision: rev}, backend.Item{Key: key, Value: []byte(strconv.Itoa(n))})
					rev = r
					return err
				}
			})
		})
	}
	b.Run("AtomicWrite/callers=1", func(b *testing.B) {
		be := openBench(b, newBackend)
		ctx := context.Background()
		ka, kb := []byte("/bench/aw/a"), []byte("/bench/aw/b")
		ra, err := be.Put(ctx, backend.Item{Key: ka, Value: []byte("0")})
		if err != nil {
			b.Fatal(err)
		}
		rb, err := be.Put(ctx, backend.Item{Key: kb, Value: []byte("0")})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rev, err := be.AtomicWrite(ctx, []backend.ConditionalAction{
				{Key: ka, Condition: backend.Condition{Kind: backend.Revision, Revision: ra}, Action: backend.ActionPut, Item: backend.Item{Value: []byte(strconv.Itoa(i))}},
				{Key: kb, Condition: backend.Condition{Kind: backend.Revision, Revision: rb}, Action: backend.ActionPut, Item: backend.Item{Value: []byte(strconv.Itoa(-i))}},
			})
			if err != nil {
				b.Fatal(err)
			}
			ra, rb = rev, rev
		}
	})
	b.Run("WatchLatency", func(b *testing.B) {
		be := openBench(b, newBackend)
		WatchLatency(b, be, be)
	})
}

// WatchLatency measures the path from a write to its watch event: each
// iteration puts a 256-byte value through writer and waits for the event
// on a watcher of reader, reporting p50-ms and p99-ms with ReportLatency.
// writer and reader may be one backend, or two instances over one store.
func WatchLatency(b *testing.B, writer, reader backend.Backend) {
	ctx := context.Background()
	w, err := reader.NewWatcher(ctx, backend.Watch{Prefixes: [][]byte{[]byte("/bench/watch/")}})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	waitInit(b, w)
	lat := make([]time.Duration, 0, b.N)
	value := make([]byte, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		key := fmt.Appendf(nil, "/bench/watch/%d", i%100)
		rev, err := writer.Put(ctx, backend.Item{Key: key, Value: value})
		if err != nil {
			b.Fatal(err)
		}
		for {
			ev := NextEvent(b, w, 30*time.Second)
			if ev.Item.Revision >= rev {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	ReportLatency(b, lat)
}

// ReportLatency reports the median and 99th percentile of lat as the
// benchmark metrics p50-ms and p99-ms.
func ReportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(float64(len(lat)-1) * p)
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func openBench(b *testing.B, newBackend NewFunc) backend.Backend {
	be := newBackend(b)
	b.Cleanup(func() { be.Close() })
	return be
}

// parallel runs op b.N times in total from callers goroutines.
func parallel(b *testing.B, callers int, op func(ctx context.Context) error) {
	parallelState(b, callers, func() func(ctx context.Context) error { return op })
}

// parallelState is parallel with per-goroutine state: each goroutine calls
// setup once and then runs the operation it returns.
func parallelState(b *testing.B, callers int, setup func() func(ctx context.Context) error) {
	Parallel(b, callers, func(ctx context.Context) func() error {
		op := setup()
		return func() error { return op(ctx) }
	})
}

// Parallel runs b.N operations in total from callers goroutines (one
// goroutine runs them in a plain loop). Each goroutine calls setup once
// with the benchmark's context and then runs the operation it returns; an
// operation's error fails the benchmark. It is how a driver benchmarks its
// store's own client next to the driver at the same concurrency.
//
// Before the clock starts every goroutine runs its operation once, all at
// the same time, so that connection pools are as warm as in a running
// service and a driver that opens its client per benchmark is not charged
// for connecting.
func Parallel(b *testing.B, callers int, setup func(ctx context.Context) func() error) {
	ctx := context.Background()
	ops := make([]func() error, callers)
	var ready sync.WaitGroup
	for i := range ops {
		ops[i] = setup(ctx)
		ready.Add(1)
	}
	errs := make(chan error, callers)
	for _, op := range ops {
		go func() {
			defer ready.Done()
			if err := op(); err != nil {
				errs <- err
			}
		}()
	}
	ready.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("warm-up: %v", err)
	}
	if callers == 1 {
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := ops[0](); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	var next atomic.Int64
	var done sync.WaitGroup
	var failed atomic.Bool
	b.ResetTimer()
	for _, op := range ops {
		done.Add(1)
		go func() {
			defer done.Done()
			for next.Add(1) <= int64(b.N) && !failed.Load() {
				if err := op(); err != nil {
					failed.Store(true)
					b.Error(err)
					return
				}
			}
		}()
	}
	done.Wait()
}
