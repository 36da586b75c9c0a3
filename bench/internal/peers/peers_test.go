package peers

import (
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const runJSON = `{"command": "go run ./bench/run -out docs/bench", "started": "2026-11-23T13:59:21Z",
 "machine": {"cpus": 2, "cpu_model": "AMD EPYC", "mem_total_kb": 24684084, "kernel": "6.18", "go_version": "go1.26", "node_version": "v20"},
 "results": [
  {"server": "push_gateway", "n": 1000, "rss_per_conn_bytes": 1500, "goroutines_connected": 21,
   "median": {"p50_ms": 4, "p99_ms": 8, "last_ms": 9}, "server_cpu_us_per_delivery": 10},
  {"server": "baseline", "n": 1000, "rss_per_conn_bytes": 30000, "goroutines_connected": 2006,
   "median": {"p50_ms": 5, "p99_ms": 10, "last_ms": 12}, "server_cpu_us_per_delivery": 15},
  {"server": "push_gateway", "n": 10000, "rss_per_conn_bytes": 1400, "goroutines_connected": 21,
   "median": {"p50_ms": 40, "p99_ms": 70, "last_ms": 72}, "server_cpu_us_per_delivery": 9},
  {"server": "baseline", "n": 10000, "error": "only 9000 connected"},
  {"server": "push_gateway_socketio", "n": 10000, "rss_per_conn_bytes": 1700, "goroutines_connected": 22,
   "median": {"p50_ms": 47, "p99_ms": 82, "last_ms": 83}, "server_cpu_us_per_delivery": 9.4},
  {"server": "socketio", "n": 10000, "rss_per_conn_bytes": 15700,
   "median": {"p50_ms": 103, "p99_ms": 186, "last_ms": 188}, "server_cpu_us_per_delivery": 17.2}
 ]}`

// writeInputs lays out root like docs/bench with results.json, if given.
func writeInputs(tb testing.TB, run string) string {
	tb.Helper()
	root := tb.TempDir()
	if run != "" {
		if err := os.WriteFile(filepath.Join(root, "results.json"), []byte(run), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name         string
		run          string
		points       int
		wantErr      error
		wantDecodeEr bool
	}{
		{name: "four servers, one failed", run: runJSON, points: 5},
		{name: "missing", wantErr: ErrNoResults},
		{name: "no results", run: `{"results": []}`, wantErr: ErrNoResults},
		{name: "broken json", run: "{", wantDecodeEr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Load(writeInputs(t, tt.run))
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			case tt.wantDecodeEr:
				if err == nil || !strings.Contains(err.Error(), "decoding") {
					t.Fatalf("err = %v, want a decoding error", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if len(d.Points) != tt.points || len(d.Sources) != 1 {
				t.Errorf("%d points from %d sources, want %d from 1", len(d.Points), len(d.Sources), tt.points)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	d, err := Load(writeInputs(t, runJSON))
	if err != nil {
		t.Fatal(err)
	}
	md := d.Markdown(time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC))
	tests := []struct {
		name, want string
	}{
		{name: "date", want: "Written 2026-11-23T17:00:00Z"},
		{name: "command", want: "`go run ./bench/run -out docs/bench`"},
		{name: "machine", want: "2 × AMD EPYC"},
		{name: "every server at 10k, and the ratios", want: "| 10000 | RSS / idle conn | 1.4 KB | — | 1.7 KB | 15.7 KB | — | 0.09 | 0.11 | — |"},
		{name: "ratio to the baseline", want: "| 1000 | CPU / delivery | 10.0 µs | 15.0 µs | — | — | 0.67 |"},
		{name: "node has no goroutines", want: "| 10000 | goroutines | 21 | — | 22 | — |"},
		{name: "the plots", want: "![RSS per idle connection against N](cost-per-connection.png)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(md, tt.want) {
				t.Errorf("peers.md lacks %q:\n%s", tt.want, md)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	root := writeInputs(t, runJSON)
	if err := Refresh(root); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CostPlot, LatencyPlot} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(root, name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := png.Decode(f); err != nil {
				t.Errorf("not a PNG: %v", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(root, Table)); err != nil {
		t.Error(err)
	}
}

func TestAfterRun(t *testing.T) {
	tests := []struct {
		name string
		run  string
		want bool // plots written
	}{
		{name: "results there", run: runJSON, want: true},
		{name: "no results: logged, nothing written", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeInputs(t, tt.run)
			AfterRun(root)
			_, err := os.Stat(filepath.Join(root, CostPlot))
			if got := err == nil; got != tt.want {
				t.Errorf("plot written: %v, want %v (stat: %v)", got, tt.want, err)
			}
		})
	}
}
