package etcd_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/etcd"
	"github.com/sallyport/sallyport/internal/testpki"
	"github.com/sallyport/sallyport/internal/testservice"
)

// TestCompactedWatch: a watch whose start revision was compacted away
// stops with ErrWatchBroken.
func TestCompactedWatch(t *testing.T) {
	srv := testservice.StartEtcd(t)
	b := open(t, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: "/c"})
	ctx := backendtest.Context(t)
	first, err := b.Put(ctx, backend.Item{Key: []byte("/k"), Value: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := range 5 {
		if last, err = b.Put(ctx, backend.Item{Key: []byte("/k"), Value: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Client().Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	w, err := etcd.NewWatcherAfter(b, ctx, backend.Watch{}, first)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ev := backendtest.NextEvent(t, w, 5*time.Second); ev.Type != backend.OpInit {
		t.Fatalf("first event %v", ev.Type)
	}
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("watch from a compacted revision did not stop")
	}
	if err := w.Err(); !errors.Is(err, backend.ErrWatchBroken) || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("watcher error %v, want ErrWatchBroken for compaction", err)
	}
}

// TestPrefixIsolation: backends with prefixes "/a" and "/a1" on one etcd
// do not see each other's keys, in reads, deletes or watches.
func TestPrefixIsolation(t *testing.T) {
	srv := testservice.StartEtcd(t)
	a := open(t, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: "/a"})
	a1 := open(t, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: "/a1"})
	ctx := backendtest.Context(t)
	wa := backendtest.Watch(t, a, "")
	if _, err := a1.Put(ctx, backend.Item{Key: []byte("/x"), Value: []byte("a1")}); err != nil {
		t.Fatal(err)
	}
	rev, err := a.Put(ctx, backend.Item{Key: []byte("/y"), Value: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := backendtest.NextEvent(t, wa, 5*time.Second); string(ev.Item.Key) != "/y" || ev.Item.Revision != rev {
		t.Fatalf("a's watcher got %q rev %d, want /y rev %d", ev.Item.Key, ev.Item.Revision, rev)
	}
	res, err := a.GetRange(ctx, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 1 || string(res.Items[0].Key) != "/y" {
		t.Fatalf("a's range: %+v", res.Items)
	}
	if n, err := a.DeleteRange(ctx, nil, nil); err != nil || n != 1 {
		t.Fatalf("a's delete range: %d, %v", n, err)
	}
	if it, err := a1.Get(ctx, []byte("/x")); err != nil || string(it.Value) != "a1" {
		t.Fatalf("a1's item after a's delete range: %+v, %v", it, err)
	}
	// In etcd the keys are the prefix, "/" and the key.
	resp, err := a.Client().Get(ctx, "/a1//x")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("stored key /a1//x: %v, %v", resp, err)
	}
}

func TestParseURI(t *testing.T) {
	dir := t.TempDir()
	ca, _, _, _ := writeCerts(t, dir)
	backendtest.RunParseURI(t, etcd.ParseURI, []backendtest.URICase[*etcd.Config]{
		{Name: "one endpoint", URI: "etcd://127.0.0.1:2379/cluster1", Check: func(t *testing.T, c *etcd.Config) {
			if fmt.Sprint(c.Endpoints) != "[http://127.0.0.1:2379]" || c.Prefix != "/cluster1" || c.TLS != nil {
				t.Fatalf("%+v", c)
			}
		}},
		{Name: "comma endpoints", URI: "etcd://h1:2379,h2:2379,h3:2379/p", Check: func(t *testing.T, c *etcd.Config) {
			if fmt.Sprint(c.Endpoints) != "[http://h1:2379 http://h2:2379 http://h3:2379]" {
				t.Fatalf("%v", c.Endpoints)
			}
		}},
		{Name: "query endpoints", URI: "etcd://h1:2379/p?endpoints=h2:2379,h3:2379&endpoints=h4:2379", Check: func(t *testing.T, c *etcd.Config) {
			if fmt.Sprint(c.Endpoints) != "[http://h1:2379 http://h2:2379 http://h3:2379 http://h4:2379]" {
				t.Fatalf("%v", c.Endpoints)
			}
		}},
		{Name: "tls with ca", URI: "etcd://h1:2379/p?ca=" + url.QueryEscape(ca) + "&server_name=etcd.local", Check: func(t *testing.T, c *etcd.Config) {
			if c.TLS == nil || c.TLS.RootCAs == nil || c.TLS.ServerName != "etcd.local" || c.Endpoints[0] != "https://h1:2379" {
				t.Fatalf("%+v", c)
			}
		}},
		{Name: "user and timeouts", URI: "etcd://u:pw@h1:2379/?dial_timeout=2s&request_timeout=3s", Check: func(t *testing.T, c *etcd.Config) {
			if c.Username != "u" || c.Password != "pw" || c.DialTimeout != 2*time.Second || c.RequestTimeout != 3*time.Second {
				t.Fatalf("%+v", c)
			}
		}},
		{Name: "no endpoint", URI: "etcd:///p", WantErr: true},
		{Name: "cert without key", URI: "etcd://h:1/p?cert=/x", WantErr: true},
		{Name: "bad duration", URI: "etcd://h:1/p?dial_timeout=soon", WantErr: true},
	})
}

func TestOpenURI(t *testing.T) {
	srv := testservice.StartEtcd(t)
	b, err := backend.Open(backendtest.Context(t), "etcd://"+srv.Addr+"/uri-test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Put(backendtest.Context(t), backend.Item{Key: []byte("/k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	resp, err := b.(*etcd.Backend).Client().Get(backendtest.Context(t), "/uri-test//k")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("stored key: %v %v", resp, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	_, err := etcd.Open(backendtest.Context(t), &etcd.Config{Endpoints: []string{"http://" + testservice.FreeAddr(t)}, DialTimeout: 500 * time.Millisecond})
	if err == nil {
		t.Fatal("open of an address where nothing listens succeeded")
	}
}

// TestTLS runs against an etcd that requires client certificates: with
// the CA, certificate and key given in the URI it works, without a client
// certificate it does not.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, srvCert, srvKey, client := writeCerts(t, dir)
	srv := testservice.StartEtcdTLS(t, &testservice.EtcdTLS{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: ca})
	q := url.Values{"ca": {ca}, "cert": {client + ".crt"}, "key": {client + ".key"}}
	b, err := backend.Open(backendtest.Context(t), "etcd://"+srv.Addr+"/tls?"+q.Encode())
	if err != nil {
		t.Fatalf("open with a client certificate: %v", err)
	}
	defer b.Close()
	w := backendtest.Watch(t, b, "/")
	rev, err := b.Put(backendtest.Context(t), backend.Item{Key: []byte("/k"), Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := backendtest.NextEvent(t, w, 5*time.Second); ev.Item.Revision != rev {
		t.Fatalf("event rev %d, want %d", ev.Item.Revision, rev)
	}

	q.Del("cert")
	q.Del("key")
	ctx, cancel := context.WithTimeout(backendtest.Context(t), 5*time.Second)
	defer cancel()
	if b2, err := backend.Open(ctx, "etcd://"+srv.Addr+"/tls?dial_timeout=1s&"+q.Encode()); err == nil {
		b2.Close()
		t.Fatal("open without a client certificate succeeded")
	}
}

// writeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate (client+".crt", client+".key") to dir.
func writeCerts(t testing.TB, dir string) (ca, srvCert, srvKey, client string) {
	t.Helper()
	pki := testpki.NewCA(t, "test CA")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, usage x509.ExtKeyUsage) (string, string) {
		certPEM, keyPEM := testpki.PEM(t, pki.Issue(t, name, []x509.ExtKeyUsage{usage}, "127.0.0.1"))
		return write(name+".crt", certPEM), write(name+".key", keyPEM)
	}
	ca = write("ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pki.Cert.Raw}))
	srvCert, srvKey = leaf("server", x509.ExtKeyUsageServerAuth)
	leaf("client", x509.ExtKeyUsageClientAuth)
	return ca, srvCert, srvKey, filepath.Join(dir, "client")
}

// TestServerRestart stops (and kills) etcd under running writers and a
// watcher: operations fail while it is down, the watcher is broken with
// ErrWatchBroken, everything resumes by itself, and no acknowledged write
// is lost.
func TestServerRestart(t *testing.T) {
	tests := []struct {
		name string
		down func(e *testservice.Etcd)
	}{
		{"stop", (*testservice.Etcd).Stop},
		{"kill", (*testservice.Etcd).Kill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testservice.StartEtcd(t)
			b := open(t, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: "/fault", RequestTimeout: 2 * time.Second})
			backendtest.FaultRun(t, backendtest.FaultConfig{Backend: b, Down: func() { tt.down(srv) }, Up: srv.Start})
		})
	}
}

// TestExampleFlow runs the steps of Example on a real etcd.
func TestExampleFlow(t *testing.T) {
	srv := testservice.StartEtcd(t)
	b := open(t, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: "/sallyport/cluster1"})
	w := backendtest.Watch(t, b, "/nodes/")
	rev, err := b.Put(backendtest.Context(t), backend.Item{
		Key:     backend.Key("nodes", "node-1"),
		Value:   []byte(`{"addr":"10.0.0.1:3022"}`),
		Expires: time.Now().Add(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := backendtest.NextEvent(t, w, 5*time.Second)
	if got := fmt.Sprint(ev.Type, " ", string(ev.Item.Key), " ", ev.Item.Revision == rev); got != "put /nodes/node-1 true" {
		t.Fatalf("example prints %q", got)
	}
}

// TestExpiredBeforeLeaseEnds: between an item's expiry and its lease's
// end, etcd still holds it; the backend treats it as absent everywhere,
// and the lease's end brings the delete event.
func TestExpiredBeforeLeaseEnds(t *testing.T) {
	srv := testservice.StartEtcd(t)
	b := open(t, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: randomPrefix()})
	ctx := backendtest.Context(t)
	exp := time.Now().Add(100 * time.Millisecond)
	for _, k := range []string{"/e/a", "/e/b", "/e/c", "/e/d"} {
		if _, err := b.Put(ctx, backend.Item{Key: []byte(k), Value: []byte("v"), Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	w := backendtest.Watch(t, b, "/e/")
	time.Sleep(time.Until(exp) + 20*time.Millisecond)
	resp, err := b.Client().Get(ctx, b.Prefix()+"/e/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 4 {
		t.Fatalf("etcd holds %v items, want all 4 until the lease ends (%v)", resp, err)
	}
	tests := []struct {
		name string
		fn   func() error
		want error
	}{
		{"get", func() error { _, err := b.Get(ctx, []byte("/e/a")); return err }, backend.ErrNotFound},
		{"update", func() error { _, err := b.Update(ctx, backend.Item{Key: []byte("/e/a")}); return err }, backend.ErrNotFound},
		{"delete", func() error { return b.Delete(ctx, []byte("/e/a")) }, backend.ErrNotFound},
		{"keep alive", func() error { _, err := b.KeepAlive(ctx, []byte("/e/a"), time.Now().Add(time.Hour)); return err }, backend.ErrNotFound},
		{"compare and swap", func() error {
			_, err := b.CompareAndSwap(ctx, backend.Item{Value: []byte("v")}, backend.Item{Key: []byte("/e/a")})
			return err
		}, backend.ErrCompareFailed},
		{"atomic write exists", func() error {
			_, err := b.AtomicWrite(ctx, []backend.ConditionalAction{{Key: []byte("/e/a"), Condition: backend.Condition{Kind: backend.Exists}}})
			return err
		}, backend.ErrCompareFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
	res, err := b.GetRange(ctx, []byte("/e/"), nil, 1)
	if err != nil || len(res.Items) != 0 || res.Next != nil {
		t.Fatalf("range over expired items: %+v, %v", res, err)
	}
	// Create replaces an expired item; AtomicWrite with NotExists too.
	rev, err := b.Create(ctx, backend.Item{Key: []byte("/e/b"), Value: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AtomicWrite(ctx, []backend.ConditionalAction{{Key: []byte("/e/c"), Condition: backend.Condition{Kind: backend.NotExists},
		Action: backend.ActionPut, Item: backend.Item{Value: []byte("new")}}}); err != nil {
		t.Fatal(err)
	}
	if ev := backendtest.NextEvent(t, w, 5*time.Second); ev.Type != backend.OpPut || ev.Item.Revision != rev {
		t.Fatalf("event %v rev %d, want the create's put rev %d", ev.Type, ev.Item.Revision, rev)
	}
	backendtest.NextEvent(t, w, 5*time.Second) // the atomic write's put
	// The lease's end deletes the two items still attached to it.
	deleted := map[string]bool{}
	for len(deleted) < 2 {
		ev := backendtest.NextEvent(t, w, 10*time.Second)
		if ev.Type != backend.OpDelete {
			t.Fatalf("event %v %q, want delete", ev.Type, ev.Item.Key)
		}
		deleted[string(ev.Item.Key)] = true
	}
	if !deleted["/e/a"] || !deleted["/e/d"] {
		t.Fatalf("deleted %v, want /e/a and /e/d", deleted)
	}
	if it, err := b.Get(ctx, []byte("/e/b")); err != nil || string(it.Value) != "new" {
		t.Fatalf("created item after the old lease ended: %+v, %v", it, err)
	}
}
