package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/sallyport/sallyport/config"
)

// DefaultConfigPath is the configuration file a binary reads when neither
// -config nor SALLYPORT_CONFIG names one and it exists.
const DefaultConfigPath = "/etc/sallyport.yaml"

// Options are the process flags the binaries share beyond those of package
// config.
type Options struct {
	PIDFile      string        // -pid-file: write the process ID here
	DrainTimeout time.Duration // -drain-timeout: how long sessions may run on after SIGTERM
	JoinTimeout  time.Duration // -join-timeout: how long joining the cluster may take
}

// Setup parses a binary's arguments (the flags of package config plus
// Options), loads its configuration (DefaultConfigPath when nothing else
// names a file) and checks that the binary's section is enabled.
// section names it in the error ("proxy_service"); enabled reads it.
func Setup(name string, args []string, stderr io.Writer, section string, enabled func(*config.Config) bool) (*config.Config, *Options, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	ov := config.BindFlags(fs)
	o := &Options{}
	fs.StringVar(&o.PIDFile, "pid-file", "", "write the process ID to this file")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long running sessions may continue before they are closed")
	fs.DurationVar(&o.JoinTimeout, "join-timeout", 2*time.Minute, "how long joining the cluster may take")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	path := ""
	if _, err := os.Stat(DefaultConfigPath); err == nil {
		path = DefaultConfigPath
	}
	cfg, err := config.Load(path, ov)
	if err != nil {
		return nil, nil, err
	}
	if !enabled(cfg) {
		return nil, nil, fmt.Errorf("%s is not enabled in the configuration (add \"%s: {enabled: yes}\")", section, section)
	}
	return cfg, o, nil
}

// Process is a started binary: its configuration, its flags, its logger
// and its PID file.
type Process struct {
	Config    *config.Config
	Options   *Options
	Log       *slog.Logger
	removePID func()
}

// Start is Setup, then the logger the configuration asks for and the PID
// file of -pid-file. Close the Process when the binary ends.
func Start(name string, args []string, stderr io.Writer, section string, enabled func(*config.Config) bool) (*Process, error) {
	cfg, opts, err := Setup(name, args, stderr, section, enabled)
	if err != nil {
		return nil, err
	}
	log := NewLogger(stderr, cfg.Common.Log.Severity, cfg.Common.Log.Format)
	removePID, err := WritePIDFile(opts.PIDFile)
	if err != nil {
		return nil, err
	}
	return &Process{Config: cfg, Options: opts, Log: log, removePID: removePID}, nil
}

// Close removes the PID file.
func (p *Process) Close() { p.removePID() }

// Drain is the graceful end after SIGTERM: it marks diag (when not nil)
// draining, so that load balancers stop sending new clients, and calls
// stop with a context that ends after -drain-timeout. what names, in the
// log line of a drain the timeout cut short, what was closed then
// ("sessions", "connections").
func (p *Process) Drain(diag *Diag, what string, stop func(context.Context) error) {
	if diag != nil {
		diag.SetDraining()
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Options.DrainTimeout)
	defer cancel()
	if err := stop(ctx); err != nil {
		p.Log.Warn("drain ended by timeout; remaining "+what+" closed", "err", err)
	}
}
