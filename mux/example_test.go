package mux_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/sallyport/sallyport/mux"
)

// Serve HTTP and reject everything else on one port.
func Example() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	m, err := mux.New(l, nil)
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", r.Proto)
	})}
	go srv.Serve(m.Listener(mux.HTTP))
	serveDone := make(chan error, 1)
	go func() { serveDone <- m.Serve() }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + m.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	// A protocol the mux does not know is closed.
	c, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		panic(err)
	}
	c.Write([]byte("HELO example.com\r\n"))
	rest, _ := io.ReadAll(c)
	c.Close()
	fmt.Printf("unknown protocol got %d bytes\n", len(rest))

	srv.Close()
	m.Close()
	fmt.Println(<-serveDone)
	s := m.Stats()
	fmt.Println("http:", s.Accepted[mux.HTTP], "unknown:", s.Unknown)
	// Output:
	// hello over HTTP/1.1
	// unknown protocol got 0 bytes
	// mux: closed
	// http: 1 unknown: 1
}

// Read a PROXY protocol header in front of a stream, as a load balancer
// sends it, and leave the rest of the stream to its reader.
func ExampleReadProxyHeader() {
	h := &mux.ProxyHeader{
		Version:     2,
		Command:     mux.ProxyProxy,
		Source:      netip.MustParseAddrPort("203.0.113.7:51000"),
		Destination: netip.MustParseAddrPort("198.51.100.1:443"),
		TLVs:        []mux.TLV{{Type: mux.TLVTypeAuthority, Value: []byte("example.com")}},
	}
	wire, err := h.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	stream := io.MultiReader(bytes.NewReader(wire), bytes.NewReader([]byte("SSH-2.0-client\r\n")))

	br := bufio.NewReader(stream)
	got, err := mux.ReadProxyHeader(br)
	if err != nil {
		panic(err)
	}
	authority, _ := got.TLV(mux.TLVTypeAuthority)
	fmt.Println(got.Version, got.Command, got.Source, got.Destination, string(authority))
	p, err := mux.Detect(br)
	fmt.Println(p, err)
	// Output:
	// 2 PROXY 203.0.113.7:51000 198.51.100.1:443 example.com
	// ssh <nil>
}

// Tell protocols apart without consuming their bytes.
func ExampleDetect() {
	for _, first := range []string{"GET / HTTP/1.1\r\n", "SSH-2.0-OpenSSH_9.2\r\n", "\x16\x03\x01\x00\xa5", "\x00\x00\x00\x08\x04\xd2\x16\x2f", "HELO\r\n"} {
		p, _ := mux.Detect(bufio.NewReader(bytes.NewReader([]byte(first))))
		fmt.Println(p)
	}
	// Output:
	// http
	// ssh
	// tls
	// postgres
	// unknown
}

// Accept PROXY headers without a Mux: read the header, then hand on a
// Conn that replays what was read past it and reports the client's
// address.
func ExampleNewConn() {
	server, client := net.Pipe()
	defer server.Close()
	go func() {
		h := &mux.ProxyHeader{Version: 1, Command: mux.ProxyProxy,
			Source:      netip.MustParseAddrPort("203.0.113.7:51000"),
			Destination: netip.MustParseAddrPort("198.51.100.1:80")}
		msg, _ := h.AppendBinary(nil)
		client.Write(append(msg, "GET / HTTP/1.0\r\n\r\n"...))
		client.Close()
	}()

	br := bufio.NewReader(server)
	h, err := mux.ReadProxyHeader(br)
	if err != nil {
		panic(err)
	}
	rest, _ := br.Peek(br.Buffered())
	c := mux.NewConn(server, bytes.Clone(rest), h)
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Println(c.RemoteAddr(), c.LocalAddr())
	fmt.Printf("%q\n", line)
	// Output:
	// 203.0.113.7:51000 198.51.100.1:80
	// "GET / HTTP/1.0\r\n"
}
