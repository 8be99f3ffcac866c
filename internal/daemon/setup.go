package daemon

import (
	"flag"
	"fmt"
	"io"
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
