package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	seq := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(i + 1)
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []int64
		q      float64
		want   int64
	}{
		{name: "empty", sorted: nil, q: 0.5, want: 0},
		{name: "one sample", sorted: []int64{7}, q: 0.999, want: 7},
		{name: "median of odd", sorted: []int64{1, 2, 3, 4, 5}, q: 0.5, want: 3},
		{name: "p99 of 100 is the 99th", sorted: seq(100), q: 0.99, want: 99},
		{name: "p50 of 1000", sorted: seq(1000), q: 0.5, want: 500},
		{name: "p99 of 1000", sorted: seq(1000), q: 0.99, want: 990},
		{name: "p99.9 of 1000", sorted: seq(1000), q: 0.999, want: 999},
		{name: "p99 of 10000", sorted: seq(10000), q: 0.99, want: 9900},
		{name: "max", sorted: []int64{1, 3, 9}, q: 1, want: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quantile(tt.sorted, tt.q); got != tt.want {
				t.Fatalf("Quantile(%v) = %d, want %d", tt.q, got, tt.want)
			}
		})
	}
	// Durations too: the transports command keeps its delays as such.
	if got := Quantile([]time.Duration{time.Millisecond, 2 * time.Millisecond}, 1); got != 2*time.Millisecond {
		t.Fatalf("Quantile of durations = %v", got)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{name: "empty", in: nil, want: 0},
		{name: "one", in: []float64{3}, want: 3},
		{name: "odd", in: []float64{3, 1, 2}, want: 2},
		{name: "even", in: []float64{4, 1, 3, 2}, want: 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			if got := Median(in); got != tt.want {
				t.Fatalf("Median(%v) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("Median reordered its argument: %v", in)
				}
			}
		})
	}
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := WriteFiles(dir, map[string]int{"n": 2}, []byte("# md\n")); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(js) != "{\n  \"n\": 2\n}\n" {
		t.Fatalf("results.json = %q", js)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil || string(md) != "# md\n" {
		t.Fatalf("results.md = %q, %v", md, err)
	}
}

func TestMachineJSON(t *testing.T) {
	// Commands embed Machine and add fields; the embedded fields come first.
	type withNode struct {
		Machine
		Node string `json:"node"`
	}
	b, err := json.Marshal(withNode{Machine: Machine{CPU: "c", CPUs: 2, Kernel: "k", Go: "g"}, Node: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"cpu":"c","cpus":2,"kernel":"k","go":"g","node":"v"}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}
