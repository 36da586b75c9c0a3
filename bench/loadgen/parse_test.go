package main

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

func TestParseFrame(t *testing.T) {
	text := serverFrame(true, opText, []byte("hello"))
	long := serverFrame(true, opText, bytes.Repeat([]byte("x"), 200))
	masked := clientFrame(opText, []byte("abc"))
	tests := []struct {
		name    string
		in      []byte
		wantN   int
		wantOp  byte
		want    []byte
		wantErr error
	}{
		{name: "whole", in: text, wantN: len(text), wantOp: opText, want: []byte("hello")},
		{name: "followed by more", in: append(append([]byte{}, text...), 0x81), wantN: len(text), wantOp: opText, want: []byte("hello")},
		{name: "one byte", in: text[:1]},
		{name: "header only", in: text[:2]},
		{name: "payload cut", in: text[:len(text)-1]},
		{name: "16-bit length cut", in: long[:3]},
		{name: "16-bit length", in: long, wantN: len(long), wantOp: opText, want: bytes.Repeat([]byte("x"), 200)},
		{name: "masked", in: masked, wantN: len(masked), wantOp: opText, want: []byte("abc")},
		{name: "reserved bits", in: []byte{0xF1, 0}, wantErr: ErrProtocol},
		{name: "long ping", in: serverFrame(true, opPing, bytes.Repeat([]byte("p"), 126)), wantErr: ErrProtocol},
		{name: "too large", in: []byte{0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0}, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, op, p, n, err := parseFrame(append([]byte{}, tt.in...))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n != tt.wantN {
				t.Fatalf("n = %d, want %d", n, tt.wantN)
			}
			if n > 0 && (op != tt.wantOp || !bytes.Equal(p, tt.want)) {
				t.Fatalf("got op %d %q, want op %d %q", op, p, tt.wantOp, tt.want)
			}
		})
	}
}

// message is a native broadcast as the servers send it.
func message(seq int64, t int64) []byte {
	return serverFrame(true, opText, fmt.Appendf(nil,
		`{"type":"message","sdk_key":"K","epoch":"E","seq":%d,"event":"update","data":{"t":%d},"ts":1}`, seq, t))
}

func TestFeedSplitsAndJoins(t *testing.T) {
	two := append(message(1, 100), message(2, 200)...)
	frag := append(serverFrame(false, opText, []byte(`{"type":"message","seq":1,`)),
		serverFrame(true, opContinuation, []byte(`"data":{"t":100}}`))...)
	tests := []struct {
		name   string
		chunks [][]byte
		want   []int64 // latency by seq, index 1..
	}{
		{name: "two frames in one read", chunks: [][]byte{two}, want: []int64{900, 800}},
		{name: "byte by byte", chunks: split(two, 1), want: []int64{900, 800}},
		{name: "cut inside the second", chunks: [][]byte{two[:len(two)-5], two[len(two)-5:]}, want: []int64{900, 800}},
		{name: "fragmented message", chunks: [][]byte{frag}, want: []int64{900}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStats(4)
			st.alive.Store(1)
			c := &conn{lat: make([]atomic.Int64, 5)}
			c.raw.fd = -1
			for _, ch := range tt.chunks {
				if code, done := c.feed(append([]byte{}, ch...), 1000, st); done {
					t.Fatalf("closed: %s", code)
				}
			}
			for i, want := range tt.want {
				if got := c.lat[i+1].Load(); got != want {
					t.Errorf("latency of seq %d = %d, want %d", i+1, got, want)
				}
			}
			if len(c.raw.pending) != 0 || st.gaps.Load() != 0 || st.duplicates.Load() != 0 {
				t.Fatalf("pending %d gaps %d dups %d", len(c.raw.pending), st.gaps.Load(), st.duplicates.Load())
			}
		})
	}
}

func split(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}
