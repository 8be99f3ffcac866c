package mux

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"strconv"
)

// PROXY protocol limits. A version 1 header is one line of at most
// MaxProxyV1Len bytes including its CRLF (the protocol's own limit). A
// version 2 header is the 16-byte fixed part followed by at most
// MaxProxyV2Payload bytes of addresses and TLVs; the protocol allows up to
// 65535, but no load balancer sends more than a few hundred, so larger ones
// are rejected as oversized instead of buffered.
const (
	MaxProxyV1Len     = 107
	MaxProxyV2Payload = 4096
)

// Errors from ReadProxyHeader and ParseProxyHeader. Errors for a header
// that was recognised but is not valid wrap ErrProxyHeaderMalformed.
var (
	// ErrNoProxyHeader means the stream does not start with a PROXY
	// protocol signature; nothing was consumed.
	ErrNoProxyHeader = errors.New("mux: no PROXY protocol header")
	// ErrProxyHeaderMalformed means a PROXY signature was found but the
	// header that follows is not valid.
	ErrProxyHeaderMalformed = errors.New("mux: malformed PROXY protocol header")
	// ErrProxyHeaderTooLong means the header is longer than MaxProxyV1Len
	// (version 1) or carries more than MaxProxyV2Payload bytes (version 2).
	ErrProxyHeaderTooLong = errors.New("mux: PROXY protocol header too long")
)

var errSmallReader = errors.New("mux: bufio.Reader buffer too small (need at least MaxProxyV1Len bytes)")

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// ProxyCommand is the command of a PROXY protocol header.
type ProxyCommand uint8

const (
	// ProxyLocal says the connection was made by the proxy itself (a
	// health check, for example): the header carries no client address and
	// the connection's own addresses stay in force. Version 1 "UNKNOWN"
	// headers are reported as ProxyLocal.
	ProxyLocal ProxyCommand = 0
	// ProxyProxy says the connection is relayed for the client named in
	// the header.
	ProxyProxy ProxyCommand = 1
)

func (c ProxyCommand) String() string {
	switch c {
	case ProxyLocal:
		return "LOCAL"
	case ProxyProxy:
		return "PROXY"
	}
	return "ProxyCommand(" + strconv.Itoa(int(c)) + ")"
}

// Version 2 TLV types defined by the PROXY protocol specification.
const (
	TLVTypeALPN      byte = 0x01
	TLVTypeAuthority byte = 0x02
	TLVTypeCRC32C    byte = 0x03
	TLVTypeNoop      byte = 0x04
	TLVTypeUniqueID  byte = 0x05
	TLVTypeSSL       byte = 0x20
	TLVTypeNetNS     byte = 0x30
)

// TLV is one type-length-value field of a version 2 header.
type TLV struct {
	Type  byte
	Value []byte
}

// ProxyHeader is a parsed PROXY protocol header (version 1 or 2).
//
// Source and Destination are set only for a ProxyProxy header whose
// address family is TCP over IPv4 or IPv6; for ProxyLocal, version 1
// "UNKNOWN", and version 2 UNSPEC or UNIX families they are the zero
// AddrPort and the connection's own addresses should be used.
type ProxyHeader struct {
	Version     int // 1 or 2
	Command     ProxyCommand
	Source      netip.AddrPort // the original client
	Destination netip.AddrPort // the address the client connected to
	// TLVs holds the version 2 type-length-value fields in wire order
	// (including any CRC32C field, which was checked while parsing).
	TLVs []TLV
}

// HasAddrs reports whether the header carries usable client and
// destination addresses.
func (h *ProxyHeader) HasAddrs() bool {
	return h.Command == ProxyProxy && h.Source.IsValid() && h.Destination.IsValid()
}

// TLV returns the value of the first TLV of type typ.
func (h *ProxyHeader) TLV(typ byte) ([]byte, bool) {
	for _, t := range h.TLVs {
		if t.Type == typ {
			return t.Value, true
		}
	}
	return nil, false
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProxyHeaderMalformed}, args...)...)
}

// ReadProxyHeader reads a PROXY protocol header (version 1 or 2) from the
// start of br and consumes exactly the header's bytes, so the bytes that
// follow are left in br for the next reader. It never reads beyond the
// header, so it works for protocols where the server speaks first.
//
// If the stream does not start with a PROXY signature it returns
// ErrNoProxyHeader and consumes nothing. A header that is recognised but
// invalid yields an error wrapping ErrProxyHeaderMalformed or
// ErrProxyHeaderTooLong. Read errors are returned as they are, with io.EOF
// turned into io.ErrUnexpectedEOF once part of a header has been seen (and
// io.EOF when the stream ended before its first byte). The buffer of br
// must hold at least MaxProxyV1Len bytes (bufio's default does). Bounded: at most
// MaxProxyV1Len or 16+MaxProxyV2Payload bytes are read; the caller sets a
// read deadline on the underlying connection.
func ReadProxyHeader(br *bufio.Reader) (*ProxyHeader, error) {
	if br.Size() < MaxProxyV1Len {
		return nil, errSmallReader
	}
	v, err := peekSignature(br)
	if err != nil {
		return nil, err
	}
	switch v {
	case 1:
		return readV1(br)
	case 2:
		return readV2(br)
	}
	return nil, ErrNoProxyHeader
}

// peekSignature reports 1 or 2 if br starts with a version 1 or 2
// signature, and 0 if it does not. It asks for another byte only while the
// bytes seen so far are a prefix of a signature.
func peekSignature(br *bufio.Reader) (int, error) {
	n := 1
	for {
		b, err := br.Peek(max(n, min(br.Buffered(), len(sigV2))))
		switch {
		case len(b) >= len(sigV1) && bytes.HasPrefix(b, sigV1):
			return 1, nil
		case len(b) >= len(sigV2) && bytes.HasPrefix(b, sigV2):
			return 2, nil
		case !bytes.HasPrefix(sigV1, b[:min(len(b), len(sigV1))]) && !bytes.HasPrefix(sigV2, b):
			return 0, nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				// The stream ended inside what could only be a signature.
				return 0, nil
			}
			return 0, err
		}
		n = len(b) + 1
	}
}

// readV1 reads the version 1 line without ever asking for a byte past its
// line feed.
func readV1(br *bufio.Reader) (*ProxyHeader, error) {
	n := len(sigV1)
	for {
		b, err := br.Peek(max(n, min(br.Buffered(), MaxProxyV1Len)))
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			h, perr := parseV1(b[:i+1])
			if perr != nil {
				return nil, perr
			}
			br.Discard(i + 1)
			return h, nil
		}
		if len(b) >= MaxProxyV1Len {
			return nil, fmt.Errorf("%w: version 1 line without CRLF in %d bytes", ErrProxyHeaderTooLong, MaxProxyV1Len)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		n = len(b) + 1
	}
}

// parseV1 parses one complete version 1 line, CRLF included.
func parseV1(line []byte) (*ProxyHeader, error) {
	if len(line) > MaxProxyV1Len {
		return nil, ErrProxyHeaderTooLong
	}
	if !bytes.HasPrefix(line, sigV1) {
		return nil, malformed("no version 1 signature")
	}
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return nil, malformed("version 1 line does not end in CRLF")
	}
	body := line[len(sigV1) : len(line)-2]
	if bytes.IndexByte(body, '\r') >= 0 || bytes.IndexByte(body, '\n') >= 0 {
		return nil, malformed("stray CR or LF in version 1 line")
	}
	f := bytes.Split(body, []byte(" "))
	switch string(f[0]) {
	case "UNKNOWN":
		// The rest of the line may hold anything and is ignored.
		return &ProxyHeader{Version: 1, Command: ProxyLocal}, nil
	case "TCP4", "TCP6":
	default:
		return nil, malformed("version 1 protocol %q", f[0])
	}
	if len(f) != 5 {
		return nil, malformed("version 1 line has %d fields, want 5", len(f)+1)
	}
	want4 := string(f[0]) == "TCP4"
	src, err := parseV1Addr(f[1], want4)
	if err != nil {
		return nil, err
	}
	dst, err := parseV1Addr(f[2], want4)
	if err != nil {
		return nil, err
	}
	sp, err := parseV1Port(f[3])
	if err != nil {
		return nil, err
	}
	dp, err := parseV1Port(f[4])
	if err != nil {
		return nil, err
	}
	return &ProxyHeader{
		Version:     1,
		Command:     ProxyProxy,
		Source:      netip.AddrPortFrom(src, sp),
		Destination: netip.AddrPortFrom(dst, dp),
	}, nil
}

func parseV1Addr(b []byte, want4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Zone() != "" || a.Is4() != want4 {
		return netip.Addr{}, malformed("version 1 address %q", b)
	}
	return a, nil
}

func parseV1Port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, malformed("version 1 port %q", b)
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, malformed("version 1 port %q", b)
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, malformed("version 1 port %q", b)
	}
	return uint16(n), nil
}

func readV2(br *bufio.Reader) (*ProxyHeader, error) {
	fixed, err := br.Peek(16)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	if n > MaxProxyV2Payload {
		return nil, fmt.Errorf("%w: version 2 payload of %d bytes (limit %d)", ErrProxyHeaderTooLong, n, MaxProxyV2Payload)
	}
	// Check the fixed part before waiting for the payload.
	if err := checkV2Fixed(fixed); err != nil {
		return nil, err
	}
	buf := make([]byte, 16+n)
	if _, err := io.ReadFull(br, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	h, _, err := parseV2(buf)
	return h, err
}

func checkV2Fixed(b []byte) error {
	if b[12]>>4 != 2 {
		return malformed("version 2 header with version nibble %d", b[12]>>4)
	}
	if cmd := b[12] & 0x0f; cmd > 1 {
		return malformed("version 2 command %d", cmd)
	}
	if fam, tr := b[13]>>4, b[13]&0x0f; fam > 3 || tr > 2 {
		return malformed("version 2 family/transport 0x%02x", b[13])
	}
	return nil
}

// ParseProxyHeader parses a complete PROXY header (version 1 or 2) at the
// start of b and returns it with the number of bytes it took. It returns
// ErrNoProxyHeader if b does not start with a signature, and
// io.ErrUnexpectedEOF if b holds only part of a header.
func ParseProxyHeader(b []byte) (*ProxyHeader, int, error) {
	switch {
	case bytes.HasPrefix(b, sigV1):
		i := bytes.IndexByte(b[:min(len(b), MaxProxyV1Len)], '\n')
		if i < 0 {
			if len(b) >= MaxProxyV1Len {
				return nil, 0, ErrProxyHeaderTooLong
			}
			return nil, 0, io.ErrUnexpectedEOF
		}
		h, err := parseV1(b[:i+1])
		if err != nil {
			return nil, 0, err
		}
		return h, i + 1, nil
	case bytes.HasPrefix(b, sigV2):
		if len(b) < 16 {
			return nil, 0, io.ErrUnexpectedEOF
		}
		return parseV2(b)
	}
	if bytes.HasPrefix(sigV1, b) || bytes.HasPrefix(sigV2, b) {
		return nil, 0, io.ErrUnexpectedEOF
	}
	return nil, 0, ErrNoProxyHeader
}

// parseV2 parses a version 2 header at the start of b (len(b) >= 16).
func parseV2(b []byte) (*ProxyHeader, int, error) {
	n := int(binary.BigEndian.Uint16(b[14:16]))
	if n > MaxProxyV2Payload {
		return nil, 0, ErrProxyHeaderTooLong
	}
	if err := checkV2Fixed(b); err != nil {
		return nil, 0, err
	}
	if len(b) < 16+n {
		return nil, 0, io.ErrUnexpectedEOF
	}
	hdr := b[:16+n]
	p := hdr[16:]
	h := &ProxyHeader{Version: 2, Command: ProxyCommand(b[12] & 0x0f)}
	var alen int
	switch b[13] >> 4 {
	case 0: // AF_UNSPEC
	case 1: // AF_INET
		alen = 12
	case 2: // AF_INET6
		alen = 36
	case 3: // AF_UNIX
		alen = 216
	}
	if len(p) < alen {
		return nil, 0, malformed("version 2 address block of %d bytes, family needs %d", len(p), alen)
	}
	if h.Command == ProxyProxy {
		switch alen {
		case 12:
			h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[0:4])), binary.BigEndian.Uint16(p[8:10]))
			h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[4:8])), binary.BigEndian.Uint16(p[10:12]))
		case 36:
			h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[0:16])), binary.BigEndian.Uint16(p[32:34]))
			h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[16:32])), binary.BigEndian.Uint16(p[34:36]))
		}
	}
	tlvs := p[alen:]
	sawCRC := false
	for len(tlvs) > 0 {
		if len(tlvs) < 3 {
			return nil, 0, malformed("truncated version 2 TLV")
		}
		l := int(binary.BigEndian.Uint16(tlvs[1:3]))
		if len(tlvs) < 3+l {
			return nil, 0, malformed("version 2 TLV 0x%02x of %d bytes overruns the header", tlvs[0], l)
		}
		v := tlvs[3 : 3+l]
		if tlvs[0] == TLVTypeCRC32C {
			if l != 4 || sawCRC {
				return nil, 0, malformed("CRC32C TLV of %d bytes or repeated", l)
			}
			sawCRC = true
			if !checkCRC(hdr, len(hdr)-len(tlvs)+3) {
				return nil, 0, malformed("CRC32C mismatch")
			}
		}
		h.TLVs = append(h.TLVs, TLV{Type: tlvs[0], Value: bytes.Clone(v)})
		tlvs = tlvs[3+l:]
	}
	return h, len(hdr), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkCRC checks the CRC32C of hdr whose 4-byte checksum value starts at
// off: the checksum is computed over the whole header with that field
// zeroed.
func checkCRC(hdr []byte, off int) bool {
	want := binary.BigEndian.Uint32(hdr[off : off+4])
	c := crc32.Update(0, castagnoli, hdr[:off])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	c = crc32.Update(c, castagnoli, hdr[off+4:])
	return c == want
}

// AppendBinary appends the header's wire form to b (version 1 text or
// version 2 binary, by h.Version). A version 2 ProxyProxy header without
// addresses is written with the UNSPEC family; a version 1 header without
// addresses is written as "PROXY UNKNOWN". Source and Destination must
// both be IPv4 or both IPv6. A CRC32C TLV in h.TLVs has its value
// recomputed.
func (h *ProxyHeader) AppendBinary(b []byte) ([]byte, error) {
	hasAddrs := h.Source.IsValid() && h.Destination.IsValid()
	if hasAddrs && h.Source.Addr().Is4() != h.Destination.Addr().Is4() {
		return b, errors.New("mux: PROXY header source and destination are of different families")
	}
	if hasAddrs && (h.Source.Addr().Zone() != "" || h.Destination.Addr().Zone() != "") {
		return b, errors.New("mux: PROXY header address with a zone")
	}
	switch h.Version {
	case 1:
		if len(h.TLVs) > 0 {
			return b, errors.New("mux: PROXY version 1 header cannot carry TLVs")
		}
		if h.Command == ProxyLocal || !hasAddrs {
			return append(b, "PROXY UNKNOWN\r\n"...), nil
		}
		fam := "TCP6"
		if h.Source.Addr().Is4() {
			fam = "TCP4"
		}
		b = append(b, "PROXY "+fam+" "...)
		b = h.Source.Addr().AppendTo(b)
		b = append(b, ' ')
		b = h.Destination.Addr().AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(h.Source.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(h.Destination.Port()), 10)
		return append(b, "\r\n"...), nil
	case 2:
	default:
		return b, fmt.Errorf("mux: PROXY header version %d", h.Version)
	}
	if h.Command > ProxyProxy {
		return b, fmt.Errorf("mux: PROXY header command %d", h.Command)
	}
	start := len(b)
	b = append(b, sigV2...)
	b = append(b, 0x20|byte(h.Command))
	var addrs []byte
	switch {
	case !hasAddrs:
		b = append(b, 0x00)
	case h.Source.Addr().Is4():
		b = append(b, 0x11)
		s, d := h.Source.Addr().As4(), h.Destination.Addr().As4()
		addrs = append(append(addrs, s[:]...), d[:]...)
	default:
		b = append(b, 0x21)
		s, d := h.Source.Addr().As16(), h.Destination.Addr().As16()
		addrs = append(append(addrs, s[:]...), d[:]...)
	}
	if hasAddrs {
		addrs = binary.BigEndian.AppendUint16(addrs, h.Source.Port())
		addrs = binary.BigEndian.AppendUint16(addrs, h.Destination.Port())
	}
	n := len(addrs)
	for _, t := range h.TLVs {
		n += 3 + len(t.Value)
	}
	if n > MaxProxyV2Payload {
		return b[:start], ErrProxyHeaderTooLong
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, addrs...)
	crcOff := -1
	for _, t := range h.TLVs {
		if t.Type == TLVTypeCRC32C {
			if len(t.Value) != 4 {
				return b[:start], errors.New("mux: PROXY CRC32C TLV must be 4 bytes")
			}
			if crcOff >= 0 {
				return b[:start], errors.New("mux: PROXY header with more than one CRC32C TLV")
			}
			crcOff = len(b) + 3
		}
		b = append(b, t.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.Value)))
		b = append(b, t.Value...)
	}
	if crcOff >= 0 {
		hdr := b[start:]
		off := crcOff - start
		clear(hdr[off : off+4])
		binary.BigEndian.PutUint32(hdr[off:], crc32.Checksum(hdr, castagnoli))
	}
	return b, nil
}
