package etcd_test

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/etcd"
)

// Open a backend on etcd under a prefix, write an item and follow the
// changes under a key prefix. It needs a running etcd, so it is only
// compiled; TestExampleFlow runs the same steps.
func Example() {
	ctx := context.Background()
	b, err := etcd.Open(ctx, &etcd.Config{
		Endpoints: []string{"http://127.0.0.1:2379"},
		Prefix:    "/sallyport/cluster1",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	w, err := b.NewWatcher(ctx, backend.Watch{Prefixes: [][]byte{[]byte("/nodes/")}})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	<-w.Events() // OpInit: from here on no change is missed

	rev, err := b.Put(ctx, backend.Item{
		Key:     backend.Key("nodes", "node-1"),
		Value:   []byte(`{"addr":"10.0.0.1:3022"}`),
		Expires: time.Now().Add(time.Minute),
	})
	if err != nil {
		log.Fatal(err)
	}
	ev := <-w.Events()
	fmt.Println(ev.Type, string(ev.Item.Key), ev.Item.Revision == rev)
}

// ParseURI reads endpoints, the key prefix and TLS settings from a URI.
func ExampleParseURI() {
	u, _ := url.Parse("etcd://etcd1:2379,etcd2:2379/sallyport/cluster1?endpoints=https://etcd3:2379&request_timeout=3s")
	cfg, err := etcd.ParseURI(u)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Endpoints)
	fmt.Println(cfg.Prefix, cfg.RequestTimeout)
	// Output:
	// [http://etcd1:2379 http://etcd2:2379 https://etcd3:2379]
	// /sallyport/cluster1 3s
}
