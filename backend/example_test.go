package backend_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sallyport/sallyport/backend"
	_ "github.com/sallyport/sallyport/backend/memory"
)

func Example() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "memory://")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	rev, _ := b.Create(ctx, backend.Item{Key: backend.Key("users", "alice"), Value: []byte("admin")})
	fmt.Println("created at revision", rev)

	_, err = b.Create(ctx, backend.Item{Key: backend.Key("users", "alice"), Value: []byte("intruder")})
	fmt.Println("second create:", errors.Is(err, backend.ErrAlreadyExists))

	it, _ := b.Get(ctx, []byte("/users/alice"))
	fmt.Printf("%s = %s (revision %d)\n", it.Key, it.Value, it.Revision)

	_, err = b.Get(ctx, []byte("/users/bob"))
	fmt.Println("bob:", errors.Is(err, backend.ErrNotFound))
	// Output:
	// created at revision 1
	// second create: true
	// /users/alice = admin (revision 1)
	// bob: true
}

func ExampleBackend_GetRange() {
	ctx := context.Background()
	b, _ := backend.Open(ctx, "memory://")
	defer b.Close()
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		b.Put(ctx, backend.Item{Key: backend.Key("users", name), Value: []byte(name)})
	}
	b.Put(ctx, backend.Item{Key: backend.Key("roles", "admin")})

	// Two items per page, over the keys under /users/.
	prefix := []byte("/users/")
	start, end := prefix, backend.RangeEnd(prefix)
	for page := 1; ; page++ {
		res, err := b.GetRange(ctx, start, end, 2)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print("page ", page, ":")
		for _, it := range res.Items {
			fmt.Printf(" %s", it.Value)
		}
		fmt.Println()
		if res.Next == nil {
			break
		}
		start = res.Next
	}
	// Output:
	// page 1: alice bob
	// page 2: carol dave
	// page 3: erin
}

func ExampleBackend_CompareAndSwap() {
	ctx := context.Background()
	b, _ := backend.Open(ctx, "memory://")
	defer b.Close()
	key := []byte("/counter")
	b.Put(ctx, backend.Item{Key: key, Value: []byte("1")})

	cur, _ := b.Get(ctx, key)
	// Someone else writes in between.
	b.Put(ctx, backend.Item{Key: key, Value: []byte("5")})

	_, err := b.CompareAndSwap(ctx, backend.Item{Revision: cur.Revision}, backend.Item{Key: key, Value: []byte("2")})
	fmt.Println("stale revision:", errors.Is(err, backend.ErrCompareFailed))

	// Compare on the value instead.
	rev, err := b.CompareAndSwap(ctx, backend.Item{Value: []byte("5")}, backend.Item{Key: key, Value: []byte("6")})
	fmt.Println("on value:", rev, err)
	// Output:
	// stale revision: true
	// on value: 3 <nil>
}

func ExampleBackend_AtomicWrite() {
	ctx := context.Background()
	b, _ := backend.Open(ctx, "memory://")
	defer b.Close()
	b.Put(ctx, backend.Item{Key: []byte("/ca/host"), Value: []byte("cert")})

	// Create two keys together, only if the first does not exist yet.
	_, err := b.AtomicWrite(ctx, []backend.ConditionalAction{
		{Key: []byte("/ca/host"), Condition: backend.Condition{Kind: backend.NotExists}, Action: backend.ActionPut, Item: backend.Item{Value: []byte("other")}},
		{Key: []byte("/ca/user"), Condition: backend.Condition{Kind: backend.NotExists}, Action: backend.ActionPut, Item: backend.Item{Value: []byte("other")}},
	})
	var ce *backend.ConditionError
	if errors.As(err, &ce) {
		fmt.Printf("condition %v failed on action %d (%s)\n", ce.Kind, ce.Index, ce.Key)
	}
	_, err = b.Get(ctx, []byte("/ca/user"))
	fmt.Println("nothing written:", errors.Is(err, backend.ErrNotFound))
	// Output:
	// condition not-exists failed on action 0 (/ca/host)
	// nothing written: true
}

func ExampleBackend_NewWatcher() {
	ctx := context.Background()
	b, _ := backend.Open(ctx, "memory://")
	defer b.Close()

	w, err := b.NewWatcher(ctx, backend.Watch{Prefixes: [][]byte{[]byte("/nodes/")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	ev := <-w.Events()
	fmt.Println(ev.Type) // always first: now read the state, then follow events

	b.Put(ctx, backend.Item{Key: []byte("/nodes/n1"), Value: []byte("up")})
	b.Put(ctx, backend.Item{Key: []byte("/users/alice")}) // not under /nodes/
	b.Delete(ctx, []byte("/nodes/n1"))
	for i := 0; i < 2; i++ {
		ev := <-w.Events()
		fmt.Println(ev.Type, string(ev.Item.Key), string(ev.Item.Value), ev.Item.Revision)
	}

	b.Close()
	<-w.Done()
	fmt.Println(w.Err())
	// Output:
	// init
	// put /nodes/n1 up 1
	// delete /nodes/n1  3
	// backend: closed
}

func ExampleBackend_KeepAlive() {
	ctx := context.Background()
	b, _ := backend.Open(ctx, "memory://")
	defer b.Close()
	key := []byte("/presence/proxy-1")
	b.Put(ctx, backend.Item{Key: key, Value: []byte("10.0.0.1"), Expires: time.Now().Add(50 * time.Millisecond)})

	// A heartbeat moves the expiry forward without rewriting the value.
	b.KeepAlive(ctx, key, time.Now().Add(time.Hour))
	time.Sleep(100 * time.Millisecond)
	it, err := b.Get(ctx, key)
	fmt.Println(string(it.Value), err)

	// Without heartbeats the item disappears when it expires.
	b.KeepAlive(ctx, key, time.Now().Add(10*time.Millisecond))
	time.Sleep(20 * time.Millisecond)
	_, err = b.Get(ctx, key)
	fmt.Println(errors.Is(err, backend.ErrNotFound))
	// Output:
	// 10.0.0.1 <nil>
	// true
}

func ExampleFanout() {
	// A driver publishes each committed change; Fanout filters and queues.
	var f backend.Fanout
	defer f.Close()
	w, _ := f.NewWatcher(context.Background(), backend.Watch{Prefixes: [][]byte{[]byte("/a/")}, QueueSize: 2})
	fmt.Println((<-w.Events()).Type)

	f.Publish(
		backend.Event{Type: backend.OpPut, Item: backend.Item{Key: []byte("/a/1"), Revision: 1}},
		backend.Event{Type: backend.OpPut, Item: backend.Item{Key: []byte("/b/1"), Revision: 2}},
	)
	fmt.Println(string((<-w.Events()).Item.Key))

	// The reader stops reading: the third queued event overflows its queue
	// of two, and the watcher stops instead of blocking the publisher.
	for rev := int64(3); rev <= 5; rev++ {
		f.Publish(backend.Event{Type: backend.OpPut, Item: backend.Item{Key: []byte("/a/x"), Revision: rev}})
	}
	<-w.Done()
	fmt.Println(w.Err())
	// Output:
	// init
	// /a/1
	// backend: watcher fell behind: queue of 2 events is full
}

func ExampleRangeEnd() {
	fmt.Printf("%q\n", backend.RangeEnd([]byte("/users/")))
	fmt.Printf("%q\n", backend.RangeEnd([]byte{'a', 0xff}))
	fmt.Println(backend.RangeEnd([]byte{0xff}) == nil)
	// Output:
	// "/users0"
	// "b"
	// true
}
