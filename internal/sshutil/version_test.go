package sshutil

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func testSigner(t testing.TB) ssh.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handshake runs PreferGCM and ssh.NewServerConn on one end of a loopback
// TCP connection and an x/crypto client offering clientCiphers on the
// other, echoes one channel's data, and returns the ciphers the server
// offered.
func handshake(t *testing.T, clientCiphers []string) []string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hostKey := testSigner(t)
	type result struct {
		offered []string
		err     error
	}
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		cfg := &ssh.ServerConfig{NoClientAuth: true, ServerVersion: "SSH-2.0-test", Config: ssh.Config{Ciphers: Ciphers}}
		cfg.AddHostKey(hostKey)
		deadline := time.Now().Add(10 * time.Second)
		c.SetDeadline(deadline)
		vc, err := PreferGCM(c, cfg, deadline)
		if err != nil {
			done <- result{err: err}
			return
		}
		sc, chans, reqs, err := ssh.NewServerConn(vc, cfg)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer sc.Close()
		go ssh.DiscardRequests(reqs)
		nc := <-chans
		ch, creqs, err := nc.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		go ssh.DiscardRequests(creqs)
		io.Copy(ch, ch)
		ch.Close()
		done <- result{offered: cfg.Ciphers}
	}()
	client, err := ssh.Dial("tcp", l.Addr().String(), &ssh.ClientConfig{
		User:            "u",
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Config:          ssh.Config{Ciphers: clientCiphers},
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("client handshake offering %v: %v", clientCiphers, err)
	}
	defer client.Close()
	ch, reqs, err := client.OpenChannel("echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	if _, err := ch.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	ch.CloseWrite()
	got, err := io.ReadAll(ch)
	if err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("server: %v", r.err)
	}
	return r.offered
}

func TestPreferGCM(t *testing.T) {
	for _, tt := range []struct {
		client, want []string
	}{
		// OpenSSH's order: CTR first, GCM after.
		{[]string{ssh.CipherAES128CTR, ssh.CipherAES256CTR, ssh.CipherAES128GCM, ssh.CipherAES256GCM}, []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM}},
		{[]string{ssh.CipherAES128CTR, ssh.CipherAES256GCM}, []string{ssh.CipherAES256GCM}},
		// Without GCM the whole list stays.
		{[]string{ssh.CipherAES256CTR}, Ciphers},
		{[]string{ssh.CipherChaCha20Poly1305, ssh.CipherAES192CTR}, Ciphers},
	} {
		if got := handshake(t, tt.client); !slices.Equal(got, tt.want) {
			t.Errorf("client offering %v: server offered %v, want %v", tt.client, got, tt.want)
		}
	}
}

// TestPreferGCMClientWaits: a client that sends its identification line
// and then waits for the server's KEXINIT gets the whole list after
// kexInitWait, and everything it sent is replayed.
func TestPreferGCMClientWaits(t *testing.T) {
	defer func(d time.Duration) { kexInitWait = d }(kexInitWait)
	kexInitWait = 100 * time.Millisecond
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	go func() {
		buf := make([]byte, 64)
		client.Read(buf) // the server's line
		client.Write([]byte("SSH-2.0-waiting\r\n"))
	}()
	cfg := &ssh.ServerConfig{ServerVersion: "SSH-2.0-test", Config: ssh.Config{Ciphers: Ciphers}}
	deadline := time.Now().Add(10 * time.Second)
	start := time.Now()
	vc, err := PreferGCM(server, cfg, deadline)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < kexInitWait {
		t.Fatalf("returned after %v, before the wait for KEXINIT ended", d)
	}
	if !slices.Equal(cfg.Ciphers, Ciphers) {
		t.Fatalf("offered %v, want the whole list", cfg.Ciphers)
	}
	got := make([]byte, 64)
	n, err := vc.Read(got)
	if err != nil || string(got[:n]) != "SSH-2.0-waiting\r\n" {
		t.Fatalf("replayed %q, %v", got[:n], err)
	}
	// x/crypto's identification line is dropped, a different one refused.
	if n, err := vc.Write([]byte("SSH-2.0-test\r\n")); err != nil || n != 14 {
		t.Fatalf("write of the identification line: %d, %v", n, err)
	}
	vc2, err := PreferGCM(nopConn{server}, &ssh.ServerConfig{ServerVersion: "SSH-2.0-x"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vc2.Write([]byte("SSH-2.0-y\r\n")); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("a different identification line: %v", err)
	}
	if _, err := PreferGCM(server, &ssh.ServerConfig{}, deadline); err == nil {
		t.Fatal("PreferGCM without ServerVersion: no error")
	}
}

// nopConn discards writes and reads nothing.
type nopConn struct{ net.Conn }

func (nopConn) Write(p []byte) (int, error)     { return len(p), nil }
func (nopConn) Read([]byte) (int, error)        { return 0, io.EOF }
func (nopConn) SetReadDeadline(time.Time) error { return nil }
func (nopConn) SetDeadline(time.Time) error     { return nil }

// kexInit builds a client's identification line and KEXINIT packet.
func kexInit(lists ...string) []byte {
	payload := []byte{msgKexInit}
	payload = append(payload, make([]byte, 16)...)
	for _, l := range lists {
		payload = binary.BigEndian.AppendUint32(payload, uint32(len(l)))
		payload = append(payload, l...)
	}
	payload = append(payload, 0, 0, 0, 0, 0) // first_kex_packet_follows, reserved
	pad := 4
	out := []byte("SSH-2.0-OpenSSH_9.2p1\r\n")
	out = binary.BigEndian.AppendUint32(out, uint32(1+len(payload)+pad))
	out = append(out, byte(pad))
	out = append(out, payload...)
	return append(out, make([]byte, pad)...)
}

func TestClientCiphers(t *testing.T) {
	pkt := kexInit("curve25519-sha256", "ssh-ed25519", "aes128-ctr,aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "", "", "", "", "", "")
	c2s, s2c, ok := clientCiphers(pkt)
	if !ok || !slices.Equal(c2s, []string{"aes128-ctr", "aes128-gcm@openssh.com"}) || !slices.Equal(s2c, []string{"aes256-gcm@openssh.com"}) {
		t.Fatalf("clientCiphers: %v %v %v", c2s, s2c, ok)
	}
	for cut := range len(pkt) {
		if _, _, ok := clientCiphers(pkt[:cut]); ok {
			t.Fatalf("a packet cut at %d of %d parsed", cut, len(pkt))
		}
	}
	if _, _, ok := clientCiphers(bytes.Replace(pkt, []byte{msgKexInit}, []byte{21}, 1)); ok {
		t.Fatal("a packet of another type parsed")
	}
}

// FuzzClientCiphers: the KEXINIT parser never panics, and what it returns
// comes from its input.
func FuzzClientCiphers(f *testing.F) {
	f.Add(kexInit("k", "h", "aes128-ctr,aes128-gcm@openssh.com", "aes128-gcm@openssh.com"))
	f.Add([]byte("SSH-2.0-x\r\n\x00\x00\x00\x05\x04\x14"))
	f.Add([]byte("SSH-2.0-x\r\n\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c2s, s2c, ok := clientCiphers(b)
		if !ok {
			return
		}
		for _, name := range append(c2s, s2c...) {
			if !bytes.Contains(b, []byte(name)) {
				t.Fatalf("name %q not in the input", name)
			}
		}
	})
}

func TestServerCiphers(t *testing.T) {
	if c, prefer := ServerCiphers(nil); !slices.Equal(c, Ciphers) || !prefer {
		t.Fatalf("default: %v, prefer %v", c, prefer)
	}
	set := []string{ssh.CipherAES256CTR}
	if c, prefer := ServerCiphers(set); !slices.Equal(c, set) || prefer {
		t.Fatalf("configured: %v, prefer %v", c, prefer)
	}
	for _, tt := range []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{Ciphers, ""},
		{[]string{ssh.CipherChaCha20Poly1305}, ""},
		{[]string{}, "empty"},
		{[]string{ssh.CipherAES128GCM, "rot13"}, `"rot13" is not a supported SSH cipher (supported: `},
	} {
		err := CheckCiphers(tt.names)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckCiphers(%q) = %v, want %q", tt.names, err, tt.want)
		}
	}
}
