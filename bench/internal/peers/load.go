// Package peers puts push_gateway beside its peers from the results the
// benchmark commands wrote: docs/bench/results.json (bench/run: native
// WebSocket against the goroutine-per-connection baseline) and
// docs/bench/socketio/results.json (bench/socketio: push_gateway's
// Socket.IO against socket.io on node). It draws the PNG plots and writes
// peers.md; bench/plots runs it, and bench/run and bench/socketio call
// Refresh after writing their results so that a rerun refreshes both.
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

type sioFile struct {
	Command string `json:"command"`
	Started string `json:"started"`
	Machine struct {
		CPU  string `json:"cpu"`
		CPUs int    `json:"cpus"`
		Kern string `json:"kernel"`
		Go   string `json:"go"`
		Node string `json:"node"`
	} `json:"machine"`
	Servers []struct {
		Server     string  `json:"server"`
		N          int     `json:"n"`
		Error      string  `json:"error"`
		RSSPerConn float64 `json:"rss_per_conn_bytes"`
		Goroutines int     `json:"goroutines_after"`
		P50        float64 `json:"p50_ms"`
		P99        float64 `json:"p99_ms"`
		Last       float64 `json:"time_to_last_ms"`
		CPUPerDel  float64 `json:"cpu_per_delivery_us"`
	} `json:"servers"`
}

// Load reads whichever of root/results.json and root/socketio/results.json
// exist; results with an error are left out, and a file holding none of
// the results expected of it (another command's) is not a source.
func Load(root string) (Data, error) {
	var d Data
	var rf runFile
	path := filepath.Join(root, "results.json")
	switch ok, err := readJSON(path, &rf); {
	case err != nil:
		return d, err
	case ok && len(rf.Results) > 0:
		m := rf.Machine
		d.Sources = append(d.Sources, Source{File: path, Command: rf.Command, Started: rf.Started,
			Machine: fmt.Sprintf("%d × %s, %.1f GiB, Linux %s, %s", m.CPUs, m.Model, float64(m.MemKB)/(1<<20), m.Kern, m.Go)})
		for _, r := range rf.Results {
			name := map[string]string{"push_gateway": Gateway, "baseline": Baseline}[r.Server]
			if r.Error != "" || name == "" {
				continue
			}
			d.Points = append(d.Points, Point{Server: name, N: r.N, RSSPerConn: r.RSSPerConn, Goroutines: r.Goroutines,
				P50: r.Median.P50, P99: r.Median.P99, Last: r.Median.Last, CPUPerDelUS: r.CPUPerDel})
		}
	}
	var sf sioFile
	path = filepath.Join(root, "socketio", "results.json")
	switch ok, err := readJSON(path, &sf); {
	case err != nil:
		return d, err
	case ok && len(sf.Servers) > 0:
		m := sf.Machine
		d.Sources = append(d.Sources, Source{File: path, Command: sf.Command, Started: sf.Started,
			Machine: fmt.Sprintf("%d × %s, Linux %s, %s, node %s", m.CPUs, m.CPU, m.Kern, m.Go, m.Node)})
		for _, r := range sf.Servers {
			name := map[string]string{"push_gateway": GatewaySIO, "socket.io": SocketIO}[r.Server]
			if r.Error != "" || name == "" {
				continue
			}
			d.Points = append(d.Points, Point{Server: name, N: r.N, RSSPerConn: r.RSSPerConn, Goroutines: r.Goroutines,
				P50: r.P50, P99: r.P99, Last: r.Last, CPUPerDelUS: r.CPUPerDel})
		}
	}
	if len(d.Sources) == 0 {
		return d, fmt.Errorf("%s: %w", root, ErrNoResults)
	}
	return d, nil
}

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
