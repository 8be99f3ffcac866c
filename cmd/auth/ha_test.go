package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/internal/testservice"
)

// TestHA runs two auth processes on one PostgreSQL database behind
// HAProxy: both serve with the same CAs, and a client that only knows the
// load balancer keeps working while each instance in turn is killed and
// restarted.
func TestHA(t *testing.T) {
	dbURL := testservice.PostgresDB(t)
	type instance struct {
		p    *testservice.Process
		addr string
		dir  string
	}
	var inst [2]*instance
	var wg sync.WaitGroup
	addrs := []string{testservice.FreeAddr(t), testservice.FreeAddr(t)}
	// Both start at the same moment on an empty database.
	for i, id := range []string{"auth-a", "auth-b"} {
		dir := t.TempDir()
		inst[i] = &instance{addr: addrs[i], dir: dir}
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst[i].p = testservice.Start(t, authBin, []string{"start", "--listen", addrs[i], "--data-dir", dir, "--backend", dbURL, "--cluster-name", "ha", "--host-id", id}, nil, addrs[i])
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	pinA, _ := os.ReadFile(filepath.Join(inst[0].dir, "ca-pin"))
	pinB, _ := os.ReadFile(filepath.Join(inst[1].dir, "ca-pin"))
	if len(pinA) == 0 || !bytes.Equal(pinA, pinB) {
		t.Fatalf("CA pins differ: %q vs %q", pinA, pinB)
	}
	admin, err := authapi.LoadCredentials(filepath.Join(inst[0].dir, "admin.json"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	// Both serve, with identical CAs.
	var cas [2][]*authv1.CertAuthority
	for i, in := range inst {
		c, err := authapi.NewClient(&authapi.ClientConfig{Addrs: []string{in.addr}, Credentials: admin})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.API().GetCertAuthorities(ctx, &authv1.GetCertAuthoritiesRequest{})
		c.Close()
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		cas[i] = r.Authorities
	}
	for j := range cas[0] {
		if !bytes.Equal(cas[0][j].TlsCert, cas[1][j].TlsCert) || cas[0][j].SshPublicKey != cas[1][j].SshPublicKey {
			t.Fatalf("CA %s differs between the instances", cas[0][j].Type)
		}
	}

	lb := testservice.HAProxyTCP(t, addrs, "check inter 200ms fall 1 rise 1")
	c, err := authapi.NewClient(&authapi.ClientConfig{Addrs: []string{lb.Addr}, Credentials: admin, MaxRetries: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A client loop: reads and writes through the load balancer.
	var calls, failures atomic.Int64
	var lastErr atomic.Value
	var current atomic.Value // host ID of the instance that answered last
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			p, err := c.API().Ping(ctx, &authv1.PingRequest{})
			if err == nil {
				current.Store(p.ServerHostId)
				_, err = c.API().UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: &authv1.Role{Name: "r", Logins: []string{p.ServerHostId}}})
			}
			calls.Add(1)
			if err != nil {
				failures.Add(1)
				lastErr.Store(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	waitCalls := func(n int64) {
		t.Helper()
		target := calls.Load() + n
		for deadline := time.Now().Add(15 * time.Second); calls.Load() < target; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("client stalled at %d calls", calls.Load())
			}
		}
	}
	waitCalls(5)
	// Twice: kill the instance the client is using; the client moves to
	// the other one; restart the killed one.
	index := map[string]int{"auth-a": 0, "auth-b": 1}
	for round := range 2 {
		victim := current.Load().(string)
		in := inst[index[victim]]
		in.p.Kill()
		waitCalls(10)
		if now := current.Load().(string); now == victim {
			t.Fatalf("round %d: still answered by the killed %s", round, victim)
		}
		in.p.Restart(in.addr)
		waitCalls(5)
		t.Logf("round %d: killed %s, client moved to %s, restarted; %d calls so far, %d failed", round, victim, current.Load(), calls.Load(), failures.Load())
	}
	close(stop)
	<-done
	if failures.Load() > 0 {
		t.Fatalf("%d of %d calls failed; last: %v", failures.Load(), calls.Load(), lastErr.Load())
	}
	// A host joins through the load balancer after all that.
	tok, err := c.API().CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{Roles: []string{"proxy"}})
	if err != nil {
		t.Fatal(err)
	}
	joined, err := authapi.Join(ctx, authapi.JoinConfig{Addrs: []string{lb.Addr}, Token: tok.Token, CAPin: string(bytes.TrimSpace(pinA))})
	if err != nil {
		t.Fatal(err)
	}
	// The join is in the audit table in PostgreSQL, seen through either
	// instance.
	for _, in := range inst {
		out := authCmd(t, "", "events", "--type", "host.join", "--auth-server", in.addr, "--identity", filepath.Join(inst[0].dir, "admin.json"))
		if !strings.Contains(out, joined.Identity.Name) {
			t.Fatalf("events through %s:\n%s", in.addr, out)
		}
	}
}
