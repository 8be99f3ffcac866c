package proxyconnect

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
)

// SOCKS5 (RFC 1928) with username/password authentication (RFC 1929).
const (
	socksVersion      = 5
	socksNoAuth       = 0x00
	socksUserPass     = 0x02
	socksNoAcceptable = 0xff
	socksConnect      = 0x01
	socksIPv4         = 0x01
	socksDomain       = 0x03
	socksIPv6         = 0x04
)

var socksReplies = [...]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

// resolve turns a "name:port" target into "ip:port" with the system
// resolver, preferring IPv4. IP targets are returned unchanged.
func resolve(ctx context.Context, target string) (string, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "", err
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return target, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return "", err
	}
	if len(ips) == 0 {
		return "", &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	best := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip
			break
		}
	}
	return net.JoinHostPort(best.Unmap().String(), port), nil
}

// socks5 runs the SOCKS5 greeting, authentication and CONNECT on conn.
// Every read has an exact, small length, so no tunnel byte is read. On a
// definite refusal by the proxy it fills in pe (Status, Kind) and returns
// it; other errors are returned for the caller to classify.
func (d *Dialer) socks5(conn net.Conn, proxy *url.URL, target string, pe *ProxyError) error {
	pe.Op = "socks5"
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return fmt.Errorf("bad target port %q", portStr)
	}

	// Greeting.
	greet := []byte{socksVersion, 1, socksNoAuth}
	if proxy.User != nil {
		greet = []byte{socksVersion, 2, socksNoAuth, socksUserPass}
	}
	if _, err := conn.Write(greet); err != nil {
		return err
	}
	var b [4]byte
	if _, err := io.ReadFull(conn, b[:2]); err != nil {
		return err
	}
	if b[0] != socksVersion {
		return fmt.Errorf("not a SOCKS5 server (version byte %#x)", b[0])
	}
	switch b[1] {
	case socksNoAuth:
	case socksUserPass:
		if proxy.User == nil {
			return errors.New("server chose username/password authentication, which was not offered")
		}
		user := proxy.User.Username()
		pass, _ := proxy.User.Password()
		if len(user) > 255 || len(pass) > 255 {
			pe.Kind, pe.Status = ErrInvalidConfig, "user name or password longer than 255 bytes"
			return pe
		}
		auth := make([]byte, 0, 3+len(user)+len(pass))
		auth = append(auth, 1, byte(len(user)))
		auth = append(auth, user...)
		auth = append(auth, byte(len(pass)))
		auth = append(auth, pass...)
		if _, err := conn.Write(auth); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, b[:2]); err != nil {
			return err
		}
		if b[0] != 1 {
			return fmt.Errorf("bad authentication reply version %#x", b[0])
		}
		if b[1] != 0 {
			pe.Kind, pe.Status = ErrProxyAuth, fmt.Sprintf("SOCKS5 username/password rejected (status %d)", b[1])
			return pe
		}
	case socksNoAcceptable:
		pe.Kind, pe.Status = ErrProxyAuth, "SOCKS5 server accepts none of the offered authentication methods"
		if proxy.User == nil {
			pe.Err = errors.New("no credentials in the proxy URL")
		}
		return pe
	default:
		return fmt.Errorf("server chose authentication method %#x, which was not offered", b[1])
	}

	// CONNECT request.
	req := make([]byte, 0, 6+1+len(host)+2)
	req = append(req, socksVersion, socksConnect, 0)
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if ip.Is4() {
			req = append(req, socksIPv4)
		} else {
			req = append(req, socksIPv6)
		}
		req = append(req, ip.AsSlice()...)
	} else {
		if len(host) > 255 {
			pe.Kind, pe.Status = ErrInvalidConfig, "target host name longer than 255 bytes"
			return pe
		}
		req = append(req, socksDomain, byte(len(host)))
		req = append(req, host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := conn.Write(req); err != nil {
		return err
	}

	// Reply: VER REP RSV ATYP BND.ADDR BND.PORT.
	if _, err := io.ReadFull(conn, b[:4]); err != nil {
		return err
	}
	if b[0] != socksVersion {
		return fmt.Errorf("bad reply version %#x", b[0])
	}
	if rep := b[1]; rep != 0 {
		text := "unknown error"
		if int(rep) < len(socksReplies) && socksReplies[rep] != "" {
			text = socksReplies[rep]
		}
		pe.Kind, pe.Status = ErrProxyRefused, fmt.Sprintf("SOCKS5 reply %d (%s)", rep, text)
		return pe
	}
	var skip int
	switch b[3] {
	case socksIPv4:
		skip = 4 + 2
	case socksIPv6:
		skip = 16 + 2
	case socksDomain:
		if _, err := io.ReadFull(conn, b[:1]); err != nil {
			return err
		}
		skip = int(b[0]) + 2
	default:
		return fmt.Errorf("bad address type %#x in reply", b[3])
	}
	var bnd [255 + 2]byte
	if _, err := io.ReadFull(conn, bnd[:skip]); err != nil {
		return err
	}
	return nil
}
