package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPercentileMs(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want float64
	}{
		{name: "empty", in: nil, p: 50, want: 0},
		{name: "one", in: ms(7), p: 99, want: 7},
		{name: "median of unsorted", in: ms(5, 1, 4, 2, 3), p: 50, want: 3},
		{name: "p99 of 100 is the 99th", in: ms(seq(100)...), p: 99, want: 99},
		{name: "max", in: ms(3, 9, 1), p: 100, want: 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentileMs(tc.in, tc.p); got != tc.want {
				t.Fatalf("percentileMs(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestUintAfter(t *testing.T) {
	tests := []struct {
		name, in, field string
		want            uint64
		ok              bool
	}{
		{name: "native message", in: `{"type":"message","sdk_key":"k","epoch":"e","seq":42,"event":"update","data":{"t":1700000000123456789},"ts":1}`, field: `"seq":`, want: 42, ok: true},
		{name: "stamp", in: `{"t":1700000000123456789}`, field: `"t":`, want: 1700000000123456789, ok: true},
		{name: "absent", in: `{"type":"pong"}`, field: `"seq":`},
		{name: "not a number", in: `{"seq":"x"}`, field: `"seq":`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := uintAfter([]byte(tc.in), tc.field)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("uintAfter = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{name: "defaults", args: nil},
		{name: "one transport", args: []string{"-transports", "sse", "-n", "10"}},
		{name: "unknown transport", args: []string{"-transports", "socketio"}, wantErr: true},
		{name: "too many clients", args: []string{"-n", "7000"}, wantErr: true},
		{name: "no publishes", args: []string{"-publishes", "0"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if tc.wantErr {
				if !errors.Is(err, ErrBadFlag) {
					t.Fatalf("err = %v, want ErrBadFlag", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o.transports) == 0 || o.n < 1 {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

func TestMarkdownShowsFailures(t *testing.T) {
	r := Results{Command: "go run ./bench/transports", N: 2, Publishes: 1, Transports: []TransportResult{
		{Transport: transportWS, RSSPerConnBytes: 2000, P99Ms: 3},
		{Transport: transportPoll, Error: "a|b"},
	}}
	md := string(r.markdown())
	for _, want := range []string{"| websocket | 0 | 2.00 KB |", "| poll | failed: a/b |"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
}
