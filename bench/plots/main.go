// Command plots draws push_gateway beside its peers from the results the
// benchmark commands left under a docs directory:
//
//	go run ./bench/plots                # reads and writes docs/bench
//	go run ./bench/plots -dir /tmp/x    # <dir>/results.json, <dir>/socketio/results.json
//
// It writes <dir>/cost-per-connection.png, <dir>/latency-vs-n.png and
// <dir>/peers.md; bench/run and bench/socketio do the same at the end of a
// run. Either input may be missing; at least one must exist.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pushgateway/push_gateway/bench/internal/peers"
)

func main() {
	dir := flag.String("dir", "docs/bench", "directory holding results.json and socketio/results.json; the plots and peers.md are written there")
	flag.Parse()
	if err := peers.Refresh(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "plots:", err)
		os.Exit(1)
	}
	for _, f := range []string{peers.CostPlot, peers.LatencyPlot, peers.Table} {
		log.Printf("wrote %s", filepath.Join(*dir, f))
	}
}
