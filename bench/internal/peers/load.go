// Package peers puts push_gateway beside its peers from the results
// bench/run wrote (docs/bench/results.json: push_gateway native and
// Socket.IO, the goroutine-per-connection baseline and socket.io on node,
// in one run). It draws the PNG plots and writes peers.md; bench/plots runs
// it, and bench/run calls AfterRun after writing its results.
package peers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNoResults is returned when neither input file exists.
var ErrNoResults = errors.New("no results.json to plot")

// The servers, in the order tables and legends show them.
const (
	Gateway    = "push_gateway"
	Baseline   = "baseline (gorilla, goroutines)"
	GatewaySIO = "push_gateway Socket.IO"
	SocketIO   = "socket.io 4.8.4 (node)"
)

// Servers lists the four in display order.
var Servers = []string{Gateway, Baseline, GatewaySIO, SocketIO}

// Point is one server at one N.
type Point struct {
	Server         string
	N              int
	RSSPerConn     float64 // bytes of RSS per idle connection
	Goroutines     int     // with N connected; 0: not measured (node)
	P50, P99, Last float64 // one broadcast to all N, ms (medians over broadcasts)
	CPUPerDelUS    float64 // server CPU per delivery, µs
}

// Source says where a set of points came from.
type Source struct {
	File, Command, Started, Machine string
}

// Data is everything loaded.
type Data struct {
	Points  []Point
	Sources []Source
}

// runFile and sioFile are the parts of the two commands' results.json
// read here (declared apart so that this package needs neither command).
type runFile struct {
	Command string `json:"command"`
	Started string `json:"started"`
	Machine struct {
		CPUs  int    `json:"cpus"`
		Model string `json:"cpu_model"`
		MemKB int64  `json:"mem_total_kb"`
		Kern  string `json:"kernel"`
		Go    string `json:"go_version"`
		Node  string `json:"node_version"`
	} `json:"machine"`
	Results []struct {
		Server     string  `json:"server"`
		N          int     `json:"n"`
		Error      string  `json:"error"`
		RSSPerConn float64 `json:"rss_per_conn_bytes"`
		Goroutines int     `json:"goroutines_connected"`
		Median     struct {
			P50  float64 `json:"p50_ms"`
			P99  float64 `json:"p99_ms"`
			Last float64 `json:"last_ms"`
		} `json:"median"`
		CPUPerDel float64 `json:"server_cpu_us_per_delivery"`
	} `json:"results"`
}

// Load reads root/results.json (bench/run's); results with an error are
// left out.
func Load(root string) (Data, error) {
	var d Data
	var rf runFile
	path := filepath.Join(root, "results.json")
	ok, err := readJSON(path, &rf)
	if err != nil {
		return d, err
	}
	if !ok || len(rf.Results) == 0 {
		return d, fmt.Errorf("%s: %w", root, ErrNoResults)
	}
	m := rf.Machine
	d.Sources = append(d.Sources, Source{File: path, Command: rf.Command, Started: rf.Started,
		Machine: fmt.Sprintf("%d × %s, %.1f GiB, Linux %s, %s, node %s", m.CPUs, m.Model, float64(m.MemKB)/(1<<20), m.Kern, m.Go, m.Node)})
	for _, r := range rf.Results {
		name := byID[r.Server]
		if r.Error != "" || name == "" {
			continue
		}
		d.Points = append(d.Points, Point{Server: name, N: r.N, RSSPerConn: r.RSSPerConn, Goroutines: r.Goroutines,
			P50: r.Median.P50, P99: r.Median.P99, Last: r.Median.Last, CPUPerDelUS: r.CPUPerDel})
	}
	return d, nil
}

// byID maps bench/run's server names to the display names.
var byID = map[string]string{"push_gateway": Gateway, "baseline": Baseline, "push_gateway_socketio": GatewaySIO, "socketio": SocketIO}

// readJSON decodes path into v; false without error when there is no file.
func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decoding %s: %w", path, err)
	}
	return true, nil
}

// find answers server's point at n.
func (d Data) find(server string, n int) (Point, bool) {
	for _, p := range d.Points {
		if p.Server == server && p.N == n {
			return p, true
		}
	}
	return Point{}, false
}

// series answers server's points in increasing N.
func (d Data) series(server string) []Point {
	var out []Point
	for _, n := range d.ns() {
		if p, ok := d.find(server, n); ok {
			out = append(out, p)
		}
	}
	return out
}
