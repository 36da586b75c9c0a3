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
	Repeat   int      `json:"repeat"`
	Results  []Result `json:"results"` // medians over the runs, one per server and N
	Runs     []Result `json:"runs"`    // every run
}

// displayName is how the tables name a server.
var displayName = map[string]string{
	nameGateway:    "push_gateway",
	nameBaseline:   "baseline (gorilla, goroutines)",
	nameGatewaySIO: "push_gateway Socket.IO",
	nameSocketIO:   "socket.io 4.8.4 (node)",
}

// comparisons are the ratio tables: a server against a peer.
var comparisons = [][2]string{
	{nameGateway, nameBaseline},
	{nameGateway, nameSocketIO},
	{nameGatewaySIO, nameSocketIO},
	{nameGatewaySIO, nameBaseline},
}

// write stores results.json and results.md in dir.
func (r report) write(dir string) error {
	return benchreport.WriteFiles(dir, r, []byte(r.markdown()))
}

// find answers the median result of server at n.
func (r report) find(server string, n int) (Result, bool) {
	for _, x := range r.Results {
		if x.Server == server && x.N == n {
			return x, true
		}
	}
	return Result{}, false
}

// table writes a markdown table: one row per result that measured
// something, the server's name second.
func (r report) table(b *strings.Builder, head string, keep func(Result) bool, row func(Result) []string) {
	cols := strings.Split(head, "|")
	b.WriteString("| N | server | " + head + " |\n|---:|---|" + strings.Repeat("---:|", len(cols)) + "\n")
	for _, x := range r.Results {
		if x.Error != "" || !keep(x) {
			continue
		}
		fmt.Fprintf(b, "| %d | %s | %s |\n", x.N, displayName[x.Server], strings.Join(row(x), " | "))
	}
	b.WriteString("\n")
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }
func d(v int64) string    { return fmt.Sprint(v) }

// markdown renders the results as the tables docs/bench shows.
func (r report) markdown() string {
	var b strings.Builder
	m := r.Machine
	b.WriteString("# push_gateway beside its peers, in one run\n\n")
	fmt.Fprintf(&b, "Command: `%s` (from the repository root)\n\n", r.Command)
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %.1f GiB RAM, Linux %s, %s, node %s. Load average %s at start, %s at end (the machine may be shared).\n\n",
		m.CPUs, m.CPUModel, float64(m.MemTotalKB)/(1<<20), m.Kernel, m.GoVersion, m.Node, m.LoadAvgStart, m.LoadAvgEnd)
	fmt.Fprintf(&b, "Run: %s, %.0f s. %s.\n\n", r.Started, r.Seconds, r.Settings)
	b.WriteString("Servers: **push_gateway** (caddy with the module, native WebSocket protocol), **baseline** " +
		"(gorilla/websocket, a reader and a writer goroutine per connection, ../bench/baseline), **push_gateway Socket.IO** " +
		"(the same caddy, Engine.IO v4 / Socket.IO v5) and **socket.io 4.8.4 on node** (bench/run/reference.mjs, what " +
		"FeatureProbe's server does). One server runs at a time; the load generators (bench/loadgen: one epoll loop per " +
		"process, several processes, source addresses 127.0.0.2–254) and the publisher run on the same machine.\n\n")
	b.WriteString("How each figure is taken: latency is from the publisher's wall-clock stamp (just before the publish " +
		"request) to each client's receipt. RSS per connection is (VmRSS with N connected and settled − VmRSS before) / N, " +
		"both after forcing a GC (Go: /debug/pprof/heap?gc=1 twice; node: global.gc() twice). CPU is the server process's " +
		"utime+stime around the phase; the load generators' own CPU is reported beside it so that a client-bound figure shows.\n\n")

	b.WriteString("## Idle connections\n\n")
	r.table(&b, "connected | RSS/conn (B) | Go heap+stack/conn (B) | goroutines | idle CPU (%)",
		func(x Result) bool { return x.Connected > 0 },
		func(x Result) []string {
			heap, gor := "—", "—"
			if x.MemStatsError == "" && x.Server != nameSocketIO {
				heap = f0(x.HeapPerConn + x.StackPerConn)
			}
			if x.Server != nameSocketIO {
				gor = fmt.Sprint(x.GoroutinesIdleN)
			}
			return []string{fmt.Sprint(x.Connected), f0(x.RSSPerConnBytes), heap, gor, f1(x.IdleCPUPct)}
		})

	b.WriteString("## Broadcast: one message to all N\n\nMedians over the measured broadcasts, then over the runs.\n\n")
	r.table(&b, "p50 (ms) | p99 (ms) | p99.9 (ms) | last (ms) | deliveries/s | server CPU (µs/delivery) | loadgen CPU (µs/delivery) | publish call (ms) | lost | dup",
		func(x Result) bool { return len(x.Broadcasts) > 0 },
		func(x Result) []string {
			md := x.Median
			return []string{f2(md.P50MS), f2(md.P99MS), f2(md.P999MS), f2(md.LastMS), f0(md.DeliveriesPS),
				f2(x.ServerCPUPerDelUS), f2(x.LoadgenCPUPerDelUS), f2(md.PublishMS), d(x.Lost), d(x.Duplicates)}
		})

	b.WriteString("## Burst\n\nMessages published back to back (each publish call after the previous one answered), " +
		"from the first publish to the last receipt of the last message; then RSS again, after a GC, against the idle RSS.\n\n")
	r.table(&b, "messages | seconds | deliveries/s | server CPU (µs/delivery) | RSS idle (KiB) | RSS after burst (KiB) | growth (%)",
		func(x Result) bool { return x.Burst > 0 },
		func(x Result) []string {
			return []string{fmt.Sprint(x.Burst), fmt.Sprintf("%.3f", x.BurstS), f0(x.BurstDelPS), f2(x.BurstCPUPerDelUS),
				d(x.RSSAfterKB), d(x.RSSAfterBurstKB), fmt.Sprintf("%+.1f", x.BurstRSSGrowthPct)}
		})

	b.WriteString("## Reconnect storm\n\nEvery client dropped at once (its load generator killed), messages published while " +
		"they are away, then all of them reconnect at once. Native clients resume with `since`/`epoch`: lost counts the " +
		"messages a client never got (the baseline keeps no history, so it cannot resume). Socket.IO has no resume: " +
		"FeatureProbe's SDKs refetch on the `update \"\"` that answers `register`, so only the reconnect is measured.\n\n")
	r.table(&b, "clients back | seconds to all registered | connects/s | handshake p50 (ms) | handshake p99 (ms) | missed while away | lost | resyncs",
		func(x Result) bool { return x.Storm.Connected > 0 },
		func(x Result) []string {
			s := x.Storm
			lost := "no resume"
			if s.Resumes {
				lost = d(s.Lost)
			}
			return []string{fmt.Sprint(s.Connected), fmt.Sprintf("%.3f", s.Seconds), f0(s.PerS), f1(s.HandshakeP50), f1(s.HandshakeP99),
				fmt.Sprint(s.Missed), lost, d(s.Resyncs)}
		})

	b.WriteString("## Steady load\n\nN clients over many keys (client i follows key i mod keys), publishes at a fixed rate " +
		"round-robin over the keys; every latency of every delivery (log-linear histogram, ≤ 1% error).\n\n")
	r.table(&b, "keys | publishes/s | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | deliveries/s | server cores | deliveries per core-second | server CPU (µs/delivery) | loadgen CPU (µs/delivery) | publish call p99 (ms)",
		func(x Result) bool { return x.Steady.Deliveries > 0 },
		func(x Result) []string {
			y := x.Steady
			return []string{fmt.Sprint(y.Keys), f0(y.Rate), f2(y.P50MS), f2(y.P99MS), f2(y.P999MS), f2(y.MaxMS), f0(y.DelPS),
				f2(y.ServerCores), f0(y.DelPerCoreS), f2(y.CPUPerDelUS), f2(y.LoadgenUS), f2(y.PublishP99)}
		})

	r.ratios(&b)
	r.targets(&b)

	b.WriteString("## Shutdown with every client connected\n\n")
	b.WriteString("SIGINT to the server at the end; what the clients saw, by close code (\"read error\": the socket ended without a close frame).\n\n")
	r.table(&b, "seconds to exit | closes", func(x Result) bool { return x.ShutdownCloses != nil },
		func(x Result) []string { return []string{f2(x.ShutdownS), formatCloses(x.ShutdownCloses)} })

	b.WriteString(r.notes())
	return b.String()
}

// ratios writes one table per comparison: below 1, the first server costs
// less (for rates: above 1, it is faster).
func (r report) ratios(b *strings.Builder) {
	b.WriteString("## Ratios\n\nEach figure of the first server ÷ the same figure of the peer, from the medians above. " +
		"Below 1: the first costs less or is quicker; for deliveries/s and connects/s, above 1 is better.\n\n")
	for _, c := range comparisons {
		rows := 0
		var t strings.Builder
		for _, n := range r.ns() {
			g, ok1 := r.find(c[0], n)
			p, ok2 := r.find(c[1], n)
			if !ok1 || !ok2 || g.Error != "" || p.Error != "" {
				continue
			}
			rows++
			fmt.Fprintf(&t, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n,
				ratio(g.RSSPerConnBytes, p.RSSPerConnBytes), ratio(float64(g.GoroutinesIdleN), float64(p.GoroutinesIdleN)),
				ratio(g.Median.P99MS, p.Median.P99MS), ratio(g.Median.LastMS, p.Median.LastMS),
				ratio(g.ServerCPUPerDelUS, p.ServerCPUPerDelUS), ratio(g.BurstDelPS, p.BurstDelPS),
				ratio(g.Storm.PerS, p.Storm.PerS), ratio(g.Steady.P99MS, p.Steady.P99MS), ratio(g.Steady.CPUPerDelUS, p.Steady.CPUPerDelUS))
		}
		if rows == 0 {
			continue
		}
		fmt.Fprintf(b, "### %s ÷ %s\n\n", displayName[c[0]], displayName[c[1]])
		b.WriteString("| N | RSS/conn | goroutines | broadcast p99 | broadcast last | broadcast CPU/delivery | burst deliveries/s | storm connects/s | steady p99 | steady CPU/delivery |\n")
		b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		b.WriteString(t.String() + "\n")
	}
}

// targets checks issue 8's targets against push_gateway's figures at the
// largest N measured.
func (r report) targets(b *strings.Builder) {
	ns := r.ns()
	if len(ns) == 0 {
		return
	}
	n := ns[len(ns)-1]
	g, ok1 := r.find(nameGateway, n)
	l, ok2 := r.find(nameBaseline, n)
	if !ok1 || !ok2 || g.Error != "" || l.Error != "" {
		return
	}
	fmt.Fprintf(b, "## Targets at N = %d (push_gateway, native)\n\n| target | measured | |\n|---|---|---|\n", n)
	row := func(name, measured string, ok bool) {
		verdict := "met"
		if !ok {
			verdict = "**missed**"
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", name, measured, verdict)
	}
	row("RSS per idle connection ≤ 1 KiB", fmt.Sprintf("%.0f B", g.RSSPerConnBytes), g.RSSPerConnBytes <= 1024)
	row("goroutines flat as N grows", fmt.Sprintf("%d at N = %d", g.GoroutinesIdleN, n), r.goroutinesFlat())
	row("broadcast CPU/delivery ≤ baseline's", fmt.Sprintf("%.2f vs %.2f µs", g.ServerCPUPerDelUS, l.ServerCPUPerDelUS), g.ServerCPUPerDelUS <= l.ServerCPUPerDelUS)
	row("broadcast CPU/delivery ≤ 1.2 × bare-server floor (9.5 µs)", fmt.Sprintf("%.2f µs (%.2f ×)", g.ServerCPUPerDelUS, g.ServerCPUPerDelUS/9.5), g.ServerCPUPerDelUS <= 1.2*9.5)
	row("broadcast p99 ≤ baseline's", fmt.Sprintf("%.1f vs %.1f ms", g.Median.P99MS, l.Median.P99MS), g.Median.P99MS <= l.Median.P99MS)
	row("broadcast time to last ≤ baseline's", fmt.Sprintf("%.1f vs %.1f ms", g.Median.LastMS, l.Median.LastMS), g.Median.LastMS <= l.Median.LastMS)
	if g.Burst > 0 {
		row("burst deliveries/s ≥ 2 × baseline's", fmt.Sprintf("%.0f vs %.0f (%.2f ×)", g.BurstDelPS, l.BurstDelPS, g.BurstDelPS/l.BurstDelPS), g.BurstDelPS >= 2*l.BurstDelPS)
		row("RSS after the burst within 10% of idle", fmt.Sprintf("%+.1f%%", g.BurstRSSGrowthPct), g.BurstRSSGrowthPct <= 10)
	}
	if g.Steady.Deliveries > 0 && l.Steady.Deliveries > 0 {
		row("steady p99 ≤ baseline's", fmt.Sprintf("%.2f vs %.2f ms", g.Steady.P99MS, l.Steady.P99MS), g.Steady.P99MS <= l.Steady.P99MS)
		row("steady p99 ≤ 5 ms", fmt.Sprintf("%.2f ms", g.Steady.P99MS), g.Steady.P99MS <= 5)
	}
	if g.Storm.Connected > 0 {
		row("reconnect storm loses nothing", fmt.Sprintf("%d lost, %d resyncs", g.Storm.Lost, g.Storm.Resyncs), g.Storm.Lost == 0 && g.Storm.Resyncs == 0)
	}
	b.WriteString("\n")
}

// goroutinesFlat says whether push_gateway's goroutines stayed within 10
// of each other at every N.
func (r report) goroutinesFlat() bool {
	lo, hi := -1, -1
	for _, n := range r.ns() {
		if g, ok := r.find(nameGateway, n); ok && g.Error == "" {
			if lo < 0 || g.GoroutinesIdleN < lo {
				lo = g.GoroutinesIdleN
			}
			hi = max(hi, g.GoroutinesIdleN)
		}
	}
	return lo >= 0 && hi-lo <= 10
}

// notes lists errors, unexpected closes and unsettled readings of every run.
func (r report) notes() string {
	var notes []string
	for _, x := range r.Runs {
		who := fmt.Sprintf("- %s n=%d run %d", displayName[x.Server], x.N, x.Repeat)
		if x.Error != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", who, x.Error))
		}
		if len(x.Closes) > 0 {
			notes = append(notes, fmt.Sprintf("%s: connections closed during the broadcasts, by close code: %s", who, formatCloses(x.Closes)))
		}
		if x.ShutdownError != "" {
			notes = append(notes, fmt.Sprintf("%s: shutdown: %s", who, x.ShutdownError))
		}
		if x.MemStatsError != "" && x.Server != nameSocketIO {
			notes = append(notes, fmt.Sprintf("%s: no Go memory statistics: %s", who, x.MemStatsError))
		}
		if x.RSSAfterKB > 0 && !x.RSSSettled {
			notes = append(notes, fmt.Sprintf("%s: RSS had not settled within 20s; the last sample is used", who))
		}
		if x.Dropped > 0 {
			notes = append(notes, fmt.Sprintf("%s: the server dropped or closed %d slow followers", who, x.Dropped))
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return "## Notes\n\n" + strings.Join(notes, "\n") + "\n"
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
