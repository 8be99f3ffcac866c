package mux

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func v2Raw(cmdVer, famTr byte, payload ...byte) []byte {
	b := append([]byte(nil), sigV2...)
	b = append(b, cmdVer, famTr)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...)
}

var (
	v4Payload = []byte{192, 0, 2, 1, 198, 51, 100, 2, 0x1f, 0x90, 0x01, 0xbb}
	v6Payload = append(append(netip.MustParseAddr("2001:db8::1").AsSlice(), netip.MustParseAddr("2001:db8::2").AsSlice()...), 0x1f, 0x90, 0x01, 0xbb)
)

var proxyCases = []struct {
	name string
	in   []byte
	want *ProxyHeader // nil when an error is expected
	err  error
}{
	{"v1 TCP4", []byte("PROXY TCP4 192.0.2.1 198.51.100.2 8080 443\r\n"),
		&ProxyHeader{Version: 1, Command: ProxyProxy, Source: netip.MustParseAddrPort("192.0.2.1:8080"), Destination: netip.MustParseAddrPort("198.51.100.2:443")}, nil},
	{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 8080 443\r\n"),
		&ProxyHeader{Version: 1, Command: ProxyProxy, Source: netip.MustParseAddrPort("[2001:db8::1]:8080"), Destination: netip.MustParseAddrPort("[2001:db8::2]:443")}, nil},
	{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), &ProxyHeader{Version: 1, Command: ProxyLocal}, nil},
	{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), &ProxyHeader{Version: 1, Command: ProxyLocal}, nil},
	{"v1 port 0 and 65535", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n"),
		&ProxyHeader{Version: 1, Command: ProxyProxy, Source: netip.MustParseAddrPort("1.2.3.4:0"), Destination: netip.MustParseAddrPort("5.6.7.8:65535")}, nil},
	{"v1 longest line", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
		&ProxyHeader{Version: 1, Command: ProxyProxy, Source: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Destination: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")}, nil},
	{"v1 LF only", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), nil, ErrProxyHeaderMalformed},
	{"v1 port too big", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"), nil, ErrProxyHeaderMalformed},
	{"v1 port leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), nil, ErrProxyHeaderMalformed},
	{"v1 port sign", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), nil, ErrProxyHeaderMalformed},
	{"v1 two spaces", []byte("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), nil, ErrProxyHeaderMalformed},
	{"v1 missing field", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), nil, ErrProxyHeaderMalformed},
	{"v1 v6 in TCP4", []byte("PROXY TCP4 ::1 ::2 1 2\r\n"), nil, ErrProxyHeaderMalformed},
	{"v1 v4 in TCP6", []byte("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), nil, ErrProxyHeaderMalformed},
	{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n"), nil, ErrProxyHeaderMalformed},
	{"v1 UDP4", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), nil, ErrProxyHeaderMalformed},
	{"v1 too long", []byte("PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\n"), nil, ErrProxyHeaderTooLong},
	{"v1 truncated", []byte("PROXY TCP4 1.2.3.4"), nil, io.ErrUnexpectedEOF},
	{"v2 TCP4", v2Raw(0x21, 0x11, v4Payload...),
		&ProxyHeader{Version: 2, Command: ProxyProxy, Source: netip.MustParseAddrPort("192.0.2.1:8080"), Destination: netip.MustParseAddrPort("198.51.100.2:443")}, nil},
	{"v2 TCP6", v2Raw(0x21, 0x21, v6Payload...),
		&ProxyHeader{Version: 2, Command: ProxyProxy, Source: netip.MustParseAddrPort("[2001:db8::1]:8080"), Destination: netip.MustParseAddrPort("[2001:db8::2]:443")}, nil},
	{"v2 LOCAL", v2Raw(0x20, 0x00), &ProxyHeader{Version: 2, Command: ProxyLocal}, nil},
	{"v2 LOCAL with addresses ignored", v2Raw(0x20, 0x11, v4Payload...), &ProxyHeader{Version: 2, Command: ProxyLocal}, nil},
	{"v2 UNSPEC", v2Raw(0x21, 0x00), &ProxyHeader{Version: 2, Command: ProxyProxy}, nil},
	{"v2 UNIX", v2Raw(0x21, 0x31, make([]byte, 216)...), &ProxyHeader{Version: 2, Command: ProxyProxy}, nil},
	{"v2 TLVs", v2Raw(0x21, 0x11, append(bytes.Clone(v4Payload), 0x01, 0, 2, 'h', '2', 0x04, 0, 0)...),
		&ProxyHeader{Version: 2, Command: ProxyProxy, Source: netip.MustParseAddrPort("192.0.2.1:8080"), Destination: netip.MustParseAddrPort("198.51.100.2:443"),
			TLVs: []TLV{{Type: TLVTypeALPN, Value: []byte("h2")}, {Type: TLVTypeNoop, Value: []byte{}}}}, nil},
	{"v2 bad CRC", v2Raw(0x21, 0x11, append(bytes.Clone(v4Payload), 0x03, 0, 4, 1, 2, 3, 4)...), nil, ErrProxyHeaderMalformed},
	{"v2 TLV overrun", v2Raw(0x21, 0x11, append(bytes.Clone(v4Payload), 0x01, 0, 9, 'h')...), nil, ErrProxyHeaderMalformed},
	{"v2 TLV truncated", v2Raw(0x21, 0x11, append(bytes.Clone(v4Payload), 0x01, 0)...), nil, ErrProxyHeaderMalformed},
	{"v2 short address block", v2Raw(0x21, 0x21, v4Payload...), nil, ErrProxyHeaderMalformed},
	{"v2 version 1 nibble", v2Raw(0x11, 0x11, v4Payload...), nil, ErrProxyHeaderMalformed},
	{"v2 command 2", v2Raw(0x22, 0x11, v4Payload...), nil, ErrProxyHeaderMalformed},
	{"v2 family 4", v2Raw(0x21, 0x41, v4Payload...), nil, ErrProxyHeaderMalformed},
	{"v2 oversized", append(append([]byte(nil), sigV2...), 0x21, 0x11, 0x10, 0x01), nil, ErrProxyHeaderTooLong},
	{"v2 truncated", v2Raw(0x21, 0x11, v4Payload...)[:20], nil, io.ErrUnexpectedEOF},
	{"no header", []byte("GET / HTTP/1.1\r\n"), nil, ErrNoProxyHeader},
	{"PUT is not PROXY", []byte("PUT / HTTP/1.1\r\n"), nil, ErrNoProxyHeader},
	{"CRLF is not v2", []byte("\r\n\r\nhello"), nil, ErrNoProxyHeader},
}

func TestReadProxyHeader(t *testing.T) {
	const after = "SSH-2.0-after\r\n"
	for _, tc := range proxyCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				in := append(bytes.Clone(tc.in), after...)
				if errors.Is(tc.err, io.ErrUnexpectedEOF) {
					in = bytes.Clone(tc.in)
				}
				var r io.Reader = bytes.NewReader(in)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				br := bufio.NewReader(r)
				h, err := ReadProxyHeader(br)
				if !errors.Is(err, tc.err) {
					t.Fatalf("ReadProxyHeader error = %v, want %v", err, tc.err)
				}
				if tc.want == nil {
					if h != nil {
						t.Fatalf("got header %+v with error %v", h, err)
					}
					if errors.Is(err, ErrNoProxyHeader) {
						rest, _ := io.ReadAll(br)
						if !bytes.Equal(rest, in) {
							t.Fatalf("consumed bytes without a header: left %q", rest)
						}
					}
					continue
				}
				if !reflect.DeepEqual(h, tc.want) {
					t.Fatalf("header = %+v, want %+v", h, tc.want)
				}
				rest, _ := io.ReadAll(br)
				if string(rest) != after {
					t.Fatalf("left %q after the header, want %q", rest, after)
				}
			}
			// ParseProxyHeader agrees on complete input.
			h, n, err := ParseProxyHeader(tc.in)
			if !errors.Is(err, tc.err) || !reflect.DeepEqual(h, tc.want) {
				t.Fatalf("ParseProxyHeader = %+v, %v; want %+v, %v", h, err, tc.want, tc.err)
			}
			if err == nil && n != len(tc.in) {
				t.Fatalf("ParseProxyHeader took %d bytes of %d", n, len(tc.in))
			}
		})
	}
}

func TestReadProxyHeaderStopsAtHeader(t *testing.T) {
	// A server-speaks-first protocol after the header: the reader must
	// not wait for more bytes than the header's.
	for _, hdr := range [][]byte{
		[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
		v2Raw(0x21, 0x11, v4Payload...),
	} {
		r := io.MultiReader(bytes.NewReader(hdr), blockingReader{})
		if _, err := ReadProxyHeader(bufio.NewReader(iotest.OneByteReader(r))); err != nil {
			t.Errorf("ReadProxyHeader: %v", err)
		}
	}
}

func TestProxyCRC32C(t *testing.T) {
	h := &ProxyHeader{Version: 2, Command: ProxyProxy, Source: clientAddr, Destination: frontAddr,
		TLVs: []TLV{{Type: TLVTypeAuthority, Value: []byte("example.com")}, {Type: TLVTypeCRC32C, Value: make([]byte, 4)}}}
	b := mustHeader(t, h)
	got, n, err := ParseProxyHeader(b)
	if err != nil || n != len(b) {
		t.Fatalf("ParseProxyHeader = %v, %d", err, n)
	}
	crc, _ := got.TLV(TLVTypeCRC32C)
	if bytes.Equal(crc, make([]byte, 4)) {
		t.Fatal("CRC32C was not computed")
	}
	if v, _ := got.TLV(TLVTypeAuthority); string(v) != "example.com" {
		t.Fatalf("authority = %q", v)
	}
	b[len(b)-10] ^= 1 // flip a bit in the authority
	if _, _, err := ParseProxyHeader(b); !errors.Is(err, ErrProxyHeaderMalformed) {
		t.Fatalf("corrupted header parsed: %v", err)
	}
}

func TestAppendBinaryErrors(t *testing.T) {
	v6 := netip.MustParseAddrPort("[2001:db8::1]:1")
	tests := []struct {
		name string
		h    ProxyHeader
	}{
		{"version 3", ProxyHeader{Version: 3}},
		{"mixed families", ProxyHeader{Version: 2, Command: ProxyProxy, Source: clientAddr, Destination: v6}},
		{"v1 with TLVs", ProxyHeader{Version: 1, Command: ProxyProxy, Source: clientAddr, Destination: frontAddr, TLVs: []TLV{{Type: 1}}}},
		{"too long", ProxyHeader{Version: 2, TLVs: []TLV{{Type: 0xe0, Value: make([]byte, MaxProxyV2Payload)}}}},
		{"bad CRC length", ProxyHeader{Version: 2, TLVs: []TLV{{Type: TLVTypeCRC32C, Value: []byte{1}}}}},
		{"two CRCs", ProxyHeader{Version: 2, TLVs: []TLV{{Type: TLVTypeCRC32C, Value: make([]byte, 4)}, {Type: TLVTypeCRC32C, Value: make([]byte, 4)}}}},
		{"command 5", ProxyHeader{Version: 2, Command: 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.h.AppendBinary([]byte("keep"))
			if err == nil {
				t.Fatalf("AppendBinary = %q, want an error", b)
			}
			if string(b) != "keep" {
				t.Fatalf("AppendBinary changed b on error: %q", b)
			}
		})
	}
}

func addrPortFrom(raw []byte, port uint16, v4 bool) netip.AddrPort {
	var a16 [16]byte
	copy(a16[:], raw)
	if v4 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a16[:4])), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a16), port)
}

// FuzzProxyV1 encodes a version 1 header from fuzzed fields, parses it
// back and expects the same header.
func FuzzProxyV1(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, []byte{198, 51, 100, 2}, uint16(8080), uint16(443), true, true)
	f.Add([]byte("0123456789abcdef"), []byte("fedcba9876543210"), uint16(0), uint16(65535), false, true)
	f.Add([]byte{}, []byte{}, uint16(1), uint16(2), true, false)
	f.Fuzz(func(t *testing.T, src, dst []byte, sp, dp uint16, v4, proxy bool) {
		h := &ProxyHeader{Version: 1, Command: ProxyLocal}
		if proxy {
			h.Command = ProxyProxy
			h.Source, h.Destination = addrPortFrom(src, sp, v4), addrPortFrom(dst, dp, v4)
		}
		roundTrip(t, h)
	})
}

// FuzzProxyV2 does the same for version 2 headers with TLVs.
func FuzzProxyV2(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, []byte{198, 51, 100, 2}, uint16(8080), uint16(443), true, byte(1), []byte("\x01\x00\x02h2"), false)
	f.Add([]byte("0123456789abcdef"), []byte("fedcba9876543210"), uint16(0), uint16(65535), false, byte(1), []byte{}, true)
	f.Add([]byte{}, []byte{}, uint16(1), uint16(2), true, byte(0), []byte("\x05\x00\x01x"), true)
	f.Fuzz(func(t *testing.T, src, dst []byte, sp, dp uint16, v4 bool, cmd byte, tlvs []byte, crc bool) {
		h := &ProxyHeader{Version: 2, Command: ProxyCommand(cmd % 2)}
		if h.Command == ProxyProxy {
			h.Source, h.Destination = addrPortFrom(src, sp, v4), addrPortFrom(dst, dp, v4)
		}
		// Cut tlvs into TLVs: a type byte, a length byte, the value.
		for len(tlvs) >= 2 {
			typ, n := tlvs[0], min(int(tlvs[1]), len(tlvs)-2)
			if typ == TLVTypeCRC32C {
				typ = TLVTypeNoop
			}
			h.TLVs = append(h.TLVs, TLV{Type: typ, Value: bytes.Clone(tlvs[2 : 2+n])})
			tlvs = tlvs[2+n:]
		}
		if crc {
			h.TLVs = append(h.TLVs, TLV{Type: TLVTypeCRC32C, Value: make([]byte, 4)})
		}
		roundTrip(t, h)
	})
}

func roundTrip(t *testing.T, h *ProxyHeader) {
	t.Helper()
	b, err := h.AppendBinary(nil)
	if errors.Is(err, ErrProxyHeaderTooLong) && h.Version == 2 {
		return // more TLVs than the limit allows
	}
	if err != nil {
		t.Fatalf("AppendBinary(%+v): %v", h, err)
	}
	if h.Version == 1 && len(b) > MaxProxyV1Len {
		t.Fatalf("version 1 header of %d bytes", len(b))
	}
	in := append(bytes.Clone(b), "rest"...)
	got, err := ReadProxyHeader(bufio.NewReader(iotest.OneByteReader(bytes.NewReader(in))))
	if err != nil {
		t.Fatalf("ReadProxyHeader(%q): %v", b, err)
	}
	// The CRC value is computed on encoding; compare everything else.
	for i, tlv := range got.TLVs {
		if tlv.Type == TLVTypeCRC32C {
			h.TLVs[i].Value = tlv.Value
		}
	}
	if !reflect.DeepEqual(normalize(got), normalize(h)) {
		t.Fatalf("round trip:\n got %+v\nwant %+v\nwire %q", got, h, b)
	}
}

func normalize(h *ProxyHeader) ProxyHeader {
	n := *h
	if len(n.TLVs) == 0 {
		n.TLVs = nil
	}
	for i := range n.TLVs {
		if len(n.TLVs[i].Value) == 0 {
			n.TLVs[i].Value = nil
		}
	}
	return n
}

// FuzzReadProxyHeader feeds arbitrary bytes: no panic, ReadProxyHeader and
// ParseProxyHeader agree, the bytes after a header are left unread, and a
// parsed header encodes and parses back to itself.
func FuzzReadProxyHeader(f *testing.F) {
	for _, tc := range proxyCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		h, err := ReadProxyHeader(br)
		ph, n, perr := ParseProxyHeader(in)
		if (err == nil) != (perr == nil) || !reflect.DeepEqual(h, ph) {
			t.Fatalf("ReadProxyHeader = %+v, %v; ParseProxyHeader = %+v, %v", h, err, ph, perr)
		}
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(br)
		if !bytes.Equal(rest, in[n:]) {
			t.Fatalf("left %q, want %q", rest, in[n:])
		}
		// Re-encode. Unsupported families come back as UNSPEC, so the
		// CRC (if any) changes: drop it before comparing.
		var keep []TLV
		for _, tlv := range h.TLVs {
			if tlv.Type != TLVTypeCRC32C {
				keep = append(keep, tlv)
			}
		}
		h.TLVs = keep
		b, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatalf("AppendBinary(%+v): %v", h, err)
		}
		h2, _, err := ParseProxyHeader(b)
		if err != nil || !reflect.DeepEqual(normalize(h2), normalize(h)) {
			t.Fatalf("re-encoded %+v as %q, parsed back %+v, %v", h, b, h2, err)
		}
	})
}
