package config_test

import (
	"errors"
	"flag"
	"fmt"

	"github.com/sallyport/sallyport/config"
)

func Example() {
	file := []byte(`version: v3
sallyport:
  nodename: proxy-1
  join_params:
    token_name: s3cret
  auth_server: auth.internal:3025
  ca_pin: sha256:2f3a7c1e4b5d6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f
proxy_service:
  public_addr: proxy.example.com:443
`)
	cfg, err := config.Parse("proxy.yaml", file)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("proxy enabled:", cfg.Proxy.Enabled, "auth enabled:", cfg.Auth.Enabled)
	fmt.Println("web:", cfg.Proxy.WebListenAddr, "mode:", cfg.Proxy.ListenerMode)
	fmt.Println("joins through:", cfg.AuthAddrs())
	fmt.Println("token:", cfg.Common.JoinParams.TokenName)
	// Output:
	// proxy enabled: true auth enabled: false
	// web: 0.0.0.0:3080 mode: multiplex
	// joins through: [auth.internal:3025]
	// token: [redacted]
}

func ExampleParse_error() {
	file := []byte(`version: v3
auth_service:
  enabled: yes
proxy_service:
  enabled: yes
  proxy_listener_mode: multipex
`)
	_, err := config.Parse("sallyport.yaml", file)
	fmt.Println(err)
	var e *config.Error
	if errors.As(err, &e) {
		fmt.Println(e.Line, e.Path, errors.Is(err, config.ErrInvalid))
	}
	// Output:
	// sallyport.yaml:6: proxy_service.proxy_listener_mode: "multipex" is not one of multiplex, separate
	// 6 proxy_service.proxy_listener_mode true
}

func ExampleLoad() {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	over := config.BindFlags(fs)
	// A file would normally be given with -config or SALLYPORT_CONFIG.
	if err := fs.Parse([]string{"-nodename", "node-7", "-data-dir", "/srv/sallyport"}); err != nil {
		fmt.Println(err)
		return
	}
	cfg, err := config.Load("", over)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Common.NodeName, cfg.Common.Storage.URI)
	// Output:
	// node-7 sqlite:///srv/sallyport/state.db
}
