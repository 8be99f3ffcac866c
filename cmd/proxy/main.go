package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sallyport/sallyport/authapi"
	"github.com/sallyport/sallyport/config"
	"github.com/sallyport/sallyport/internal/daemon"
	"github.com/sallyport/sallyport/mux"
	"github.com/sallyport/sallyport/proxy"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "proxy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	p, err := daemon.Start("proxy", args, stderr, "proxy_service", func(c *config.Config) bool { return c.Proxy.Enabled })
	if err != nil {
		return err
	}
	defer p.Close()
	cfg, opts, log := p.Config, p.Options, p.Log

	pc, kp, err := proxyConfig(cfg)
	if err != nil {
		return err
	}
	pc.Logger = log
	idPath := identityPath(cfg)
	jctx, cancel := context.WithTimeout(ctx, opts.JoinTimeout)
	defer cancel()
	joined, err := prepareIdentity(jctx, cfg, pc, idPath, log)
	if err != nil {
		return err
	}
	svc, err := proxy.New(jctx, pc)
	if err != nil {
		return fmt.Errorf("joining the cluster: %w", err)
	}
	if joined {
		if err := daemon.SaveIdentity(idPath, svc.Credentials()); err != nil {
			svc.Close()
			return err
		}
	}
	ls, err := listen(pc)
	if err != nil {
		svc.Close()
		return err
	}

	errc := make(chan error, 1)
	go func() { errc <- svc.Serve(ls) }()
	var diag *daemon.Diag
	if cfg.Common.DiagAddr != "" {
		diag, err = startDiag(cfg.Common.DiagAddr, svc, kp, log)
		if err != nil {
			svc.Close()
			<-errc
			return err
		}
		defer diag.Close()
	}
	log.Info("proxy service serving", "web", ls.Web.Addr().String(), "mode", pc.Mode.String(), "host_id", svc.HostID(), "cluster", svc.Credentials().Cluster)

	var reload func() error
	if kp != nil {
		reload = kp.Reload
	}
	sig, err := daemon.Wait(ctx, daemon.WaitConfig{Reload: reload, Errc: errc, Logger: log})
	if sig == nil {
		svc.Close()
		if errors.Is(err, proxy.ErrServerClosed) {
			return nil
		}
		return err
	}
	p.Drain(diag, "connections", svc.Shutdown)
	if err := <-errc; err != nil && !errors.Is(err, proxy.ErrServerClosed) {
		return err
	}
	log.Info("proxy service stopped")
	return nil
}

// identityPath is where the proxy keeps the host identity it joined with,
// so that a restart does not need a new token.
func identityPath(cfg *config.Config) string {
	return filepath.Join(cfg.Common.DataDir, "proxy", "identity.json")
}

// prepareIdentity fills pc.Credentials from an earlier run, or makes
// sure pc can join: with the file's token, or, when the same file runs
// the auth service, with a token made from the local admin identity. It
// reports whether New will join (and the identity should be saved).
func prepareIdentity(ctx context.Context, cfg *config.Config, pc *proxy.Config, idPath string, log *slog.Logger) (bool, error) {
	if c, err := daemon.LoadIdentity(idPath, pc.CAPin, time.Hour); err == nil {
		log.Info("using the saved host identity", "path", idPath, "host_id", c.Identity.Name)
		pc.Credentials = c
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Info("joining the cluster", "reason", err.Error())
	}
	if pc.JoinToken == "" && cfg.Auth.Enabled {
		tok, pin, err := daemon.LocalJoinToken(ctx, cfg.Common.DataDir, pc.AuthAddrs, authapi.RoleProxy)
		if err != nil {
			return false, err
		}
		pc.JoinToken = tok
		if pc.CAPin == "" {
			pc.CAPin = pin
		}
	}
	if pc.JoinToken == "" || pc.CAPin == "" {
		return false, errors.New("no saved identity and no join token with a CA pin: set sallyport.join_params.token_name and sallyport.ca_pin (or -token and -ca-pin)")
	}
	return true, nil
}

// proxyConfig turns the file's proxy_service section (and the common
// section) into a proxy.Config. It also returns the reloadable web
// keypairs when the file names any.
func proxyConfig(cfg *config.Config) (*proxy.Config, *daemon.KeyPairs, error) {
	p := cfg.Proxy
	pc := &proxy.Config{
		AuthAddrs:        cfg.AuthAddrs(),
		JoinToken:        cfg.Common.JoinParams.TokenName.Value(),
		NodeName:         cfg.Common.NodeName,
		WebListenAddr:    p.WebListenAddr,
		SSHListenAddr:    p.ListenAddr,
		TunnelListenAddr: p.TunnelListenAddr,
		PublicAddrs:      append([]string(nil), p.PublicAddrs...),
	}
	if len(cfg.Common.Ciphers) > 0 {
		pc.SSHCiphers = append([]string(nil), cfg.Common.Ciphers...)
	}
	if len(pc.AuthAddrs) == 0 {
		return nil, nil, errors.New("sallyport.auth_server: the proxy service calls the auth service directly; name its address (a proxy cannot join through another proxy)")
	}
	if len(cfg.Common.CAPins) > 0 {
		pc.CAPin = cfg.Common.CAPins[0]
	}
	switch p.ListenerMode {
	case "", "multiplex":
		pc.Mode = proxy.Multiplex
	case "separate":
		pc.Mode = proxy.Separate
	default:
		return nil, nil, fmt.Errorf("proxy_service.proxy_listener_mode: %q is not multiplex or separate", p.ListenerMode)
	}
	switch p.ProxyProtocol {
	case "on":
		pc.ProxyProtocol = mux.ProxyRequired
	case "off":
		pc.ProxyProtocol = mux.ProxyOff
	default:
		pc.ProxyProtocol = mux.ProxyAccept
	}
	for _, n := range p.ProxyProtocolTrustedNetworks {
		pfx, err := parsePrefix(n)
		if err != nil {
			return nil, nil, fmt.Errorf("proxy_service.proxy_protocol_trusted_networks: %w", err)
		}
		pc.TrustedNetworks = append(pc.TrustedNetworks, pfx)
	}
	if pc.ProxyProtocol != mux.ProxyOff && len(pc.TrustedNetworks) == 0 {
		// proxy_protocol_trusted_networks: zero means any source.
		pc.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	if cfg.Auth.Enabled {
		pc.SecondFactor = secondFactor(cfg.Auth.Authentication.SecondFactor)
	}
	if p.ACME.Enabled {
		return nil, nil, errors.New("proxy_service.acme: ACME is not built into this proxy yet; give the certificates in https_keypairs (or leave both out to serve the cluster-signed host certificate)")
	}
	var kp *daemon.KeyPairs
	if len(p.HTTPSKeyPairs) > 0 {
		files := make([]daemon.KeyPairFiles, len(p.HTTPSKeyPairs))
		for i, k := range p.HTTPSKeyPairs {
			files[i] = daemon.KeyPairFiles{CertFile: k.CertFile, KeyFile: k.KeyFile}
		}
		var err error
		kp, err = daemon.LoadKeyPairs(files)
		if err != nil {
			return nil, nil, fmt.Errorf("proxy_service.https_keypairs: %w", err)
		}
		pc.TLSConfig = kp.TLSConfig()
	}
	return pc, kp, nil
}

// secondFactor maps auth_service.authentication.second_factor to what
// /webapi/ping reports: "otp" is enforced for the users who enrolled
// TOTP, which the proxy calls "optional".
func secondFactor(s string) string {
	switch s {
	case "off":
		return "off"
	case "otp":
		return "optional"
	}
	return ""
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// listen opens the listeners of pc's mode.
func listen(pc *proxy.Config) (proxy.Listeners, error) {
	var ls proxy.Listeners
	var err error
	if ls.Web, err = net.Listen("tcp", pc.WebListenAddr); err != nil {
		return ls, err
	}
	if pc.Mode == proxy.Separate {
		if ls.SSH, err = net.Listen("tcp", pc.SSHListenAddr); err != nil {
			ls.Web.Close()
			return ls, err
		}
		if ls.Tunnel, err = net.Listen("tcp", pc.TunnelListenAddr); err != nil {
			ls.Web.Close()
			ls.SSH.Close()
			return ls, err
		}
	}
	return ls, nil
}

func startDiag(addr string, svc *proxy.Service, kp *daemon.KeyPairs, log *slog.Logger) (*daemon.Diag, error) {
	metrics := []daemon.Metric{
		{Name: "sallyport_proxy_tunnels", Help: "Agents with a reverse tunnel to this proxy.", Value: func() float64 { return float64(len(svc.Tunnels().Agents())) }},
		{Name: "sallyport_proxy_nodes", Help: "Agents known to this proxy.", Value: func() float64 { return float64(len(svc.Nodes())) }},
	}
	if kp != nil {
		metrics = append(metrics,
			daemon.Metric{Name: "sallyport_tls_reloads_total", Help: "Successful keypair reloads.", Type: "counter", Value: func() float64 { ok, _ := kp.Reloads(); return float64(ok) }},
			daemon.Metric{Name: "sallyport_tls_reload_errors_total", Help: "Failed keypair reloads.", Type: "counter", Value: func() float64 { _, bad := kp.Reloads(); return float64(bad) }},
		)
	}
	d := daemon.NewDiag(daemon.DiagConfig{Metrics: metrics, Logger: log})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sallyport.diag_addr: %w", err)
	}
	go d.Serve(l)
	log.Info("diagnostics serving", "addr", l.Addr().String())
	return d, nil
}
