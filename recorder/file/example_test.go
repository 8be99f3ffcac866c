package file_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/file"
)

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "file-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	// The same as recorder.OpenStore(ctx, "file://"+dir+"/recordings").
	s, err := file.Open(filepath.Join(dir, "recordings"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	data := "recording bytes"
	fmt.Println(s.Put(ctx, "2026/11/21/a.cast.gz", strings.NewReader(data), int64(len(data))))
	err = s.Put(ctx, "2026/11/21/a.cast.gz", strings.NewReader("other"), 5)
	fmt.Println(errors.Is(err, recorder.ErrExists))
	rc, _ := s.Get(ctx, "2026/11/21/a.cast.gz")
	b, _ := io.ReadAll(rc)
	rc.Close()
	fmt.Println(string(b))
	objs, _ := s.List(ctx, "2026/")
	fmt.Println(objs[0].Name, objs[0].Size)
	// Output:
	// <nil>
	// true
	// recording bytes
	// 2026/11/21/a.cast.gz 15
}
