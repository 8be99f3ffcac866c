package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

func TestDialEcho(t *testing.T) {
	ca := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{ID: "p1"})
	a := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{p.Addr}})
	got := make(chan net.Addr, 1)
	if err := a.Register("echo", func(c net.Conn) {
		got <- c.RemoteAddr()
		echo(c)
	}); err != nil {
		t.Fatal(err)
	}
	waitAgent(t, p.Server, "node-1")
	waitFor(t, 5*time.Second, "echo announced", func() bool {
		s, _ := p.Services("node-1")
		return sameStrings(s, []string{"echo"})
	})
	client := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40123}
	c, err := p.DialFrom(context.Background(), "node-1", "echo", client)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "hello through the tunnel")
	if ra := <-got; ra.String() != client.String() || ra.Network() != "tcp" {
		t.Errorf("agent saw RemoteAddr %s/%s, want %s/tcp", ra, ra.Network(), client)
	}
	if c.Service() != "echo" {
		t.Errorf("Service = %q", c.Service())
	}
	c.Close()
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	waitFor(t, 5*time.Second, "stream counted closed", func() bool {
		return p.Stats().Streams == 0 && a.Stats().Streams == 0
	})
	ss, as := p.Stats(), a.Stats()
	if ss.Tunnels != 1 || ss.StreamsTotal != 1 || ss.BytesOut != 24 || ss.BytesIn != 24 {
		t.Errorf("server stats %+v", ss)
	}
	if as.Tunnels != 1 || as.Connects != 1 || as.StreamsTotal != 1 || as.BytesIn != 24 || as.BytesOut != 24 {
		t.Errorf("agent stats %+v", as)
	}
	if ids := a.Proxies(); !sameStrings(ids, []string{"p1"}) {
		t.Errorf("Proxies = %v", ids)
	}
}

func TestDialErrors(t *testing.T) {
	ca := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{})
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	a := startAgent(t, ca, "node-1", AgentConfig{
		ProxyAddrs: []string{p.Addr},
		Services:   map[string]string{"down": deadAddr},
	})
	a.Register("echo", echo)
	waitAgent(t, p.Server, "node-1")
	waitFor(t, 5*time.Second, "services announced", func() bool {
		s, _ := p.Services("node-1")
		return sameStrings(s, []string{"down", "echo"})
	})
	tests := []struct {
		name    string
		agent   string
		service string
		want    error
	}{
		{"agent not connected", "node-2", "echo", ErrAgentNotFound},
		{"service not offered", "node-1", "ssh", ErrNoService},
		{"local service unreachable", "node-1", "down", ErrRefused},
		{"invalid service name", "node-1", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := p.Dial(context.Background(), tt.agent, tt.service)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Dial = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrAgentNotFound, ErrNoService, ErrRefused} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
		})
	}
	// The agent refuses a service it dropped even if the proxy's list
	// still names it (the announcement is in flight).
	t.Run("agent refuses unknown service", func(t *testing.T) {
		st, err := p.agents["node-1"].sess.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		hdr, _ := appendStreamHeader(nil, streamHeader{Service: "nope"})
		st.SetDeadline(time.Now().Add(5 * time.Second))
		code, reason, err := exchangeHeader(st, hdr)
		if err != nil || code != statusNoService {
			t.Fatalf("status %d %q %v, want no-service", code, reason, err)
		}
	})
	var re *RefusedError
	_, err = p.Dial(context.Background(), "node-1", "down")
	if !errors.As(err, &re) || re.AgentID != "node-1" || re.Service != "down" || re.Reason == "" {
		t.Errorf("refusal %#v", err)
	}
	if got := a.Stats().Refused; got < 2 {
		t.Errorf("agent counted %d refusals, want >= 2", got)
	}
}

func TestStreamLimit(t *testing.T) {
	ca := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{})
	a := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{p.Addr}, MaxStreams: 2})
	a.Register("echo", echo)
	waitAgent(t, p.Server, "node-1")
	c1 := dial(t, p.Server, "node-1", "echo")
	c2 := dial(t, p.Server, "node-1", "echo")
	roundTrip(t, c1, "one")
	roundTrip(t, c2, "two")
	_, err := p.Dial(context.Background(), "node-1", "echo")
	var re *RefusedError
	if !errors.As(err, &re) || !errors.Is(err, ErrRefused) {
		t.Fatalf("third stream: %v, want ErrRefused", err)
	}
	c1.Close()
	waitFor(t, 5*time.Second, "a free stream slot", func() bool { return a.Stats().Streams < 2 })
	c3 := dial(t, p.Server, "node-1", "echo")
	roundTrip(t, c3, "three")
}

// TestConnWriteTo: io.Copy from a Conn goes through Conn.WriteTo, which
// copies everything, in order, to EOF, on both ends of a stream.
func TestConnWriteTo(t *testing.T) {
	ca := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{})
	a := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{p.Addr}})
	a.Register("echo", echo) // io.Copy(c, c): the agent side's WriteTo
	waitAgent(t, p.Server, "node-1")
	c := dial(t, p.Server, "node-1", "echo")
	var _ io.WriterTo = c
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.CloseWrite()
	}()
	var got bytes.Buffer
	n, err := io.Copy(&got, c) // the proxy side's WriteTo
	if err != nil || n != int64(len(data)) || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("io.Copy: %d bytes, %v; want %d bytes, equal: %v", n, err, len(data), bytes.Equal(got.Bytes(), data))
	}
}

func TestConnConformance(t *testing.T) {
	ca := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{})
	a := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{p.Addr}})
	agentSide := make(chan net.Conn)
	a.Register("pipe", func(c net.Conn) {
		done := make(chan struct{})
		agentSide <- &notifyConn{Conn: c, done: done}
		<-done
	})
	waitAgent(t, p.Server, "node-1")
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		c1, err := p.Dial(context.Background(), "node-1", "pipe")
		if err != nil {
			return nil, nil, nil, err
		}
		c2 := <-agentSide
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	})
}

// notifyConn tells the handler when the test closed the conn.
type notifyConn struct {
	net.Conn
	done chan struct{}
	once sync.Once
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.done) })
	return err
}

func TestReplaceStaleTunnel(t *testing.T) {
	ca := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{ID: "p1"})
	// A first agent process with the same identity, which then goes
	// silent: its tunnel is stale but its TCP connection still open.
	stale := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{p.Addr}, HeartbeatInterval: time.Hour})
	waitAgent(t, p.Server, "node-1")
	stale.mu.Lock()
	var staleTunnel *agentTunnel
	for _, tt := range stale.tunnels {
		staleTunnel = tt
	}
	stale.cancel() // stop reconnecting, as a frozen process would
	stale.mu.Unlock()

	fresh := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{p.Addr}})
	fresh.Register("echo", echo)
	waitFor(t, 10*time.Second, "the stale tunnel replaced", func() bool { return p.Stats().Replaced == 1 })
	select {
	case <-staleTunnel.sess.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("the stale tunnel was not closed")
	}
	waitFor(t, 5*time.Second, "echo from the fresh agent", func() bool {
		s, _ := p.Services("node-1")
		return sameStrings(s, []string{"echo"})
	})
	roundTrip(t, dial(t, p.Server, "node-1", "echo"), "fresh")
	if st := p.Stats(); st.Tunnels != 1 || st.Accepted != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestDrainOnShutdown(t *testing.T) {
	ca := newTestCA(t)
	p1 := startProxy(t, ca, "", ServerConfig{ID: "p1"})
	p2 := startProxy(t, ca, "", ServerConfig{ID: "p2"})
	a := startAgent(t, ca, "node-1", AgentConfig{ProxyAddrs: []string{p1.Addr, p2.Addr}})
	a.Register("echo", echo)
	waitFor(t, 10*time.Second, "tunnels to both proxies", func() bool { return sameStrings(a.Proxies(), []string{"p1", "p2"}) })
	waitAgent(t, p1.Server, "node-1")
	c := dial(t, p1.Server, "node-1", "echo")
	roundTrip(t, c, "before")

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- p1.Shutdown(ctx)
	}()
	waitFor(t, 5*time.Second, "agent draining p1", func() bool { return sameStrings(a.Proxies(), []string{"p2"}) })
	// The stream in progress goes on; new streams go elsewhere.
	roundTrip(t, c, "during drain")
	if _, err := p1.Dial(context.Background(), "node-1", "echo"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Dial on a draining proxy = %v, want ErrServerClosed", err)
	}
	roundTrip(t, dial(t, p2.Server, "node-1", "echo"), "via p2")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the stream ended", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last stream ended")
	}
	if err := p1.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Close after Shutdown = %v, want net.ErrClosed", err)
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	ca := newTestCA(t)
	// A proxy that completes the TLS handshake and then never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	start := time.Now()
	a, err := NewAgent(&AgentConfig{
		ProxyAddrs: []string{ln.Addr().String()}, TLSConfig: ca.agentTLS(t, "n"),
		HandshakeTimeout: 300 * time.Millisecond, ReconnectMin: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	defer a.Close()
	waitFor(t, 5*time.Second, "dial failure", func() bool { return a.Stats().DialFailures == 1 })
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("handshake timeout took %v", d)
	}

	// A live tunnel whose proxy stops sending heartbeats is dropped after
	// MissedHeartbeats intervals.
	p := startProxy(t, ca, "", ServerConfig{ID: "p1", HeartbeatInterval: 50 * time.Millisecond})
	b := startAgent(t, ca, "node-2", AgentConfig{ProxyAddrs: []string{p.Addr}, HeartbeatInterval: 50 * time.Millisecond, MissedHeartbeats: 2, ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	waitAgent(t, p.Server, "node-2")
	// With heartbeats both ways the tunnel outlives many intervals.
	time.Sleep(400 * time.Millisecond)
	if s := b.Stats(); s.Tunnels != 1 || s.Connects != 1 {
		t.Fatalf("tunnel did not survive with heartbeats: %+v", s)
	}
	p.mu.Lock()
	p.agents["node-2"].ctrl.stopHeartbeats() // the proxy goes silent
	p.mu.Unlock()
	// The agent drops the tunnel (and, having no backoff before a first
	// attempt, dials again at once).
	waitFor(t, 5*time.Second, "tunnel dropped for silence", func() bool {
		s := b.Stats()
		return s.Tunnels == 0 || s.Connects >= 2
	})
}

func TestConfigValidation(t *testing.T) {
	ca := newTestCA(t)
	tlsc := ca.agentTLS(t, "a")
	tests := []struct {
		name string
		cfg  *AgentConfig
	}{
		{"nil", nil},
		{"no addresses", &AgentConfig{TLSConfig: tlsc}},
		{"bad address", &AgentConfig{TLSConfig: tlsc, ProxyAddrs: []string{"nohost"}}},
		{"no TLS", &AgentConfig{ProxyAddrs: []string{"p:1"}}},
		{"small window", &AgentConfig{TLSConfig: tlsc, ProxyAddrs: []string{"p:1"}, StreamWindow: 1024}},
		{"bad service address", &AgentConfig{TLSConfig: tlsc, ProxyAddrs: []string{"p:1"}, Services: map[string]string{"x": "y"}}},
		{"negative heartbeat", &AgentConfig{TLSConfig: tlsc, ProxyAddrs: []string{"p:1"}, HeartbeatInterval: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewAgent(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewAgent = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := NewServer(&ServerConfig{Peers: []Peer{{Addr: "x:1"}}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewServer with a peer without ID = %v", err)
	}
	s, err := NewServer(nil)
	if err != nil || s.ID() == "" {
		t.Fatalf("NewServer(nil) = %v, %v", s, err)
	}
	s.Close()
	if err := s.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
	a, _ := NewAgent(&AgentConfig{TLSConfig: tlsc, ProxyAddrs: []string{"p:1"}})
	if err := a.Register("", echo); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Register empty name = %v", err)
	}
	a.Close()
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second agent Close = %v", err)
	}
	if err := a.Start(); !errors.Is(err, ErrAgentClosed) {
		t.Errorf("Start after Close = %v", err)
	}
}

func TestUnauthenticatedAgent(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{})
	// A certificate from another CA fails the handshake; the agent keeps
	// retrying and never registers.
	cfg := other.agentTLS(t, "intruder")
	cfg.RootCAs = ca.Pool
	a := startAgent(t, ca, "intruder", AgentConfig{ProxyAddrs: []string{p.Addr}, TLSConfig: cfg})
	waitFor(t, 5*time.Second, "failed dials", func() bool { return a.Stats().DialFailures >= 2 })
	if got := p.Agents(); len(got) != 0 {
		t.Fatalf("agents %v registered", got)
	}
}

func TestCloseDuringHandshake(t *testing.T) {
	ca := newTestCA(t)
	p := startProxy(t, ca, "", ServerConfig{})
	c, err := net.Dial("tcp", p.Addr) // never sends a ClientHello
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 5*time.Second, "the conn in its handshake", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.conns) == 1
	})
	start := time.Now()
	p.stop(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v with a conn in its handshake", d)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the conn is still open")
	}
}
