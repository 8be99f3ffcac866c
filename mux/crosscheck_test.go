package mux

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"testing"

	proxyproto "github.com/pires/go-proxyproto"
)

// TestProxyHeaderCrossCheck checks the parser and encoder against an
// independent implementation (github.com/pires/go-proxyproto), both ways.
func TestProxyHeaderCrossCheck(t *testing.T) {
	v6src := netip.MustParseAddrPort("[2001:db8::7]:40001")
	v6dst := netip.MustParseAddrPort("[2001:db8::1]:443")
	tests := []struct {
		name     string
		version  int
		src, dst netip.AddrPort
		tlvs     []TLV
	}{
		{"v1 ipv4", 1, clientAddr, frontAddr, nil},
		{"v1 ipv6", 1, v6src, v6dst, nil},
		{"v2 ipv4", 2, clientAddr, frontAddr, nil},
		{"v2 ipv6", 2, v6src, v6dst, nil},
		{"v2 ipv4 with TLVs", 2, clientAddr, frontAddr, []TLV{{Type: TLVTypeALPN, Value: []byte("h2")}, {Type: TLVTypeAuthority, Value: []byte("example.com")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Theirs -> ours.
			ref := proxyproto.HeaderProxyFromAddrs(byte(tc.version), net.TCPAddrFromAddrPort(tc.src), net.TCPAddrFromAddrPort(tc.dst))
			if len(tc.tlvs) > 0 {
				var refTLVs []proxyproto.TLV
				for _, tlv := range tc.tlvs {
					refTLVs = append(refTLVs, proxyproto.TLV{Type: proxyproto.PP2Type(tlv.Type), Value: tlv.Value})
				}
				if err := ref.SetTLVs(refTLVs); err != nil {
					t.Fatal(err)
				}
			}
			wire, err := ref.Format()
			if err != nil {
				t.Fatal(err)
			}
			got, n, err := ParseProxyHeader(wire)
			if err != nil || n != len(wire) {
				t.Fatalf("ParseProxyHeader(%q) = %v, %d", wire, err, n)
			}
			if got.Version != tc.version || got.Command != ProxyProxy || got.Source != tc.src || got.Destination != tc.dst {
				t.Fatalf("parsed %+v", got)
			}
			if len(got.TLVs) != len(tc.tlvs) {
				t.Fatalf("TLVs %+v, want %+v", got.TLVs, tc.tlvs)
			}
			for i := range tc.tlvs {
				if got.TLVs[i].Type != tc.tlvs[i].Type || !bytes.Equal(got.TLVs[i].Value, tc.tlvs[i].Value) {
					t.Fatalf("TLV %d = %+v, want %+v", i, got.TLVs[i], tc.tlvs[i])
				}
			}

			// Ours -> theirs.
			ours := mustHeader(t, &ProxyHeader{Version: tc.version, Command: ProxyProxy, Source: tc.src, Destination: tc.dst, TLVs: tc.tlvs})
			if !bytes.Equal(ours, wire) {
				t.Errorf("encodings differ:\n ours   %q\n theirs %q", ours, wire)
			}
			back, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(ours)))
			if err != nil {
				t.Fatalf("go-proxyproto rejects our header %q: %v", ours, err)
			}
			s, d, ok := back.TCPAddrs()
			if !ok || s.AddrPort() != tc.src || d.AddrPort() != tc.dst {
				t.Fatalf("go-proxyproto read %v %v from our header", s, d)
			}
		})
	}
	t.Run("v2 LOCAL", func(t *testing.T) {
		ours := mustHeader(t, &ProxyHeader{Version: 2, Command: ProxyLocal})
		back, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(ours)))
		if err != nil || back.Command != proxyproto.LOCAL {
			t.Fatalf("go-proxyproto read %+v, %v", back, err)
		}
	})
}
