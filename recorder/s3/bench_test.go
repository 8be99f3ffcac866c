package s3

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/recordertest"
)

// BenchmarkUpload uploads the same bytes to MinIO through the driver
// (recorder.Store.Put: create-only, multipart from 16 MiB) and through
// the raw SDK with the same client: "raw" is one plain PutObject, "rawcond"
// one PutObject with If-None-Match: * (the server-side cost of
// create-only, without the driver). Each iteration uploads once each way,
// in alternating order, so that load on the machine hits all alike; the
// metrics are the throughput of each way and the ratio driver/raw.
// bench/recorder-upload.sh runs it several times and prints medians.
func BenchmarkUpload(b *testing.B) {
	srv := testservice.StartMinIO(b)
	srv.SetEnv(b)
	ctx := context.Background()
	st, err := recorder.OpenStore(ctx, "s3://"+recordertest.UniqueName("bench")+"?endpoint="+srv.Endpoint+"&path_style=true&region=us-east-1")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := st.(*Store)
	n := 0
	key := func(way, label string) string {
		n++
		return fmt.Sprintf("%s/%s/%d", way, label, n)
	}
	for _, size := range []int{256 << 10, 4 << 20, 64 << 20} {
		data := recordertest.RandomData(size, uint64(size))
		label := fmt.Sprintf("%dKiB", size>>10)
		b.Run(label, func(b *testing.B) {
			ways := []struct {
				name string
				put  func() error
				took time.Duration
			}{
				{name: "driver", put: func() error {
					return s.Put(ctx, key("driver", label), bytes.NewReader(data), int64(size))
				}},
				{name: "raw", put: func() error {
					_, err := s.Client().PutObject(ctx, &awss3.PutObjectInput{
						Bucket: aws.String(s.Bucket()), Key: aws.String(key("raw", label)),
						Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(size)),
					})
					return err
				}},
				{name: "rawcond", put: func() error {
					_, err := s.Client().PutObject(ctx, &awss3.PutObjectInput{
						Bucket: aws.String(s.Bucket()), Key: aws.String(key("rawcond", label)),
						Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(size)),
						IfNoneMatch: aws.String("*"),
					})
					return err
				}},
			}
			b.SetBytes(int64(size) * int64(len(ways)))
			i := 0
			for b.Loop() {
				for j := range ways {
					w := &ways[(i+j)%len(ways)]
					start := time.Now()
					if err := w.put(); err != nil {
						b.Fatalf("%s: %v", w.name, err)
					}
					w.took += time.Since(start)
				}
				i++
			}
			mbps := func(d time.Duration) float64 { return float64(size) * float64(i) / d.Seconds() / 1e6 }
			for _, w := range ways {
				b.ReportMetric(mbps(w.took), w.name+"-MB/s")
			}
			b.ReportMetric(mbps(ways[0].took)/mbps(ways[1].took), "ratio")
		})
	}
}
