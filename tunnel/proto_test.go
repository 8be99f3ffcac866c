package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		msg  message
	}{
		{"agent hello", message{Type: msgAgentHello, Services: []string{"ssh", "db"}, HeartbeatMillis: 30000, Version: "1.0"}},
		{"proxy hello", message{Type: msgProxyHello, ProxyID: "p1", Peers: []Peer{{ID: "p1", Addr: "lb:443"}, {ID: "p2"}}}},
		{"accept", message{Type: msgAccept}},
		{"heartbeat", message{Type: msgHeartbeat}},
		{"services", message{Type: msgServices, Services: []string{"web"}}},
		{"peers", message{Type: msgPeers, Peers: []Peer{{ID: "p3", Addr: "10.0.0.3:3024"}}}},
		{"drain", message{Type: msgDrain}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := appendMessage(nil, &tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readMessage(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.msg) {
				t.Fatalf("got %+v, want %+v", *got, tt.msg)
			}
		})
	}
}

func TestMessageErrors(t *testing.T) {
	frame := func(version, typ byte, payload string) []byte {
		b := []byte{version, typ}
		b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
		return append(b, payload...)
	}
	huge := []byte{ProtocolVersion, byte(msgServices)}
	huge = binary.BigEndian.AppendUint32(huge, MaxMessageSize+1)
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty", nil, io.EOF},
		{"short header", []byte{1, 2}, io.ErrUnexpectedEOF},
		{"bad version", frame(9, byte(msgHeartbeat), ""), ErrProtocol},
		{"unknown type", frame(1, 99, ""), ErrProtocol},
		{"zero type", frame(1, 0, ""), ErrProtocol},
		{"too large", huge, ErrProtocol},
		{"cut payload", frame(1, byte(msgServices), `{"services":["a"]}`)[:10], io.ErrUnexpectedEOF},
		{"bad json", frame(1, byte(msgServices), `{"services":`), ErrProtocol},
		{"empty service", frame(1, byte(msgServices), `{"services":[""]}`), ErrProtocol},
		{"long service", frame(1, byte(msgServices), `{"services":["`+strings.Repeat("x", 300)+`"]}`), ErrProtocol},
		{"peer without id", frame(1, byte(msgPeers), `{"peers":[{"addr":"x:1"}]}`), ErrProtocol},
		{"proxy hello without id", frame(1, byte(msgProxyHello), `{}`), ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readMessage(bytes.NewReader(tt.input))
			if !errors.Is(err, tt.want) {
				t.Fatalf("readMessage = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStreamHeader(t *testing.T) {
	tests := []struct {
		name string
		h    streamHeader
	}{
		{"with client", streamHeader{Service: "ssh", Network: "tcp", Addr: "203.0.113.9:5555"}},
		{"without client", streamHeader{Service: "db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := appendStreamHeader(nil, tt.h)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readStreamHeader(bytes.NewReader(b))
			if err != nil || got != tt.h {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
	if _, err := appendStreamHeader(nil, streamHeader{Service: strings.Repeat("s", 256)}); err == nil {
		t.Error("a 256-byte service name was accepted")
	}
	for _, bad := range [][]byte{{2, 1, 'a', 0, 0}, {1, 0, 0, 0}, {1, 5, 'a'}} {
		if _, err := readStreamHeader(bytes.NewReader(bad)); err == nil {
			t.Errorf("header %q accepted", bad)
		}
	}
	st := appendStatus(nil, statusRefused, "stream limit reached")
	code, reason, err := readStatus(bytes.NewReader(st))
	if err != nil || code != statusRefused || reason != "stream limit reached" {
		t.Errorf("status %d %q %v", code, reason, err)
	}
	if _, _, err := readStatus(bytes.NewReader([]byte{7, 0})); !errors.Is(err, ErrProtocol) {
		t.Errorf("unknown status: %v", err)
	}
}

// FuzzReadMessage: the decoder never panics, never reads past its bound,
// and what it accepts encodes back to an equivalent message.
func FuzzReadMessage(f *testing.F) {
	for _, m := range []message{
		{Type: msgAgentHello, Services: []string{"ssh"}, HeartbeatMillis: 1000},
		{Type: msgProxyHello, ProxyID: "p", Peers: []Peer{{ID: "p", Addr: "a:1"}}},
		{Type: msgDrain},
	} {
		b, _ := appendMessage(nil, &m)
		f.Add(b)
	}
	f.Add([]byte{1, 4, 0, 0, 0, 0})
	f.Add([]byte{1, 5, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		m, err := readMessage(r)
		if read := len(data) - r.Len(); read > frameHeaderSize+MaxMessageSize {
			t.Fatalf("read %d bytes", read)
		}
		if err != nil {
			return
		}
		b, err := appendMessage(nil, m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := readMessage(bytes.NewReader(b))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v != %+v (%v)", m, m2, err)
		}
	})
}

// FuzzReadStreamHeader: no panic, bounded reads, and a round trip.
func FuzzReadStreamHeader(f *testing.F) {
	b, _ := appendStreamHeader(nil, streamHeader{Service: "ssh", Network: "tcp", Addr: "1.2.3.4:5"})
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := readStreamHeader(r)
		if read := len(data) - r.Len(); read > 4+3*maxHeaderField {
			t.Fatalf("read %d bytes", read)
		}
		if err != nil {
			return
		}
		b, err := appendStreamHeader(nil, h)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		h2, err := readStreamHeader(bytes.NewReader(b))
		if err != nil || h != h2 {
			t.Fatalf("round trip %+v != %+v (%v)", h, h2, err)
		}
	})
}

func TestMessageEmptyLists(t *testing.T) {
	m, err := readMessage(bytes.NewReader(append([]byte{1, byte(msgServices), 0, 0, 0, 15}, `{"services":[]}`...)))
	if err != nil || m.Services != nil {
		t.Fatalf("got %+v, %v", m, err)
	}
}
