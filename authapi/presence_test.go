package authapi

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/backend"
)

func heartbeat(t testing.TB, c *Client, srv *authv1.Server, ttl time.Duration) {
	t.Helper()
	if _, err := c.API().Heartbeat(testCtx(t), &authv1.HeartbeatRequest{Server: srv, Ttl: durationpb.New(ttl)}); err != nil {
		t.Fatal(err)
	}
}

func recvEvent(t testing.TB, s authv1.AuthService_WatchServersClient) *authv1.ServerEvent {
	t.Helper()
	ev, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestPresence(t *testing.T) {
	ts := startServer(t, nil, nil)
	ctx := testCtx(t)
	agentCreds, err := ts.IssueIdentity(ctx, RoleAgent, "agent-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	proxyCreds, err := ts.IssueIdentity(ctx, RoleProxy, "proxy-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	agent, proxy := ts.client(t, agentCreds), ts.client(t, proxyCreds)

	heartbeat(t, proxy, &authv1.Server{Kind: RoleProxy, Addrs: []string{"proxy-1:443"}}, time.Minute)
	watch, err := proxy.API().WatchServers(ctx, &authv1.WatchServersRequest{Kind: RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvEvent(t, watch); ev.Type != authv1.ServerEvent_TYPE_INIT || len(ev.Servers) != 0 {
		t.Fatalf("first event %v, want an empty INIT", ev)
	}
	srv := &authv1.Server{Kind: RoleAgent, Hostname: "db01", Addrs: []string{"10.0.0.5:3022"}, Labels: map[string]string{"env": "prod"},
		Services: []*authv1.Service{{Type: "ssh", Name: "db01"}, {Type: "db", Name: "orders", Addr: "127.0.0.1:5432"}}}
	heartbeat(t, agent, srv, 2*time.Second)
	ev := recvEvent(t, watch)
	if ev.Type != authv1.ServerEvent_TYPE_PUT || ev.Server.Name != "agent-1" || ev.Server.Labels["env"] != "prod" || len(ev.Server.Services) != 2 || ev.Server.Expires == nil {
		t.Fatalf("event %v, want PUT of agent-1", ev)
	}
	// An unchanged heartbeat only extends the lifetime (KeepAlive).
	heartbeat(t, agent, srv, 2*time.Second)
	if ev := recvEvent(t, watch); ev.Type != authv1.ServerEvent_TYPE_PUT || ev.Server.Name != "agent-1" {
		t.Fatalf("keepalive event %v", ev)
	}
	list, err := agent.API().ListServers(ctx, &authv1.ListServersRequest{})
	if err != nil || len(list.Servers) != 2 {
		t.Fatalf("ListServers = %v, %v; want the proxy and the agent", list, err)
	}
	// Without heartbeats the agent expires, and watchers see it go.
	if ev := recvEvent(t, watch); ev.Type != authv1.ServerEvent_TYPE_DELETE || ev.Server.Name != "agent-1" || ev.Server.Kind != RoleAgent {
		t.Fatalf("event %v, want DELETE of agent-1", ev)
	}
	list, err = agent.API().ListServers(ctx, &authv1.ListServersRequest{Kind: RoleAgent})
	if err != nil || len(list.Servers) != 0 {
		t.Fatalf("ListServers after expiry = %v, %v", list, err)
	}

	// A host may announce only itself, and only in a role it holds.
	for _, tc := range []struct {
		name string
		srv  *authv1.Server
	}{
		{"other host", &authv1.Server{Kind: RoleAgent, Name: "agent-2"}},
		{"role not held", &authv1.Server{Kind: RoleProxy}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := agent.API().Heartbeat(ctx, &authv1.HeartbeatRequest{Server: tc.srv})
			if !errors.Is(err, ErrAccessDenied) {
				t.Fatalf("Heartbeat = %v, want ErrAccessDenied", err)
			}
		})
	}
}

// lossyBackend makes its watchers fail with ErrWatcherFellBehind on demand,
// to exercise the re-sync path (a real backend only does it under load).
type lossyBackend struct {
	backend.Backend
	mu       sync.Mutex
	watchers []*lossyWatcher
}

type lossyWatcher struct {
	backend.Watcher
	events chan backend.Event
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error
}

func (b *lossyBackend) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	inner, err := b.Backend.NewWatcher(ctx, w)
	if err != nil {
		return nil, err
	}
	lw := &lossyWatcher{Watcher: inner, events: make(chan backend.Event), done: make(chan struct{})}
	go lw.pump()
	b.mu.Lock()
	b.watchers = append(b.watchers, lw)
	b.mu.Unlock()
	return lw, nil
}

func (w *lossyWatcher) pump() {
	defer close(w.events)
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.Watcher.Events():
			if !ok {
				w.stop(w.Watcher.Err())
				return
			}
			select {
			case w.events <- ev:
			case <-w.done:
				return
			}
		}
	}
}

func (w *lossyWatcher) stop(err error) {
	w.once.Do(func() {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		close(w.done)
		w.Watcher.Close()
	})
}

func (w *lossyWatcher) Events() <-chan backend.Event { return w.events }
func (w *lossyWatcher) Done() <-chan struct{}        { return w.done }
func (w *lossyWatcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
func (w *lossyWatcher) Close() error { w.stop(backend.ErrClosed); return nil }

func (b *lossyBackend) fallBehind() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.watchers {
		w.stop(backend.ErrWatcherFellBehind)
	}
	b.watchers = nil
}

func TestWatchResync(t *testing.T) {
	lb := &lossyBackend{Backend: newMemory(t)}
	ts := startServer(t, lb, nil)
	ctx := testCtx(t)
	creds, err := ts.IssueIdentity(ctx, RoleAgent, "agent-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	agent := ts.client(t, creds)
	watch, err := ts.client(t, ts.Admin).API().WatchServers(ctx, &authv1.WatchServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvEvent(t, watch); ev.Type != authv1.ServerEvent_TYPE_INIT {
		t.Fatalf("first event %v", ev)
	}
	// The watcher falls behind while a heartbeat happens: the stream
	// re-syncs with an INIT that includes it.
	lb.fallBehind()
	heartbeat(t, agent, &authv1.Server{Kind: RoleAgent}, time.Minute)
	// The next event is the re-sync INIT; the heartbeat is either in it or
	// follows it as a PUT. Either way the receiver's state includes it.
	ev := recvEvent(t, watch)
	if ev.Type != authv1.ServerEvent_TYPE_INIT {
		t.Fatalf("event %v, want INIT after the re-sync", ev)
	}
	if len(ev.Servers) == 0 {
		ev = recvEvent(t, watch)
		if ev.Type != authv1.ServerEvent_TYPE_PUT || ev.Server.Name != "agent-1" {
			t.Fatalf("event %v, want PUT of agent-1", ev)
		}
	} else if len(ev.Servers) != 1 || ev.Servers[0].Name != "agent-1" {
		t.Fatalf("re-sync INIT %v", ev)
	}
}

// TestShutdownEndsWatch: Shutdown ends open watch streams instead of
// waiting for them, and a second Shutdown or Close reports net.ErrClosed.
func TestShutdownEndsWatch(t *testing.T) {
	ts := startServer(t, nil, nil)
	ctx := testCtx(t)
	watch, err := ts.client(t, ts.Admin).API().WatchServers(ctx, &authv1.WatchServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recvEvent(t, watch)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if _, err := watch.Recv(); err == nil {
		t.Fatal("watch stream still open after Shutdown")
	}
	if err := ts.Close(); !errors.Is(err, netErrClosed) {
		t.Fatalf("Close after Shutdown = %v, want net.ErrClosed", err)
	}
}

// TestAnnounceAndWatch: the client helpers keep a host announced and a
// watcher's view complete, across a restart of the auth instance.
func TestAnnounceAndWatch(t *testing.T) {
	b := newMemory(t)
	ts := startServer(t, b, nil)
	ctx := testCtx(t)
	creds, err := ts.IssueIdentity(ctx, RoleAgent, "agent-9", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	agent := ts.client(t, creds)
	actx, stopAnnounce := context.WithCancel(ctx)
	announced := make(chan error, 1)
	go func() {
		announced <- agent.Announce(actx, &authv1.Server{Kind: RoleAgent, Labels: map[string]string{"env": "dev"}}, 300*time.Millisecond)
	}()
	views := make(chan []string, 100)
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() {
		watched <- ts.client(t, ts.Admin).WatchServers(wctx, RoleAgent, func(s []*authv1.Server) {
			var names []string
			for _, x := range s {
				names = append(names, x.Name)
			}
			views <- names
		})
	}()
	waitView := func(want int) {
		t.Helper()
		for {
			select {
			case v := <-views:
				if len(v) == want && (want == 0 || v[0] == "agent-9") {
					return
				}
			case err := <-announced:
				t.Fatalf("Announce returned early: %v", err)
			case <-ctx.Done():
				t.Fatalf("no view with %d servers", want)
			}
		}
	}
	waitView(1)
	// The watch survives a restart of the auth instance.
	ts.Close()
	time.Sleep(100 * time.Millisecond)
	for len(views) > 0 {
		<-views // views from before the restart
	}
	startServerOn(t, b, testConfig{Config: Config{HostID: "auth-2"}, listenAddr: ts.Addr})
	waitView(1)
	stopAnnounce()
	if err := <-announced; !errors.Is(err, context.Canceled) {
		t.Fatalf("Announce = %v", err)
	}
	waitView(0) // expired after its TTL
	stopWatch()
	if err := <-watched; !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchServers = %v", err)
	}
	// A refused announcement ends Announce with the refusal.
	if err := agent.Announce(ctx, &authv1.Server{Kind: RoleProxy}, time.Second); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("Announce as proxy = %v, want ErrAccessDenied", err)
	}
}

// TestListServersForUser: a user lists the proxies and only the agents its
// roles select by label; hosts still see every server.
func TestListServersForUser(t *testing.T) {
	ts := startServer(t, nil, &Config{RateLimit: -1})
	ctx := testCtx(t)
	admin := ts.client(t, ts.Admin).API()
	if _, err := admin.UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: &authv1.Role{Name: "dev", Logins: []string{"ubuntu"},
		NodeLabels: map[string]*authv1.LabelValues{"env": {Values: []string{"dev"}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "alice", Roles: []string{"dev"}, Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct{ name, env string }{{"agent-dev", "dev"}, {"agent-prod", "prod"}} {
		creds, err := ts.IssueIdentity(ctx, RoleAgent, a.name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		heartbeat(t, ts.client(t, creds), &authv1.Server{Kind: RoleAgent, Hostname: a.name, Labels: map[string]string{"env": a.env}}, time.Minute)
	}
	proxyCreds, err := ts.IssueIdentity(ctx, RoleProxy, "proxy-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	proxy := ts.client(t, proxyCreds)
	heartbeat(t, proxy, &authv1.Server{Kind: RoleProxy, Addrs: []string{"proxy-1:443"}}, time.Minute)

	userCreds, err := ts.client(t, nil).Login(ctx, LoginRequest{User: "alice", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	names := func(c *Client, kind string) []string {
		t.Helper()
		list, err := c.API().ListServers(ctx, &authv1.ListServersRequest{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range list.Servers {
			out = append(out, s.Hostname+"/"+s.Kind)
		}
		slices.Sort(out)
		return out
	}
	user := ts.client(t, userCreds)
	for _, tc := range []struct {
		name   string
		client *Client
		kind   string
		want   []string
	}{
		{"user-agents", user, RoleAgent, []string{"agent-dev/agent"}},
		{"user-all", user, "", []string{"/proxy", "agent-dev/agent"}},
		{"proxy-agents", proxy, RoleAgent, []string{"agent-dev/agent", "agent-prod/agent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(tc.client, tc.kind); !slices.Equal(got, tc.want) {
				t.Errorf("ListServers(%q) = %v, want %v", tc.kind, got, tc.want)
			}
		})
	}
}
