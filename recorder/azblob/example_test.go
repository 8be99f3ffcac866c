package azblob_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/azblob"
)

// Opening a store by URI: the driver registers the "azblob" scheme. The
// account key comes from AZURE_STORAGE_KEY, never from the URI.
func Example_uri() {
	ctx := context.Background()
	_, err := recorder.OpenStore(ctx, "azblob://recordings?account=mystorage&block_size=huge")
	fmt.Println(err)
	_, err = recorder.OpenStore(ctx, "azblob://mystorage:key@recordings")
	fmt.Println(err)
	// Output:
	// azblob: bad block_size "huge" (want a positive byte count such as 8M)
	// azblob: credentials in the URI are not accepted; use AZURE_STORAGE_KEY
}

// Building a store from a ready container client (here with a shared key;
// an azidentity credential works the same with container.NewClient) and
// recording one object.
func ExampleOpen() {
	ctx := context.Background()
	cred, err := container.NewSharedKeyCredential("mystorage", "bXlrZXk=")
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := container.NewClientWithSharedKeyCredential("https://mystorage.blob.core.windows.net/recordings", cred, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	store, err := azblob.Open(ctx, &azblob.Config{Client: client, Prefix: "cluster-a/"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	if err := store.Put(ctx, "2026/11/21/session.cast.gz", strings.NewReader("..."), 3); err != nil {
		fmt.Println(err)
	}
}
