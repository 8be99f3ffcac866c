package tunnel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// ProtocolVersion is the version of the control protocol and of the stream
// header. Both ends send it in every control frame and stream header; a
// frame with another version is a protocol error.
const ProtocolVersion = 1

// MaxMessageSize bounds the payload of one control message. A larger frame
// is refused with an error wrapping ErrProtocol.
const MaxMessageSize = 64 << 10

// Limits of the stream header.
const (
	// MaxServiceName is the longest service name, in bytes.
	MaxServiceName = 255
	// maxHeaderField bounds the other header fields (network, address,
	// refusal reason).
	maxHeaderField = 255
)

// msgType is the type byte of a control frame.
type msgType uint8

const (
	msgAgentHello msgType = 1 + iota // agent → proxy, first message
	msgProxyHello                    // proxy → agent, answer to msgAgentHello
	msgAccept                        // agent → proxy: the tunnel is kept
	msgHeartbeat                     // both ways
	msgServices                      // agent → proxy: the services offered now
	msgPeers                         // proxy → agent: the proxies of the pool now
	msgDrain                         // proxy → agent: finish streams, reconnect elsewhere
	msgMax
)

func (t msgType) String() string {
	switch t {
	case msgAgentHello:
		return "agent-hello"
	case msgProxyHello:
		return "proxy-hello"
	case msgAccept:
		return "accept"
	case msgHeartbeat:
		return "heartbeat"
	case msgServices:
		return "services"
	case msgPeers:
		return "peers"
	case msgDrain:
		return "drain"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Peer is a proxy of the pool, as a proxy announces it to its agents.
type Peer struct {
	// ID identifies the proxy; agents hold one tunnel per ID.
	ID string `json:"id"`
	// Addr is where agents dial to reach the proxy (its own address, or
	// the load balancer in front of the pool). Empty means the address the
	// agent dialed to learn about it.
	Addr string `json:"addr,omitempty"`
}

// message is the payload of every control frame; each type uses some of
// the fields.
type message struct {
	Type msgType `json:"-"`
	// AgentHello, Services.
	Services []string `json:"services,omitempty"`
	// AgentHello, ProxyHello: heartbeat interval of the sender, in
	// milliseconds (informational).
	HeartbeatMillis int64 `json:"heartbeat_ms,omitempty"`
	// AgentHello: software version of the agent (informational).
	Version string `json:"version,omitempty"`
	// ProxyHello.
	ProxyID string `json:"proxy_id,omitempty"`
	// ProxyHello, Peers.
	Peers []Peer `json:"peers,omitempty"`
}

// frameHeaderSize is version (1), type (1), payload length (4).
const frameHeaderSize = 6

// appendMessage appends the frame of m to b.
func appendMessage(b []byte, m *message) ([]byte, error) {
	payload, err := json.Marshal(m)
	if err != nil {
		return b, err
	}
	if len(payload) > MaxMessageSize {
		return b, fmt.Errorf("%w: %s message of %d bytes exceeds %d", ErrProtocol, m.Type, len(payload), MaxMessageSize)
	}
	b = append(b, ProtocolVersion, byte(m.Type))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...), nil
}

// readMessage reads one control frame from r. It reads at most
// frameHeaderSize+MaxMessageSize bytes; malformed input yields an error
// wrapping ErrProtocol.
func readMessage(r io.Reader) (*message, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != ProtocolVersion {
		return nil, fmt.Errorf("%w: control protocol version %d, want %d", ErrProtocol, hdr[0], ProtocolVersion)
	}
	t := msgType(hdr[1])
	if t == 0 || t >= msgMax {
		return nil, fmt.Errorf("%w: unknown control message type %d", ErrProtocol, hdr[1])
	}
	n := binary.BigEndian.Uint32(hdr[2:])
	if n > MaxMessageSize {
		return nil, fmt.Errorf("%w: %s message of %d bytes exceeds %d", ErrProtocol, t, n, MaxMessageSize)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	m := &message{Type: t}
	if n > 0 {
		if err := json.Unmarshal(payload, m); err != nil {
			return nil, fmt.Errorf("%w: %s message: %v", ErrProtocol, t, err)
		}
	}
	if len(m.Services) == 0 {
		m.Services = nil
	}
	if len(m.Peers) == 0 {
		m.Peers = nil
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// validate checks the bounds of a decoded message.
func (m *message) validate() error {
	for _, s := range m.Services {
		if err := validServiceName(s); err != nil {
			return fmt.Errorf("%w: %s message: %v", ErrProtocol, m.Type, err)
		}
	}
	for _, p := range m.Peers {
		if p.ID == "" || len(p.ID) > maxHeaderField || len(p.Addr) > maxHeaderField {
			return fmt.Errorf("%w: %s message: invalid peer %q", ErrProtocol, m.Type, p.ID)
		}
	}
	if len(m.ProxyID) > maxHeaderField {
		return fmt.Errorf("%w: proxy ID too long", ErrProtocol)
	}
	if m.Type == msgProxyHello && m.ProxyID == "" {
		return fmt.Errorf("%w: proxy hello without proxy ID", ErrProtocol)
	}
	return nil
}

func validServiceName(s string) error {
	if s == "" || len(s) > MaxServiceName {
		return fmt.Errorf("service name %q: length must be 1..%d bytes", s, MaxServiceName)
	}
	return nil
}

// Stream header: the first bytes of every stream the proxy opens.
//
//	version u8 | len u8 | service | len u8 | network | len u8 | address
//
// The agent answers with a status:
//
//	code u8 | len u8 | reason

// Status codes of the agent's answer to a stream header.
const (
	statusOK        byte = 0
	statusNoService byte = 1
	statusRefused   byte = 2
)

type streamHeader struct {
	Service string
	Network string // of the original client address; may be empty
	Addr    string // original client address; may be empty
}

func appendStreamHeader(b []byte, h streamHeader) ([]byte, error) {
	if err := validServiceName(h.Service); err != nil {
		return b, err
	}
	if len(h.Network) > maxHeaderField || len(h.Addr) > maxHeaderField {
		return b, fmt.Errorf("%w: client address too long", ErrProtocol)
	}
	b = append(b, ProtocolVersion)
	for _, f := range []string{h.Service, h.Network, h.Addr} {
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// readStreamHeader reads a stream header from r (at most 4+3*255 bytes).
func readStreamHeader(r io.Reader) (streamHeader, error) {
	var h streamHeader
	var v [1]byte
	if _, err := io.ReadFull(r, v[:]); err != nil {
		return h, err
	}
	if v[0] != ProtocolVersion {
		return h, fmt.Errorf("%w: stream header version %d, want %d", ErrProtocol, v[0], ProtocolVersion)
	}
	var buf [maxHeaderField]byte
	fields := [3]*string{&h.Service, &h.Network, &h.Addr}
	for _, f := range fields {
		s, err := readShortString(r, buf[:])
		if err != nil {
			return h, err
		}
		*f = s
	}
	if err := validServiceName(h.Service); err != nil {
		return h, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return h, nil
}

func appendStatus(b []byte, code byte, reason string) []byte {
	if len(reason) > maxHeaderField {
		reason = reason[:maxHeaderField]
	}
	b = append(b, code, byte(len(reason)))
	return append(b, reason...)
}

func readStatus(r io.Reader) (code byte, reason string, err error) {
	var c [1]byte
	if _, err := io.ReadFull(r, c[:]); err != nil {
		return 0, "", err
	}
	if c[0] > statusRefused {
		return 0, "", fmt.Errorf("%w: unknown stream status %d", ErrProtocol, c[0])
	}
	var buf [maxHeaderField]byte
	reason, err = readShortString(r, buf[:])
	return c[0], reason, err
}

func readShortString(r io.Reader, buf []byte) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", unexpected(err)
	}
	if _, err := io.ReadFull(r, buf[:n[0]]); err != nil {
		return "", unexpected(err)
	}
	return string(buf[:n[0]]), nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
