package authapi

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
)

// TestCAsCreatedOnce starts several instances at the same moment against
// one backend: they must all end up with the same CAs.
func TestCAsCreatedOnce(t *testing.T) {
	b := newMemory(t)
	const n = 8
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			servers[i], errs[i] = New(context.Background(), &Config{Backend: b, ClusterName: "race"})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		t.Cleanup(func() { servers[i].Close() })
	}
	for _, typ := range caTypes {
		want := servers[0].cas[typ]
		for i, s := range servers[1:] {
			got := s.cas[typ]
			if !bytes.Equal(got.cert.Raw, want.cert.Raw) || got.sshPub != want.sshPub {
				t.Errorf("instance %d has a different %s CA", i+1, typ)
			}
		}
	}
	if servers[0].CAPin() != servers[n-1].CAPin() {
		t.Error("pins differ")
	}
	// Another cluster name on the same backend is refused.
	if _, err := New(context.Background(), &Config{Backend: b, ClusterName: "other"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("New with another cluster name: %v, want ErrInvalidArgument", err)
	}
}

func TestConfigValidation(t *testing.T) {
	b := newMemory(t)
	cases := []struct {
		name string
		cfg  *Config
	}{
		{"nil config", nil},
		{"no backend", &Config{}},
		{"bad cluster name", &Config{Backend: b, ClusterName: "a b"}},
		{"bad host id", &Config{Backend: b, HostID: "/x"}},
		{"bcrypt cost", &Config{Backend: b, BcryptCost: 99}},
		{"tiny ttl", &Config{Backend: b, HostCertTTL: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(context.Background(), tc.cfg); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("New = %v, want ErrInvalidArgument", err)
			}
		})
	}
}
