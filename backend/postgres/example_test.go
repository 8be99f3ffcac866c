package postgres_test

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/postgres"
)

// Open a backend on a PostgreSQL database, write an item and follow the
// changes under a prefix. It needs a running PostgreSQL, so it is only
// compiled; TestExampleFlow runs the same steps.
func Example() {
	ctx := context.Background()
	b, err := postgres.Open(ctx, &postgres.Config{
		ConnString: "postgres://sallyport@127.0.0.1:5432/sallyport?sslmode=disable",
		Schema:     "cluster1",
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

// ParseURI splits a backend URI into the driver's settings and the pgx
// connection string.
func ExampleParseURI() {
	u, _ := url.Parse("postgresql://sallyport@db.internal/state?schema=cluster1&gap_timeout=2s&sslmode=verify-full")
	cfg, err := postgres.ParseURI(u)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Schema, cfg.GapTimeout)
	fmt.Println(cfg.ConnString)
	// Output:
	// cluster1 2s
	// postgres://sallyport@db.internal/state?sslmode=verify-full
}
