package memory_test

import (
	"context"
	"fmt"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/memory"
)

func ExampleNew() {
	ctx := context.Background()
	b, err := memory.New(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	for _, k := range []string{"b", "a", "c"} {
		b.Put(ctx, backend.Item{Key: backend.Key("nodes", k), Value: []byte("up")})
	}
	n, _ := b.DeleteRange(ctx, []byte("/nodes/a"), []byte("/nodes/c"))
	res, _ := b.GetRange(ctx, []byte("/nodes/"), backend.RangeEnd([]byte("/nodes/")), 0)
	fmt.Println("deleted", n)
	for _, it := range res.Items {
		fmt.Println(string(it.Key), it.Revision)
	}
	// Output:
	// deleted 2
	// /nodes/c 3
}
