package recorder_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/file"
)

// A session recorded into a spool, uploaded to a file store and played
// back.
func ExampleSpool() {
	dir, _ := os.MkdirTemp("", "recorder-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := file.Open(filepath.Join(dir, "store"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	spool, err := recorder.Open(ctx, &recorder.Config{Dir: filepath.Join(dir, "spool"), Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	rec, err := spool.NewSession(ctx, recorder.Meta{
		ID: "example", User: "alice", Login: "root", Node: "db-1",
		Start: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// A session tees its PTY output into the recording.
	io.Copy(io.MultiWriter(io.Discard, rec), strings.NewReader("$ echo hi\nhi\n"))
	rec.Resize(120, 40)
	rec.Close()
	if err := spool.Shutdown(ctx); err != nil { // waits for the upload
		fmt.Println(err)
		return
	}

	objs, _ := store.List(ctx, "")
	for _, o := range objs {
		fmt.Println(o.Name)
	}
	obj, _ := store.Get(ctx, objs[0].Name)
	defer obj.Close()
	err = recorder.Play(ctx, os.Stdout, obj, &recorder.PlayOptions{
		Speed:    math.Inf(1),
		OnResize: func(w, h int) { fmt.Printf("[resized to %dx%d]\n", w, h) },
	})
	fmt.Println(err, spool.Stats().Uploaded)
	// Output:
	// 2026/11/21/example.cast.gz
	// $ echo hi
	// hi
	// [resized to 120x40]
	// <nil> 1
}

// The asciicast v2 format, written and read back.
func ExampleWriter() {
	var b strings.Builder
	w, _ := recorder.NewWriter(&b, recorder.Header{Width: 80, Height: 24, Title: "demo"})
	w.WriteEvent(recorder.Event{Time: 250 * time.Millisecond, Type: recorder.EventOutput, Data: "\x1b[1mbold\x1b[0m é\r\n"})
	w.WriteEvent(recorder.Event{Time: time.Second, Type: recorder.EventResize, Data: "100x30"})
	w.WriteEvent(recorder.Event{Time: 2 * time.Second, Type: recorder.EventOutput, Data: "bad byte: \xff"})
	fmt.Print(b.String())

	rd, _ := recorder.NewReader(strings.NewReader(b.String()))
	for {
		e, err := rd.Next()
		if err != nil {
			break
		}
		fmt.Printf("%v %s %q\n", e.Time, e.Type, e.Data)
	}
	// Output:
	// {"version":2,"width":80,"height":24,"title":"demo"}
	// [0.250000, "o", "\u001b[1mbold\u001b[0m é\r\n"]
	// [1.000000, "r", "100x30"]
	// [2.000000, "o", "bad byte: �"]
	// 250ms o "\x1b[1mbold\x1b[0m é\r\n"
	// 1s r "100x30"
	// 2s o "bad byte: �"
}

// Serving recordings to a web player.
func ExampleHandler() {
	dir, _ := os.MkdirTemp("", "recorder-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, _ := file.Open(dir)
	defer store.Close()
	// Stored recordings are gzip-compressed asciicast.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	w, _ := recorder.NewWriter(zw, recorder.Header{Width: 80, Height: 24})
	w.WriteEvent(recorder.Event{Type: "o", Data: "hello"})
	zw.Close()
	store.Put(ctx, "2026/11/21/s.cast.gz", &gz, int64(gz.Len()))

	srv := httptest.NewServer(http.StripPrefix("/recordings", recorder.Handler(store)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/recordings/2026/11/21/s.cast")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Print(string(body))
	// Output:
	// 200 application/x-asciicast
	// {"version":2,"width":80,"height":24}
	// [0.000000, "o", "hello"]
}
