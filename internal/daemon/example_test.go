package daemon_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/sallyport/sallyport/internal/daemon"
)

func ExampleDiag_WriteMetrics() {
	d := daemon.NewDiag(daemon.DiagConfig{
		Metrics: []daemon.Metric{{Name: "sallyport_proxy_tunnels", Help: "Connected agent tunnels.", Value: func() float64 { return 3 }}},
	})
	var b strings.Builder
	d.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, "sallyport_proxy_tunnels") || strings.HasPrefix(line, "sallyport_ready") {
			fmt.Println(line)
		}
	}
	// Output:
	// sallyport_ready 1
	// # HELP sallyport_proxy_tunnels Connected agent tunnels.
	// # TYPE sallyport_proxy_tunnels gauge
	// sallyport_proxy_tunnels 3
}

func ExampleWritePIDFile() {
	dir, _ := os.MkdirTemp("", "pid")
	defer os.RemoveAll(dir)
	remove, err := daemon.WritePIDFile(dir + "/proxy.pid")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(dir + "/proxy.pid")
	fmt.Println(strings.TrimSpace(string(b)) == fmt.Sprint(os.Getpid()))
	remove()
	_, err = os.Stat(dir + "/proxy.pid")
	fmt.Println(os.IsNotExist(err))
	// Output:
	// true
	// true
}
