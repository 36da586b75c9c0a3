package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// Results is one run: results.json holds it as is.
type Results struct {
	Command    string         `json:"command"`
	Started    string         `json:"started"`
	Seconds    float64        `json:"seconds"`
	Machine    Machine        `json:"machine"`
	Broadcasts int            `json:"broadcasts"`
	Warmup     int            `json:"warmup"`
	Servers    []ServerResult `json:"servers"`
	Ratios     []Ratio        `json:"ratios"`
}

// Machine says where the run happened: the shared description and the
// reference's node version.
type Machine struct {
	report.Machine
	Node string `json:"node"`
}

// ServerResult is what one server cost at one N.
type ServerResult struct {
	Server           string  `json:"server"`
	N                int     `json:"n"`
	ConnectSeconds   float64 `json:"connect_seconds"`
	RSSBeforeKB      int64   `json:"rss_before_kb"`
	RSSAfterKB       int64   `json:"rss_after_kb"`
	RSSSettled       bool    `json:"rss_settled"`
	RSSPerConnBytes  float64 `json:"rss_per_conn_bytes"`
	GoroutinesBefore int     `json:"goroutines_before,omitempty"`
	GoroutinesAfter  int     `json:"goroutines_after,omitempty"`
	Broadcasts       int     `json:"broadcasts"`
	Deliveries       int     `json:"deliveries"`
	// Medians over the measured broadcasts of each broadcast's p50, p99
	// and last delivery (time to last), publisher's stamp to receipt.
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	LastMs float64 `json:"time_to_last_ms"`
	// MaxMs is the slowest delivery of all the measured broadcasts.
	MaxMs            float64 `json:"max_ms"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUPerDeliveryUs float64 `json:"cpu_per_delivery_us"`
	Dropped          int64   `json:"dropped,omitempty"`
	SlowCloses       int64   `json:"slow_consumer_closes,omitempty"`
	Error            string  `json:"error,omitempty"`
}

// Ratio compares the gateway with the reference at one N; each figure is
// gateway / reference, 0 when either is missing.
type Ratio struct {
	N              int     `json:"n"`
	RSSPerConn     float64 `json:"rss_per_conn"`
	CPUPerDelivery float64 `json:"cpu_per_delivery"`
	P50            float64 `json:"p50"`
	P99            float64 `json:"p99"`
	TimeToLast     float64 `json:"time_to_last"`
	// The targets, in the same run.
	RSSTargetMet bool `json:"rss_target_met"` // ≤ 1/5
	CPUTargetMet bool `json:"cpu_target_met"` // ≤ 2/3
	P99TargetMet bool `json:"p99_target_met"` // < 1
}

func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// ratios pairs each N's gateway and reference results.
func ratios(rs []ServerResult) []Ratio {
	var out []Ratio
	for _, g := range rs {
		if g.Server != serverGateway || g.Error != "" {
			continue
		}
		for _, r := range rs {
			if r.Server != serverReference || r.N != g.N || r.Error != "" {
				continue
			}
			q := Ratio{N: g.N,
				RSSPerConn:     ratio(g.RSSPerConnBytes, r.RSSPerConnBytes),
				CPUPerDelivery: ratio(g.CPUPerDeliveryUs, r.CPUPerDeliveryUs),
				P50:            ratio(g.P50Ms, r.P50Ms),
				P99:            ratio(g.P99Ms, r.P99Ms),
				TimeToLast:     ratio(g.LastMs, r.LastMs),
			}
			q.RSSTargetMet = q.RSSPerConn > 0 && q.RSSPerConn <= 0.2
			q.CPUTargetMet = q.CPUPerDelivery > 0 && q.CPUPerDelivery <= 2.0/3
			q.P99TargetMet = q.P99 > 0 && q.P99 < 1
			out = append(out, q)
		}
	}
	return out
}

func decodeJSON(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %q: %w", b, err)
	}
	return nil
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// markdown renders the results with the run's context.
func (r Results) markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# push_gateway vs socket.io 4.8.4: Socket.IO clients\n\n")
	fmt.Fprintf(&b, "`%s` — %s, %d CPUs, Linux %s, %s, node %s; %s, %.0f s.\n\n",
		r.Command, r.Machine.CPU, r.Machine.CPUs, r.Machine.Kernel, r.Machine.Go, r.Machine.Node, r.Started, r.Seconds)
	fmt.Fprintf(&b, "Each server in a fresh process per N, one after the other; N Socket.IO v5 clients over raw WebSocket "+
		"(namespace /realtime, `register` with one SDK key, pings answered) in the runner's process. "+
		"RSS: VmRSS after connecting and settling minus before (both after a forced GC: pprof gc=1 / node global.gc()), / N. "+
		"Latency: %d broadcasts of `update {\"i\":…,\"t\":<ns>}` to all N (after %d warm-up), publisher's stamp to receipt; "+
		"p50, p99 and time to last are medians over the broadcasts, max the worst delivery. "+
		"CPU: the server's utime+stime over the broadcasts / deliveries.\n\n", r.Broadcasts, r.Warmup)
	b.WriteString("| server | N | RSS / idle conn | p50 | p99 | time to last | max | server CPU / delivery | connect |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.Servers {
		if s.Error != "" {
			fmt.Fprintf(&b, "| %s | %d | failed: %s |||||||\n", s.Server, s.N, strings.ReplaceAll(s.Error, "|", "/"))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.2f KB | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f µs | %.1f s |\n",
			s.Server, s.N, s.RSSPerConnBytes/1000, s.P50Ms, s.P99Ms, s.LastMs, s.MaxMs, s.CPUPerDeliveryUs, s.ConnectSeconds)
	}
	if len(r.Ratios) > 0 {
		b.WriteString("\nRatios push_gateway / socket.io (targets of issue 5: RSS ≤ 0.20, CPU ≤ 0.67, p99 < 1):\n\n")
		b.WriteString("| N | RSS / conn | CPU / delivery | p50 | p99 | time to last | RSS target | CPU target | p99 target |\n")
		b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n")
		for _, q := range r.Ratios {
			fmt.Fprintf(&b, "| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %s | %s |\n",
				q.N, q.RSSPerConn, q.CPUPerDelivery, q.P50, q.P99, q.TimeToLast,
				yes(q.RSSTargetMet), yes(q.CPUTargetMet), yes(q.P99TargetMet))
		}
	}
	b.WriteString("\nKB = 1,000 bytes. VmRSS excludes the kernel's socket buffers. The clients share the machine's cores with the server under test.\n")
	return b.Bytes()
}

// write prints the tables and, with a directory, writes results.json and
// results.md into it.
func (r Results) write(dir string) error {
	md := r.markdown()
	os.Stdout.Write(md)
	if dir == "" {
		return nil
	}
	return report.WriteFiles(dir, r, md)
}
