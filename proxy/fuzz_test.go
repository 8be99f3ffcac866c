package proxy_test

import (
	"encoding/json"
	"testing"

	"github.com/sallyport/sallyport/proxy"
)

func FuzzParseLoginRequest(f *testing.F) {
	for _, s := range []string{
		`{"user":"alice","password":"x"}`,
		`{"user":"alice","password":"x","totp":"123456","ttl":"8h"}`,
		`{"user":"","password":"x"}`,
		`{"user":"a","ttl":-5}`,
		`{"user":"a","ttl":"bogus"}`,
		`{"user":"a","ssh_public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me"}`,
		`{"user":"a","ssh_public_key":"ssh-dss AAAA"}`,
		`{"user":"a","tls_public_key":"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA4yqqeRXOubRJ0bpQ6iorixpuAfkL2iRaLR2HaX0YomU=\n-----END PUBLIC KEY-----\n"}`,
		`{"user":"a","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}`,
		`[]`, `null`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := proxy.ParseLoginRequest(b)
		if err != nil {
			return
		}
		if req.User == "" || req.TTL < 0 {
			t.Fatalf("accepted %q as %+v", b, req)
		}
		// What was accepted survives a round trip.
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := proxy.ParseLoginRequest(again); err != nil {
			t.Fatalf("re-encoded %s refused: %v", again, err)
		}
	})
}

func FuzzParsePing(f *testing.F) {
	f.Add([]byte(`{"auth":{"type":"local","second_factor":"otp"},"proxy":{"kube":{"enabled":false},"ssh":{"listen_addr":"0.0.0.0:3023","tunnel_listen_addr":"0.0.0.0:3024","web_listen_addr":"0.0.0.0:3080","public_addr":"p:3080"},"db":{},"tls_routing_enabled":false},"server_version":"0.1.0","cluster_name":"c","dial_timeout":"10s"}`))
	f.Add([]byte(`{"cluster_name":""}`))
	f.Add([]byte(`{"cluster_name":"c","dial_timeout":12}`))
	f.Add([]byte(`"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := proxy.ParsePing(b)
		if err != nil {
			return
		}
		if p.ClusterName == "" {
			t.Fatalf("accepted %q without cluster_name", b)
		}
	})
}
