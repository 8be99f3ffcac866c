package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/sqlite"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlite-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state.db")

	b, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		fmt.Println(err)
		return
	}
	rev, _ := b.Put(ctx, backend.Item{Key: []byte("/cluster/name"), Value: []byte("example")})
	fmt.Println("written at revision", rev)
	b.Close()

	// The state and the revision counter persist in the file.
	b2, err := backend.Open(ctx, "sqlite://"+path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b2.Close()
	it, _ := b2.Get(ctx, []byte("/cluster/name"))
	fmt.Printf("%s = %s at revision %d\n", it.Key, it.Value, it.Revision)
	rev, _ = b2.Put(ctx, backend.Item{Key: []byte("/cluster/name"), Value: []byte("renamed")})
	fmt.Println("next revision", rev)
	// Output:
	// written at revision 1
	// /cluster/name = example at revision 1
	// next revision 2
}
