package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantNs      []int
		wantServers []string
		wantErr     bool
	}{
		{name: "defaults: every server", args: nil, wantNs: []int{1000, 5000, 10000, 19000}, wantServers: allServers},
		{name: "list", args: []string{"-n", "1000, 19000", "-servers", "socketio,push_gateway"},
			wantNs: []int{1000, 19000}, wantServers: []string{nameSocketIO, nameGateway}},
		{name: "over the open-files limit", args: []string{"-n", "20000"}, wantErr: true},
		{name: "unknown server", args: []string{"-servers", "nginx"}, wantErr: true},
		{name: "no repeat", args: []string{"-repeat", "0"}, wantErr: true},
		{name: "storm past the queue", args: []string{"-storm", "300"}, wantErr: true},
		{name: "no steady rate", args: []string{"-steady-rate", "0"}, wantErr: true},
		{name: "no steady load", args: []string{"-steady-keys", "0"}, wantNs: []int{1000, 5000, 10000, 19000}, wantServers: allServers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !slices.Equal(o.ns, tt.wantNs) || !slices.Equal(o.servers, tt.wantServers) {
				t.Fatalf("ns = %v, servers = %v; want %v, %v", o.ns, o.servers, tt.wantNs, tt.wantServers)
			}
		})
	}
}

func TestMedians(t *testing.T) {
	runs := []Result{
		{Server: nameGateway, N: 10, Repeat: 1, RSSPerConnBytes: 900, Lost: 0, Median: Broadcast{P99MS: 3}, Steady: Steady{P99MS: 2}},
		{Server: nameBaseline, N: 10, Repeat: 1, Error: "boom"},
		{Server: nameGateway, N: 10, Repeat: 2, RSSPerConnBytes: 1100, Lost: 2, Median: Broadcast{P99MS: 9}, Steady: Steady{P99MS: 4}},
		{Server: nameGateway, N: 10, Repeat: 3, RSSPerConnBytes: 1000, Lost: 0, Median: Broadcast{P99MS: 4}, Steady: Steady{P99MS: 3}},
		{Server: nameGateway, N: 10, Repeat: 4, Error: "failed run"},
	}
	got := medians(runs)
	if len(got) != 2 {
		t.Fatalf("%d results, want 2 (one per server and N)", len(got))
	}
	g, b := got[0], got[1]
	tests := []struct {
		name      string
		got, want float64
	}{
		{name: "RSS median", got: g.RSSPerConnBytes, want: 1000},
		{name: "nested broadcast median", got: g.Median.P99MS, want: 4},
		{name: "nested steady median", got: g.Steady.P99MS, want: 3},
		{name: "lost is the worst run's", got: float64(g.Lost), want: 2},
		{name: "repeat cleared", got: float64(g.Repeat), want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if g.Error != "" || b.Error != "boom" {
		t.Errorf("errors %q, %q: want none for a server with good runs, the error for one without", g.Error, b.Error)
	}
}

func TestHistQuantile(t *testing.T) {
	h := hist{counts: map[float64]int64{10: 50, 20: 40, 100: 9, 5000: 1}}
	tests := []struct {
		name string
		q    float64
		want float64
	}{
		{name: "median", q: 0.5, want: 10},
		{name: "p90", q: 0.9, want: 20},
		{name: "p99", q: 0.99, want: 100},
		{name: "max", q: 1, want: 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.quantile(tt.q); got != tt.want {
				t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
	if got := (hist{counts: map[float64]int64{}}).quantile(0.99); got != 0 {
		t.Errorf("empty histogram: %v, want 0", got)
	}
}

func TestMarkdown(t *testing.T) {
	gw := Result{Server: nameGateway, N: 19000, Connected: 19000, RSSPerConnBytes: 900, GoroutinesIdleN: 22,
		Broadcasts: []Broadcast{{}}, Median: Broadcast{P99MS: 100, LastMS: 110}, ServerCPUPerDelUS: 10,
		Burst: 50, BurstDelPS: 500000, BurstRSSGrowthPct: 2,
		Storm:  Storm{Connected: 19000, Seconds: 2, PerS: 9500, Resumes: true},
		Steady: Steady{Keys: 100, Rate: 300, Deliveries: 57000, P99MS: 3}}
	bl := Result{Server: nameBaseline, N: 19000, Connected: 19000, RSSPerConnBytes: 22000, GoroutinesIdleN: 38006,
		Broadcasts: []Broadcast{{}}, Median: Broadcast{P99MS: 200, LastMS: 220}, ServerCPUPerDelUS: 15,
		Burst: 50, BurstDelPS: 100000,
		Storm:  Storm{Connected: 19000, Seconds: 4, PerS: 4750, Resumes: true, Lost: 95000},
		Steady: Steady{Keys: 100, Rate: 300, Deliveries: 57000, P99MS: 4}}
	sio := Result{Server: nameSocketIO, N: 19000, Error: "did not start"}
	r := report{Results: []Result{gw, bl, sio}, Runs: []Result{gw, bl, sio}}
	md := r.markdown()
	for _, want := range []string{
		"| 19000 | push_gateway | 19000 | 900 |",
		"### push_gateway ÷ baseline (gorilla, goroutines)",
		"| 19000 | 0.041 | 0.00058 | 0.50 | 0.50 | 0.67 | 5.00 | 2.00 | 0.75 |",
		"| RSS per idle connection ≤ 1 KiB | 900 B | met |",
		"| broadcast CPU/delivery ≤ 1.2 × bare-server floor (9.5 µs) | 10.00 µs (1.05 ×) | met |",
		"| burst deliveries/s ≥ 2 × baseline's | 500000 vs 100000 (5.00 ×) | met |",
		"| 19000 | baseline (gorilla, goroutines) | 19000 | 4.000 | 4750 |",
		"socket.io 4.8.4 (node) n=19000 run 0: did not start",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "### push_gateway ÷ socket.io") {
		t.Error("a ratio table against a server that failed")
	}
}
