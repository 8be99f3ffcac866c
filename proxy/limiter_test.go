package proxy

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLimiter(t *testing.T) {
	type step struct {
		advance time.Duration
		ip      string
		fail    bool // record a failure after the check
		allowed bool
	}
	cases := []struct {
		name  string
		per   int
		steps []step
	}{
		{name: "unlimited", per: -1, steps: []step{
			{ip: "a", fail: true, allowed: true}, {ip: "a", fail: true, allowed: true}, {ip: "a", allowed: true},
		}},
		{name: "burst-then-refused", per: 2, steps: []step{
			{ip: "a", fail: true, allowed: true}, {ip: "a", fail: true, allowed: true}, {ip: "a", allowed: false},
		}},
		{name: "per-address", per: 1, steps: []step{
			{ip: "a", fail: true, allowed: true}, {ip: "a", allowed: false}, {ip: "b", allowed: true},
		}},
		{name: "refills-over-a-minute", per: 2, steps: []step{
			{ip: "a", fail: true, allowed: true}, {ip: "a", fail: true, allowed: true}, {ip: "a", allowed: false},
			{advance: 20 * time.Second, ip: "a", allowed: false},
			{advance: 15 * time.Second, ip: "a", allowed: true},
		}},
		{name: "successes-do-not-count", per: 1, steps: []step{
			{ip: "a", allowed: true}, {ip: "a", allowed: true}, {ip: "a", allowed: true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1e9, 0)}
			l := newLimiter(tc.per, clk.now)
			for i, st := range tc.steps {
				clk.add(st.advance)
				if got := l.allow(st.ip); got != st.allowed {
					t.Fatalf("step %d: allow(%s) = %v, want %v", i, st.ip, got, st.allowed)
				}
				if st.fail {
					l.fail(st.ip)
				}
			}
		})
	}
}

// TestLimiterBounded checks that the limiter drops refilled buckets
// instead of growing without bound.
func TestLimiterBounded(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLimiter(5, clk.now)
	for i := range maxBuckets {
		l.fail(strconv.Itoa(i))
	}
	clk.add(time.Minute)
	l.fail("new")
	if n := len(l.m); n != 1 {
		t.Fatalf("buckets after refill and a new failure: %d, want 1", n)
	}
}
