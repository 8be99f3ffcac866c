package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Metric is one Prometheus metric without labels, read when /metrics is
// scraped.
type Metric struct {
	// Name is the metric name ([a-zA-Z_:][a-zA-Z0-9_:]*).
	Name string
	// Help is the one-line description.
	Help string
	// Type is "gauge" or "counter"; zero means gauge.
	Type string
	// Value returns the current value. Required.
	Value func() float64
}

// DiagConfig configures a Diag. Its zero value serves a process that is
// always ready and only the built-in metrics.
type DiagConfig struct {
	// Ready reports whether the process can take traffic: nil error
	// means ready. Nil means always ready (until SetDraining).
	Ready func() error
	// Metrics are served after the built-in ones (sallyport_up,
	// sallyport_ready, process_start_time_seconds, process_open_fds,
	// go_goroutines, go_memstats_heap_alloc_bytes).
	Metrics []Metric
	// Logger receives server errors; nil discards.
	Logger *slog.Logger
}

// Diag is the diagnostics HTTP endpoint: GET /healthz answers 200 while
// the process runs, GET /readyz 200 when ready and 503 with the reason
// otherwise (also while draining), GET /metrics the Prometheus text
// exposition format (version 0.0.4).
type Diag struct {
	cfg      DiagConfig
	start    time.Time
	draining atomic.Bool
	srv      *http.Server
}

// NewDiag returns a Diag serving cfg.
func NewDiag(cfg DiagConfig) *Diag {
	d := &Diag{cfg: cfg, start: time.Now()}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d.srv = &http.Server{
		Handler:           d.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return d
}

// SetDraining makes /readyz answer 503 "draining" from now on, so load
// balancers stop sending new work while the process drains.
func (d *Diag) SetDraining() { d.draining.Store(true) }

// ReadyErr returns why the process is not ready (nil when it is).
func (d *Diag) ReadyErr() error {
	if d.draining.Load() {
		return errors.New("draining")
	}
	if d.cfg.Ready != nil {
		return d.cfg.Ready()
	}
	return nil
}

// Handler returns the endpoint's handler, for mounting elsewhere.
func (d *Diag) Handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := d.ReadyErr(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		io.WriteString(w, "ready\n")
	})
	m.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		d.WriteMetrics(w)
	})
	return m
}

// WriteMetrics writes every metric in the Prometheus text format.
func (d *Diag) WriteMetrics(w io.Writer) error {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ready := 1.0
	if d.ReadyErr() != nil {
		ready = 0
	}
	builtin := []Metric{
		{Name: "sallyport_up", Help: "1 while the process runs.", Value: func() float64 { return 1 }},
		{Name: "sallyport_ready", Help: "1 when the process is ready to take traffic, else 0.", Value: func() float64 { return ready }},
		{Name: "process_start_time_seconds", Help: "Start time of the process since the Unix epoch in seconds.", Value: func() float64 { return float64(d.start.UnixNano()) / 1e9 }},
		{Name: "process_open_fds", Help: "Number of open file descriptors.", Value: openFDs},
		{Name: "go_goroutines", Help: "Number of goroutines that currently exist.", Value: func() float64 { return float64(runtime.NumGoroutine()) }},
		{Name: "go_memstats_heap_alloc_bytes", Help: "Number of heap bytes allocated and still in use.", Value: func() float64 { return float64(ms.HeapAlloc) }},
	}
	var b strings.Builder
	for _, m := range append(builtin, d.cfg.Metrics...) {
		if m.Value == nil || !validName(m.Name) {
			continue
		}
		typ := m.Type
		if typ != "counter" {
			typ = "gauge"
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", m.Name, escapeHelp(m.Help), m.Name, typ, m.Name, formatValue(m.Value()))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Serve serves the endpoint on l until Shutdown or Close; it returns
// http.ErrServerClosed then.
func (d *Diag) Serve(l net.Listener) error { return d.srv.Serve(l) }

// Shutdown stops the endpoint, waiting for running requests until ctx ends.
func (d *Diag) Shutdown(ctx context.Context) error { return d.srv.Shutdown(ctx) }

// Close stops the endpoint at once.
func (d *Diag) Close() error { return d.srv.Close() }

func openFDs() float64 {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return math.NaN()
	}
	return float64(len(ents))
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
