package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// Results is one run of the command: results.json holds it as is.
type Results struct {
	Command             string         `json:"command"`
	Started             string         `json:"started"`
	Seconds             float64        `json:"seconds"`
	Machine             report.Machine `json:"machine"`
	Followers           int            `json:"followers"`
	Rate                int            `json:"rate"`
	DurationSeconds     float64        `json:"duration_seconds"`
	Publishes           int            `json:"publishes"`            // measured per latency measurement
	ThroughputPublishes int            `json:"throughput_publishes"` // per throughput measurement
	Runs                int            `json:"runs"`
	// The machine's load averages (1, 5, 15 min) when the measurements
	// began and ended: the run shares the machine.
	LoadStart    string        `json:"loadavg_start"`
	LoadEnd      string        `json:"loadavg_end"`
	Summary      []Summary     `json:"summary"` // medians over the runs
	Ratios       []Ratio       `json:"ratios"`  // cluster / single, of the medians
	Measurements []Measurement `json:"measurements"`
	// RedisProbe is what MONITOR showed of a few cluster publishes: the
	// commands the nodes sent and those their scripts ran.
	RedisProbe *Probe `json:"redis_probe,omitempty"`
}

// Measurement is one latency or throughput measurement of one run.
type Measurement struct {
	Config     string `json:"config"`
	Kind       string `json:"kind"`
	Scenario   string `json:"scenario"`
	Publishers int    `json:"publishers,omitempty"` // throughput: concurrent publishers
	Run        int    `json:"run,omitempty"`
	// Load is the machine's load averages when the measurement began.
	Load            string  `json:"loadavg,omitempty"`
	Publishes       int     `json:"publishes"`
	Seconds         float64 `json:"seconds"`
	PublishesPerSec float64 `json:"publishes_per_sec"`
	// Latency: followers, their timed receipts and the publish→deliver
	// quantiles.
	Followers  int     `json:"followers,omitempty"`
	Deliveries int64   `json:"deliveries,omitempty"`
	Missing    int64   `json:"missing,omitempty"`
	P50Ms      float64 `json:"p50_ms,omitempty"`
	P99Ms      float64 `json:"p99_ms,omitempty"`
	P999Ms     float64 `json:"p999_ms,omitempty"`
	MaxMs      float64 `json:"max_ms,omitempty"`
	// The admin's answer time to a publish.
	AdminP50Ms float64 `json:"admin_p50_ms"`
	AdminP99Ms float64 `json:"admin_p99_ms"`
	// CPU time per publish (µs) by process: the nodes (a, b), redis and
	// loadgen, this process.
	CPUPerPublishUs map[string]float64 `json:"cpu_per_publish_us"`
	// Redis commands per publish, from INFO commandstats (both nodes'
	// background work included), and their breakdown.
	RedisCommandsPerPublish float64          `json:"redis_commands_per_publish,omitempty"`
	RedisCommands           map[string]int64 `json:"redis_commands,omitempty"`
	// From the brokers' own counters in /push_gateway/stats, when they
	// have them: publishes they counted, round trips per publish.
	BrokerPublishes            int64    `json:"broker_publishes,omitempty"`
	BrokerRoundTripsPerPublish *float64 `json:"broker_round_trips_per_publish,omitempty"`
	Error                      string   `json:"error,omitempty"`
}

// Summary is the medians of one measurement's runs that succeeded.
type Summary struct {
	Measurement
	// RedisCommandsPerPublishBy is the median per publish of each
	// command, from the runs' RedisCommands.
	RedisCommandsPerPublishBy map[string]float64 `json:"redis_commands_per_publish_by,omitempty"`
	OKRuns                    int                `json:"ok_runs"`
	Errors                    []string           `json:"errors,omitempty"`
}

// Ratio compares a cluster summary with the single node's of the same
// kind (and publishers): cluster / single.
type Ratio struct {
	Kind       string `json:"kind"`
	Scenario   string `json:"scenario"`
	Publishers int    `json:"publishers,omitempty"`
	// Latency quantiles (latency) or publishes per second (throughput).
	P50             float64 `json:"p50,omitempty"`
	P99             float64 `json:"p99,omitempty"`
	P999            float64 `json:"p999,omitempty"`
	PublishesPerSec float64 `json:"publishes_per_sec,omitempty"`
	AdminP50        float64 `json:"admin_p50"`
	AdminP99        float64 `json:"admin_p99"`
	// Servers' CPU per publish: every node and redis-server.
	ServerCPUPerPublish float64 `json:"server_cpu_per_publish"`
}

// group is what identifies one measurement across runs.
func (m Measurement) group() string {
	return fmt.Sprintf("%s/%s/%d", m.Kind, m.Scenario, m.Publishers)
}

// serverCPU answers the CPU per publish of every server process.
func (m Measurement) serverCPU() float64 {
	var s float64
	for name, us := range m.CPUPerPublishUs {
		if name != loadgenName {
			s += us
		}
	}
	return s
}

// summarize fills Summary and Ratios from Measurements.
func (r *Results) summarize() {
	var order []string
	groups := make(map[string][]Measurement)
	for _, m := range r.Measurements {
		g := m.group()
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], m)
	}
	r.Summary = r.Summary[:0]
	for _, g := range order {
		r.Summary = append(r.Summary, summarizeRuns(groups[g]))
	}
	r.Ratios = ratios(r.Summary)
}

// summarizeRuns answers the medians of runs' figures, over the runs
// without an error.
func summarizeRuns(runs []Measurement) Summary {
	first := runs[0]
	s := Summary{Measurement: Measurement{Config: first.Config, Kind: first.Kind, Scenario: first.Scenario,
		Publishers: first.Publishers, Publishes: first.Publishes, Followers: first.Followers}}
	var ok []Measurement
	for _, m := range runs {
		if m.Error != "" {
			s.Errors = append(s.Errors, fmt.Sprintf("run %d: %s", m.Run, m.Error))
			continue
		}
		ok = append(ok, m)
	}
	s.OKRuns = len(ok)
	if len(ok) == 0 {
		return s
	}
	med := func(f func(Measurement) float64) float64 {
		v := make([]float64, len(ok))
		for i, m := range ok {
			v[i] = f(m)
		}
		return report.Median(v)
	}
	x := &s.Measurement
	x.Seconds = med(func(m Measurement) float64 { return m.Seconds })
	x.PublishesPerSec = med(func(m Measurement) float64 { return m.PublishesPerSec })
	x.Deliveries = int64(med(func(m Measurement) float64 { return float64(m.Deliveries) }))
	x.Missing = int64(med(func(m Measurement) float64 { return float64(m.Missing) }))
	x.P50Ms = med(func(m Measurement) float64 { return m.P50Ms })
	x.P99Ms = med(func(m Measurement) float64 { return m.P99Ms })
	x.P999Ms = med(func(m Measurement) float64 { return m.P999Ms })
	x.MaxMs = med(func(m Measurement) float64 { return m.MaxMs })
	x.AdminP50Ms = med(func(m Measurement) float64 { return m.AdminP50Ms })
	x.AdminP99Ms = med(func(m Measurement) float64 { return m.AdminP99Ms })
	x.RedisCommandsPerPublish = med(func(m Measurement) float64 { return m.RedisCommandsPerPublish })
	x.BrokerPublishes = int64(med(func(m Measurement) float64 { return float64(m.BrokerPublishes) }))
	x.CPUPerPublishUs = medianMap(ok, func(m Measurement) map[string]float64 { return m.CPUPerPublishUs })
	// The commands' breakdown, per publish.
	perPublish := func(m Measurement) map[string]float64 {
		out := make(map[string]float64, len(m.RedisCommands))
		for k, n := range m.RedisCommands {
			out[k] = float64(n) / float64(max(m.Publishes, 1))
		}
		return out
	}
	s.RedisCommandsPerPublishBy = medianMap(ok, perPublish)
	var rts []float64
	for _, m := range ok {
		if m.BrokerRoundTripsPerPublish != nil {
			rts = append(rts, *m.BrokerRoundTripsPerPublish)
		}
	}
	if len(rts) > 0 {
		v := report.Median(rts)
		x.BrokerRoundTripsPerPublish = &v
	}
	return s
}

// medianMap answers, per key, the median over the runs that have it.
func medianMap(runs []Measurement, f func(Measurement) map[string]float64) map[string]float64 {
	vals := make(map[string][]float64)
	for _, m := range runs {
		for k, v := range f(m) {
			vals[k] = append(vals[k], v)
		}
	}
	if len(vals) == 0 {
		return nil
	}
	out := make(map[string]float64, len(vals))
	for k, v := range vals {
		out[k] = report.Median(v)
	}
	return out
}

// ratios compares every cluster summary with the single node's.
func ratios(sums []Summary) []Ratio {
	single := make(map[string]Summary)
	for _, s := range sums {
		if s.Config == configSingle && s.OKRuns > 0 {
			single[fmt.Sprintf("%s/%d", s.Kind, s.Publishers)] = s
		}
	}
	var out []Ratio
	for _, c := range sums {
		base, ok := single[fmt.Sprintf("%s/%d", c.Kind, c.Publishers)]
		if c.Config != configCluster || c.OKRuns == 0 || !ok {
			continue
		}
		r := Ratio{Kind: c.Kind, Scenario: c.Scenario, Publishers: c.Publishers,
			AdminP50: div(c.AdminP50Ms, base.AdminP50Ms), AdminP99: div(c.AdminP99Ms, base.AdminP99Ms),
			ServerCPUPerPublish: div(c.serverCPU(), base.serverCPU())}
		if c.Kind == kindLatency {
			r.P50, r.P99, r.P999 = div(c.P50Ms, base.P50Ms), div(c.P99Ms, base.P99Ms), div(c.P999Ms, base.P999Ms)
		} else {
			r.PublishesPerSec = div(c.PublishesPerSec, base.PublishesPerSec)
		}
		out = append(out, r)
	}
	return out
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// cpuLine renders CPU per publish by process, in a fixed order.
func cpuLine(cpu map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(cpu)) {
		parts = append(parts, fmt.Sprintf("%s %.1f µs", k, cpu[k]))
	}
	return strings.Join(parts, ", ")
}
