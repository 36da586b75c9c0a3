package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// markdown renders the summaries, the ratios and how they were measured.
func (r Results) markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# push_gateway: cluster mode on Redis against a single node\n\n")
	fmt.Fprintf(&b, "`%s` — %s, %d CPUs, Linux %s, %s; %s, %.0f s. Medians of %d run(s).\n\n",
		r.Command, r.Machine.CPU, r.Machine.CPUs, r.Machine.Kernel, r.Machine.Go, r.Started, r.Seconds, r.Runs)
	fmt.Fprintf(&b, "Load average (1, 5, 15 min) when the measurements began: %s; when they ended: %s.\n\n", r.LoadStart, r.LoadEnd)
	fmt.Fprintf(&b, "**single**: one caddy, in-process hub. **cluster**: caddy nodes a and b on one redis-server "+
		"(`broker redis`, no persistence). Everything — nodes, redis-server, the %d WebSocket followers and the "+
		"publishers — shares this machine's cores; both configurations stay up "+
		"throughout and the runs alternate between them.\n\n", r.Followers)

	fmt.Fprintf(&b, "## Publish → deliver\n\n")
	fmt.Fprintf(&b, "%d followers of one key on node a (on the single node); %d publishes at %d/s (open loop, up to %d under way), "+
		"each stamped with the wall clock, after warm-up publishes that each reached every follower. "+
		"Delay = follower's receipt − publisher's stamp, over all %d×%d receipts.\n\n",
		r.Followers, r.Publishes, r.Rate, pacedWorkers, r.Publishes, r.Followers)
	b.WriteString("| scenario | receipts | missing | p50 | p99 | p99.9 | max | admin p50 | admin p99 | " + cpuHead + " | redis cmds / publish | broker round trips / publish |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | " + cpuAlign + " | ---: | ---: |\n")
	for _, s := range r.Summary {
		if s.Kind != kindLatency {
			continue
		}
		if s.OKRuns == 0 {
			fmt.Fprintf(&b, "| %s | failed: %s ||||||||||||||\n", s.Scenario, cell(strings.Join(s.Errors, "; ")))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s | %s | %s |\n",
			s.Scenario, s.Deliveries, s.Missing, s.P50Ms, s.P99Ms, s.P999Ms, s.MaxMs, s.AdminP50Ms, s.AdminP99Ms,
			cpuCells(s.CPUPerPublishUs), cmds(s), roundTrips(s))
	}

	fmt.Fprintf(&b, "\n## Publish throughput\n\n")
	fmt.Fprintf(&b, "%d publishes per row, split among the concurrent publishers (each on a keep-alive connection, "+
		"each to a key of its own without followers), posted to node a back to back.\n\n", r.ThroughputPublishes)
	b.WriteString("| config | publishers | publishes/s | admin p50 | admin p99 | " + cpuHead + " | redis cmds / publish | broker round trips / publish |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | " + cpuAlign + " | ---: | ---: |\n")
	for _, s := range r.Summary {
		if s.Kind != kindThroughput {
			continue
		}
		if s.OKRuns == 0 {
			fmt.Fprintf(&b, "| %s | %d | failed: %s |||||||||\n", s.Config, s.Publishers, cell(strings.Join(s.Errors, "; ")))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f ms | %.2f ms | %s | %s | %s |\n",
			s.Config, s.Publishers, s.PublishesPerSec, s.AdminP50Ms, s.AdminP99Ms, cpuCells(s.CPUPerPublishUs), cmds(s), roundTrips(s))
	}

	if len(r.Ratios) > 0 {
		fmt.Fprintf(&b, "\n## Cluster / single\n\n")
		b.WriteString("| measurement | p50 | p99 | p99.9 | publishes/s | admin p50 | admin p99 | server CPU / publish |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, x := range r.Ratios {
			name := x.Scenario
			if x.Kind == kindThroughput {
				name = "throughput, " + publishers(x.Publishers)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.2f× | %.2f× | %.2f× |\n",
				name, times(x.P50), times(x.P99), times(x.P999), times(x.PublishesPerSec), x.AdminP50, x.AdminP99, x.ServerCPUPerPublish)
		}
	}

	var breakdown []string
	for _, s := range r.Summary {
		if len(s.RedisCommandsPerPublishBy) == 0 {
			continue
		}
		name := s.Scenario
		if s.Kind == kindThroughput {
			name = s.Config + " throughput, " + publishers(s.Publishers)
		}
		breakdown = append(breakdown, fmt.Sprintf("- %s: %s\n", name, perCommand(s.RedisCommandsPerPublishBy)))
	}
	if len(breakdown) > 0 {
		breakdown = append(breakdown, "\n(commands under 0.005 per publish left out; results.json has them all.)\n")
	}
	if len(breakdown) > 0 || r.RedisProbe != nil {
		fmt.Fprintf(&b, "\n## Redis commands per publish\n\n")
	}
	if p := r.RedisProbe; p != nil {
		if p.Error != "" {
			fmt.Fprintf(&b, "MONITOR probe failed: %s\n\n", p.Error)
		} else {
			fmt.Fprintf(&b, "MONITOR over %d publishes to node a (one publisher, outside the timed measurements): "+
				"**%.2f commands per publish sent by the nodes** (%s) and %.2f run inside Lua scripts (%s).\n\n",
				p.Publishes, p.ClientPerPublish, perCommand(p.Client), p.ScriptPerPublish, perCommand(p.Script))
		}
	}
	if len(breakdown) > 0 {
		b.WriteString("INFO commandstats, which counts a script's commands as well as the EVALSHA that ran them, by command:\n\n")
		b.WriteString(strings.Join(breakdown, ""))
	}

	if r.Runs > 1 {
		fmt.Fprintf(&b, "\n## Each run\n\n")
		b.WriteString("The medians above come from these; the load average (1 min) when each began shows where other work on the machine fell.\n\n")
		b.WriteString("| measurement | run | load | p50 | p99 | p99.9 | max | publishes/s | admin p50 | admin p99 |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, m := range r.Measurements {
			name := m.Scenario
			if m.Kind == kindThroughput {
				name = m.Config + " throughput, " + publishers(m.Publishers)
			}
			load, _, _ := strings.Cut(m.Load, " ")
			if m.Error != "" {
				fmt.Fprintf(&b, "| %s | %d | %s | failed: %s |||||||\n", name, m.Run, load, cell(m.Error))
				continue
			}
			lat := "| — | — | — | —"
			if m.Kind == kindLatency {
				lat = fmt.Sprintf("| %.2f ms | %.2f ms | %.2f ms | %.2f ms", m.P50Ms, m.P99Ms, m.P999Ms, m.MaxMs)
			}
			fmt.Fprintf(&b, "| %s | %d | %s %s | %.0f | %.2f ms | %.2f ms |\n", name, m.Run, load, lat, m.PublishesPerSec, m.AdminP50Ms, m.AdminP99Ms)
		}
	}

	b.WriteString("\nCPU / publish: utime+stime of each process over the measurement, divided by its publishes " +
		"(a and b the nodes — the single node is a —, redis the redis-server, loadgen this process's followers and publishers); " +
		"in the latency rows it includes delivering to every follower. /proc counts CPU time in 10 ms ticks: " +
		"a figure is good to 10 ms divided by the publishes measured. Redis cmds: the growth of INFO commandstats " +
		"(the run's own INFO left out; commands run by scripts and both nodes' background work, e.g. node announcements, included). " +
		"Broker round trips: the brokers' `publishes`/`round_trips` counters in /push_gateway/stats, summed over the nodes, " +
		"when the stats have them (—: they do not).\n")
	return b.Bytes()
}

// The CPU columns: per publish, of node a, node b, redis-server and this
// process.
const (
	cpuHead  = "CPU / publish: a | b | redis | loadgen"
	cpuAlign = "---: | ---: | ---: | ---:"
)

// cpuCells renders the CPU columns; "—" for a process the configuration
// does not have.
func cpuCells(cpu map[string]float64) string {
	var cells []string
	for _, name := range []string{"a", "b", redisName, loadgenName} {
		if us, ok := cpu[name]; ok {
			cells = append(cells, fmt.Sprintf("%.1f µs", us))
		} else {
			cells = append(cells, "—")
		}
	}
	return strings.Join(cells, " | ")
}

// perCommand renders per-publish counts by command, in name order,
// leaving out those under 0.005 per publish (background work over a
// measurement, which would print as 0.00).
func perCommand(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// publishers names a count of publishers.
func publishers(n int) string {
	if n == 1 {
		return "1 publisher"
	}
	return fmt.Sprintf("%d publishers", n)
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "/") }

func cmds(s Summary) string {
	if s.Config != configCluster {
		return "—"
	}
	return fmt.Sprintf("%.2f", s.RedisCommandsPerPublish)
}

func roundTrips(s Summary) string {
	if s.BrokerRoundTripsPerPublish == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f", *s.BrokerRoundTripsPerPublish)
}

func times(x float64) string {
	if x == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", x)
}

// write prints the report and, with a directory, writes results.json and
// results.md into it.
func (r Results) write(dir string) error {
	md := r.markdown()
	os.Stdout.Write(md)
	if dir == "" {
		return nil
	}
	return report.WriteFiles(dir, r, md)
}
