package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// Results is one run: results.json holds it as is.
type Results struct {
	Command     string         `json:"command"`
	Started     string         `json:"started"`
	Seconds     float64        `json:"seconds"`
	Machine     report.Machine `json:"machine"`
	LoadAverage string         `json:"load_average"`

	Clients     int    `json:"clients"`
	SlowReaders int    `json:"slow_readers"`
	Stallers    int    `json:"stallers"`
	Keys        int    `json:"keys"`
	Rate        int    `json:"rate"`
	Duration    string `json:"duration"`
	Warmup      string `json:"warmup"`
	DropEvery   string `json:"drop_every"`
	Stall       string `json:"stall"`
	History     int    `json:"history_size"`
	Broker      string `json:"broker"`

	ConnectSeconds float64 `json:"connect_seconds"`
	Messages       int64   `json:"messages"` // published during warm-up and measured load
	Totals
	PublishGaps           int64 `json:"publish_gaps"`
	ServerDelivered       int64 `json:"server_delivered"`
	ServerSlowCloses      int64 `json:"server_slow_consumer_closes"`
	ServerDropped         int64 `json:"server_dropped"`
	ConnectionsAfterClose int64 `json:"connections_after_close"`

	Start        Snapshot `json:"start"`
	End          Snapshot `json:"end"`
	RSSChangePct float64  `json:"rss_change_pct"`

	Pass     bool     `json:"pass"`
	Failures []string `json:"failures,omitempty"`
}

// markdown renders the results with the run's context.
func (r Results) markdown() []byte {
	var b bytes.Buffer
	verdict := "**pass**"
	if !r.Pass {
		verdict = "**FAIL**"
	}
	fmt.Fprintf(&b, "# push_gateway: soak\n\n")
	fmt.Fprintf(&b, "`%s` — %s, %d CPUs, Linux %s, %s; %s, %.0f s, load average %s.\n\n",
		r.Command, r.Machine.CPU, r.Machine.CPUs, r.Machine.Kernel, r.Machine.Go, r.Started, r.Seconds, r.LoadAverage)
	fmt.Fprintf(&b, "One caddy node (broker: %s, history_size %d), %d native WebSocket clients (%d slow readers, %d stallers) "+
		"in one process, from 127.0.0.2–254, following 1–3 of %d keys (stallers: all); %d messages/s published over the keys; "+
		"each client drops its connection on average every %s and resumes at once (since/epoch); stallers stop reading for %s now and then. "+
		"Warm-up %s, then %s measured; memory is read with the load paused and every client caught up, after forced GCs and a settled RSS. "+
		"Verdict: %s.\n\n",
		r.Broker, r.History, r.Clients, r.SlowReaders, r.Stallers, r.Keys, r.Rate, r.DropEvery, r.Stall, r.Warmup, r.Duration, verdict)
	b.WriteString("| figure | value |\n| --- | ---: |\n")
	row := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "| %s | %s |\n", name, fmt.Sprintf(format, args...))
	}
	row("clients", "%d", r.Clients)
	row("connect all", "%.1f s", r.ConnectSeconds)
	row("messages published", "%d", r.Messages)
	row("deliveries (clients, replays included)", "%d", r.Deliveries)
	row("deliveries (gateway's count)", "%d", r.ServerDelivered)
	row("**lost**", "**%d**", r.Lost)
	row("duplicates", "%d", r.Duplicates)
	row("resyncs (all where history could not cover the gap)", "%d (unexplained: %d)", r.Resyncs, r.UnexplainedResyncs)
	row("contract violations", "%d", r.Violations)
	row("sessions", "%d", r.Sessions)
	row("client drops and resumes", "%d", r.Drops)
	row("slow-consumer closes (4429) seen by clients", "%d (stallers: %d)", r.SlowCloses, r.StallerSlowCloses)
	row("slow-consumer closes (gateway's count)", "%d", r.ServerSlowCloses)
	row("sessions ended otherwise / refused", "%d / %d", r.ServerEnds, r.Refusals)
	row("**RSS start → end**", "**%.1f → %.1f MiB (%+.1f%%)**", float64(r.Start.RSSKB)/1024, float64(r.End.RSSKB)/1024, r.RSSChangePct)
	row("heap in use start → end", "%.1f → %.1f MiB", float64(r.Start.HeapInuse)/(1<<20), float64(r.End.HeapInuse)/(1<<20))
	row("goroutines start → end", "%d → %d", r.Start.Goroutines, r.End.Goroutines)
	row("open fds start → end", "%d → %d", r.Start.FDs, r.End.FDs)
	row("connections left after every client closed", "%d", r.ConnectionsAfterClose)
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "\nFailure: %s\n", f)
	}
	b.WriteString("\nlost counts every seq a client skipped, and every seq it had not got when the load paused and the catch-up wait ended. " +
		"A 4429 close is not loss: the client resumes and must then get what it missed (or a resync where the history no longer reaches back).\n")
	return b.Bytes()
}

// write prints the table and, with a directory, writes results.json and
// results.md into it.
func (r Results) write(dir string) error {
	md := r.markdown()
	os.Stdout.Write(md)
	if dir == "" {
		return nil
	}
	return report.WriteFiles(dir, r, md)
}
