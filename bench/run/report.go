package main

import (
	"fmt"
	"sort"
	"strings"

	// Named apart from this command's own report type.
	benchreport "github.com/pushgateway/push_gateway/bench/internal/report"
)

// report is everything a run writes.
type report struct {
	Command  string   `json:"command"`
	Started  string   `json:"started"`
	Seconds  float64  `json:"seconds"`
	Machine  Machine  `json:"machine"`
	Settings string   `json:"settings"`
	StandIn  bool     `json:"stand_in,omitempty"`
	Results  []Result `json:"results"`
}

// write stores results.json and results.md in dir.
func (r report) write(dir string) error {
	return benchreport.WriteFiles(dir, r, []byte(r.markdown()))
}

// find answers the result of server at n.
func (r report) find(server string, n int) (Result, bool) {
	for _, x := range r.Results {
		if x.Server == server && x.N == n {
			return x, true
		}
	}
	return Result{}, false
}

// markdown renders the results as the tables docs/bench shows.
func (r report) markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# push_gateway vs a goroutine-per-connection baseline\n\n")
	fmt.Fprintf(&b, "Command: `%s` (from the repository root)\n\n", r.Command)
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %.1f GiB RAM, Linux %s, %s. Load average %s at start, %s at end (the machine may be shared).\n\n",
		m.CPUs, m.CPUModel, float64(m.MemTotalKB)/(1<<20), m.Kernel, m.GoVersion, m.LoadAvgStart, m.LoadAvgEnd)
	fmt.Fprintf(&b, "Run: %s, %.0fs. %s.\n\n", r.Started, r.Seconds, r.Settings)
	if r.StandIn {
		b.WriteString("**Stand-in run: the push_gateway column is the baseline binary, not the gateway.**\n\n")
	}
	b.WriteString("Server, load generators and publisher run on the same machine; latency is from the publisher's " +
		"wall-clock stamp (taken just before the publish request) to each client's receipt. " +
		"RSS per connection is (VmRSS connected and settled − VmRSS before) / N, both read after forcing a GC " +
		"through the admin endpoint's /debug/pprof/heap?gc=1; Go heap+stack per connection is the change in " +
		"HeapInuse+StackInuse from the same page. Idle CPU is the server's CPU while the N clients sit connected " +
		"and silent (during the RSS settle wait, a few seconds; 10 ms clock ticks). " +
		"CPU per delivery is the process's utime+stime over the measured broadcasts / messages received.\n\n")

	b.WriteString("## Results\n\n")
	b.WriteString("| N | server | connected | RSS/conn (B) | Go heap+stack/conn (B) | goroutines | idle CPU (%) | p50 (ms) | p99 (ms) | p99.9 (ms) | last (ms) | deliveries/s | server CPU (µs/delivery) | loadgen CPU (µs/delivery) | publish call (ms) | lost | dup |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Results {
		if x.Error != "" && len(x.Broadcasts) == 0 && x.RSSAfterKB == 0 {
			fmt.Fprintf(&b, "| %d | %s | %d | — | — | — | — | — | — | — | — | — | — | — | — | — | — |\n", x.N, x.Server, x.Connected)
			continue
		}
		md := x.Median
		fmt.Fprintf(&b, "| %d | %s | %d | %.0f | %.0f | %d | %.1f | %.2f | %.2f | %.2f | %.2f | %.0f | %.2f | %.2f | %.2f | %d | %d |\n",
			x.N, x.Server, x.Connected, x.RSSPerConnBytes, x.HeapPerConn+x.StackPerConn, x.GoroutinesIdleN, x.IdleCPUPct, md.P50MS, md.P99MS, md.P999MS,
			md.LastMS, md.DeliveriesPS, x.ServerCPUPerDelUS, x.LoadgenCPUPerDelUS, md.PublishMS, x.Lost, x.Duplicates)
	}

	b.WriteString("\n## Ratios push_gateway / baseline\n\n")
	b.WriteString("Below 1 means push_gateway uses less (for deliveries/s: above 1 means it is faster).\n\n")
	b.WriteString("| N | RSS/conn | heap+stack/conn | goroutines | p50 | p99 | p99.9 | last | deliveries/s | server CPU/delivery |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range r.ns() {
		g, ok1 := r.find(nameGateway, n)
		l, ok2 := r.find(nameBaseline, n)
		if !ok1 || !ok2 || g.Error != "" || l.Error != "" {
			continue
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n,
			ratio(g.RSSPerConnBytes, l.RSSPerConnBytes), ratio(g.HeapPerConn+g.StackPerConn, l.HeapPerConn+l.StackPerConn), ratio(float64(g.GoroutinesIdleN), float64(l.GoroutinesIdleN)),
			ratio(g.Median.P50MS, l.Median.P50MS), ratio(g.Median.P99MS, l.Median.P99MS),
			ratio(g.Median.P999MS, l.Median.P999MS), ratio(g.Median.LastMS, l.Median.LastMS),
			ratio(g.Median.DeliveriesPS, l.Median.DeliveriesPS), ratio(g.ServerCPUPerDelUS, l.ServerCPUPerDelUS))
	}

	b.WriteString("\n## Burst\n\nMessages published back to back (each publish call after the previous one answered), " +
		"from the first publish to the last receipt of the last message.\n\n")
	b.WriteString("| N | server | messages | seconds | deliveries/s | server CPU (µs/delivery) |\n|---:|---|---:|---:|---:|---:|\n")
	for _, x := range r.Results {
		if x.Burst > 0 {
			fmt.Fprintf(&b, "| %d | %s | %d | %.3f | %.0f | %.2f |\n", x.N, x.Server, x.Burst, x.BurstS, x.BurstDelPS, x.BurstCPUPerDelUS)
		}
	}

	b.WriteString("\n## Shutdown with every client connected\n\n")
	b.WriteString("SIGINT to the server after the broadcasts; what the clients saw, by close code (\"read error\": the socket ended without a close frame).\n\n")
	b.WriteString("| N | server | seconds to exit | closes |\n|---:|---|---:|---|\n")
	for _, x := range r.Results {
		if x.ShutdownCloses != nil {
			fmt.Fprintf(&b, "| %d | %s | %.2f | %s |\n", x.N, x.Server, x.ShutdownS, formatCloses(x.ShutdownCloses))
		}
	}

	var notes []string
	for _, x := range r.Results {
		if x.Error != "" {
			notes = append(notes, fmt.Sprintf("- %s n=%d: %s", x.Server, x.N, x.Error))
		}
		if len(x.Closes) > 0 {
			notes = append(notes, fmt.Sprintf("- %s n=%d: connections closed during the run, by close code: %s", x.Server, x.N, formatCloses(x.Closes)))
		}
		if x.ShutdownError != "" {
			notes = append(notes, fmt.Sprintf("- %s n=%d: shutdown: %s", x.Server, x.N, x.ShutdownError))
		}
		if x.MemStatsError != "" {
			notes = append(notes, fmt.Sprintf("- %s n=%d: no Go memory statistics: %s", x.Server, x.N, x.MemStatsError))
		}
		if x.RSSAfterKB > 0 && !x.RSSSettled {
			notes = append(notes, fmt.Sprintf("- %s n=%d: RSS had not settled within 20s; the last sample is used", x.Server, x.N))
		}
		if x.Dropped > 0 {
			notes = append(notes, fmt.Sprintf("- %s n=%d: the server dropped or closed %d slow followers", x.Server, x.N, x.Dropped))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n## Notes\n\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

// ns answers the distinct N in run order.
func (r report) ns() []int {
	var out []int
	seen := map[int]bool{}
	for _, x := range r.Results {
		if !seen[x.N] {
			seen[x.N] = true
			out = append(out, x.N)
		}
	}
	return out
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	if q := a / b; q < 0.1 {
		return fmt.Sprintf("%.2g", q) // 0.0011 for goroutines, not 0.00
	}
	return fmt.Sprintf("%.2f", a/b)
}

// formatCloses renders counts by close code, codes in order.
func formatCloses(m map[string]int) string {
	codes := make([]string, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s: %d", c, m[c])
	}
	return strings.Join(parts, ", ")
}
