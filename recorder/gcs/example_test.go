package gcs_test

import (
	"context"
	"fmt"
	"strings"

	"cloud.google.com/go/storage"

	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/gcs"
)

// Opening a store by URI: the driver registers the "gs" scheme.
func Example_uri() {
	ctx := context.Background()
	_, err := recorder.OpenStore(ctx, "gs://recordings?chunk_size=big")
	fmt.Println(err)
	_, err = recorder.OpenStore(ctx, "gs://recordings?region=eu")
	fmt.Println(err)
	// Output:
	// gcs: bad chunk_size "big" (want a positive byte count such as 8M)
	// gcs: unknown URI parameter "region"
}

// Building a store from a ready client and recording one object.
func ExampleOpen() {
	ctx := context.Background()
	client, err := storage.NewClient(ctx) // Application Default Credentials
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	store, err := gcs.Open(ctx, &gcs.Config{Client: client, Bucket: "recordings", ProjectID: "my-project"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	if err := store.Put(ctx, "2026/11/21/session.cast.gz", strings.NewReader("..."), 3); err != nil {
		fmt.Println(err)
	}
}
