package s3_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/s3"
)

// Opening a store by URI: the driver registers the "s3" scheme. Credentials
// come from the environment (AWS_ACCESS_KEY_ID, ...), never from the URI.
func Example_uri() {
	ctx := context.Background()
	_, err := recorder.OpenStore(ctx, "s3://recordings?endpoint=http://127.0.0.1:9000&path_style=yes")
	fmt.Println(err)
	_, err = recorder.OpenStore(ctx, "s3://AKIAEXAMPLE:secret@recordings")
	fmt.Println(err)
	// Output:
	// s3: bad path_style "yes" (want true or false)
	// s3: credentials in the URI are not accepted; use the environment or shared config
}

// Building a store from a ready client, with server-side encryption and a
// key prefix, and recording one object.
func ExampleOpen() {
	ctx := context.Background()
	client := awss3.New(awss3.Options{Region: "eu-west-1"}) // or awss3.NewFromConfig(cfg)
	store, err := s3.Open(ctx, &s3.Config{
		Client: client,
		Bucket: "recordings",
		Prefix: "cluster-a/",
		SSE:    "aws:kms",
		Logger: slog.Default(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	err = store.Put(ctx, "2026/11/21/session.cast.gz", strings.NewReader("..."), 3)
	if err != nil {
		fmt.Println(err)
	}
}
