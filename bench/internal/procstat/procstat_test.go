package procstat

import (
	"errors"
	"strings"
	"testing"
)

func TestStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    float64
		wantErr bool
	}{
		{name: "plain", in: "123 (caddy) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 1000 200",
			want: 3.0},
		{name: "comm with spaces and parens", in: "9 (a b) c) R 1 9 9 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1", want: 0.1},
		{name: "short", in: "9 (x) R 1 2", wantErr: true},
		{name: "no comm", in: "garbage", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statCPU([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStatusField(t *testing.T) {
	status := "Name:\tcaddy\nVmPeak:\t  200 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	tests := []struct {
		name    string
		field   string
		want    int64
		wantErr error
	}{
		{name: "rss", field: "VmRSS:", want: 12345},
		{name: "threads", field: "Threads:", want: 9},
		{name: "absent", field: "VmSwap:", wantErr: ErrNoField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StatusField([]byte(status), tt.field)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("got %d, %v; want %d, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseMemStats(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    MemStats
		wantErr bool
	}{
		{name: "heap page tail", in: "heap profile: 1: 2 [3: 4] @ heap/1048576\n# runtime.MemStats\n# Alloc = 5\n# HeapInuse = 4096\n# Stack = 65536 / 65536\n# MSpan = 1 / 2\n",
			want: MemStats{HeapInuse: 4096, StackInuse: 65536}},
		{name: "missing stack", in: "# HeapInuse = 1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMemStats(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
