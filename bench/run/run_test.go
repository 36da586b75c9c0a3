package main

import "testing"

func TestQuantile(t *testing.T) {
	sorted := make([]int64, 1000)
	for i := range sorted {
		sorted[i] = int64(i + 1)
	}
	tests := []struct {
		name   string
		sorted []int64
		q      float64
		want   int64
	}{
		{name: "p50", sorted: sorted, q: 0.5, want: 500},
		{name: "p99", sorted: sorted, q: 0.99, want: 990},
		{name: "p99.9", sorted: sorted, q: 0.999, want: 999},
		{name: "max", sorted: sorted, q: 1, want: 1000},
		{name: "one sample", sorted: []int64{7}, q: 0.999, want: 7},
		{name: "empty", sorted: nil, q: 0.5, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile(tt.sorted, tt.q); got != tt.want {
				t.Fatalf("quantile(%v) = %d, want %d", tt.q, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{name: "odd", in: []float64{3, 1, 2}, want: 2},
		{name: "even", in: []float64{4, 1, 3, 2}, want: 2.5},
		{name: "empty", in: nil, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Fatalf("median = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantNs  []int
		wantErr bool
	}{
		{name: "defaults", args: nil, wantNs: []int{1000, 5000, 10000, 19000}},
		{name: "list", args: []string{"-n", "1000, 19000"}, wantNs: []int{1000, 19000}},
		{name: "over the open-files limit", args: []string{"-n", "20000"}, wantErr: true},
		{name: "unknown server", args: []string{"-servers", "nginx"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !equalInts(o.ns, tt.wantNs) {
				t.Fatalf("ns = %v, want %v", o.ns, tt.wantNs)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
