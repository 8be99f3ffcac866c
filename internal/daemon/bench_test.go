package daemon

import (
	"crypto/tls"
	"io"
	"testing"
)

// BenchmarkGetCertificate measures the per-handshake cost of serving a
// reloadable keypair (one atomic load) against a fixed tls.Config
// certificate lookup.
func BenchmarkGetCertificate(b *testing.B) {
	dir := b.TempDir()
	kp, err := LoadKeyPairs([]KeyPairFiles{writeKeyPair(b, dir, "bench.example")})
	if err != nil {
		b.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "bench.example"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kp.GetCertificate(hello); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteMetrics(b *testing.B) {
	d := NewDiag(DiagConfig{Metrics: []Metric{{Name: "sallyport_x", Value: func() float64 { return 1 }}}})
	b.ReportAllocs()
	for b.Loop() {
		d.WriteMetrics(io.Discard)
	}
}
