// Command plots draws push_gateway beside its peers from the results
// bench/run left in a docs directory:
//
//	go run ./bench/plots                # reads and writes docs/bench
//	go run ./bench/plots -dir /tmp/x    # reads <dir>/results.json
//
// It writes <dir>/cost-per-connection.png, <dir>/latency-vs-n.png and
// <dir>/peers.md; bench/run does the same at the end of a run.
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
	dir := flag.String("dir", "docs/bench", "directory holding results.json; the plots and peers.md are written there")
	flag.Parse()
	if err := peers.Refresh(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "plots:", err)
		os.Exit(1)
	}
	for _, f := range []string{peers.CostPlot, peers.LatencyPlot, peers.Table} {
		log.Printf("wrote %s", filepath.Join(*dir, f))
	}
}
