package main

import (
	"net/url"
	"sync/atomic"
	"testing"
)

func TestKeyOf(t *testing.T) {
	tests := []struct {
		name              string
		key               string
		keys, first, conn int
		want              string
	}{
		{name: "one key", key: "K", keys: 1, first: 5, conn: 7, want: "K"},
		{name: "no key", key: "", keys: 1, conn: 3, want: ""},
		{name: "first of many", key: "bench", keys: 10, conn: 3, want: "bench-3"},
		{name: "wraps", key: "bench", keys: 10, first: 8, conn: 3, want: "bench-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keyOf(tt.key, tt.keys, tt.first, tt.conn); got != tt.want {
				t.Fatalf("keyOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequestURI(t *testing.T) {
	tests := []struct {
		name  string
		url   string
		proto string
		key   string
		since int64
		epoch string
		want  string
	}{
		{name: "as given", url: "ws://h/realtime?sdk_key=A", proto: protoNative, since: -1, want: "/realtime?sdk_key=A"},
		{name: "key replaces", url: "ws://h/realtime?sdk_key=A&sdk_key=B", proto: protoNative, key: "K-1", since: -1, want: "/realtime?sdk_key=K-1"},
		{name: "key added", url: "ws://h/realtime", proto: protoNative, key: "K", since: -1, want: "/realtime?sdk_key=K"},
		{name: "resume", url: "ws://h/realtime?sdk_key=A", proto: protoNative, key: "K", since: 3, epoch: "e1",
			want: "/realtime?epoch=e1&sdk_key=K&since=3"},
		{name: "socketio as given", url: "ws://h/realtime/?EIO=4&transport=websocket", proto: protoSocketIO, key: "K", since: -1,
			want: "/realtime/?EIO=4&transport=websocket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := requestURI(u, tt.proto, tt.key, tt.since, tt.epoch); got != tt.want {
				t.Fatalf("requestURI = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNativeResumeAndResync(t *testing.T) {
	msg := func(seq int64) []byte { return message(seq, 100)[2:] } // the frame's payload
	tests := []struct {
		name     string
		last     int64
		in       [][]byte
		wantLast int64
		gaps     int64
		resyncs  int64
		received int64
	}{
		{name: "replay after since", last: 3, in: [][]byte{msg(4), msg(5)}, wantLast: 5, received: 2},
		{name: "resync then live", last: 3, in: [][]byte{[]byte(`{"type":"resync","sdk_key":"K","epoch":"E","seq":9}`), msg(10)},
			wantLast: 10, resyncs: 1, received: 1},
		{name: "beyond max-seq still tracked", last: 100, in: [][]byte{msg(101), msg(103)}, wantLast: 103, gaps: 1, received: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStats(4)
			st.alive.Store(1)
			c := &conn{lat: make([]atomic.Int64, 5)}
			c.last.Store(tt.last)
			for _, p := range tt.in {
				c.text(p, 1000, st)
			}
			if c.last.Load() != tt.wantLast || st.gaps.Load() != tt.gaps || st.resyncs.Load() != tt.resyncs || st.received.Load() != tt.received {
				t.Fatalf("last %d gaps %d resyncs %d received %d; want %d %d %d %d", c.last.Load(), st.gaps.Load(),
					st.resyncs.Load(), st.received.Load(), tt.wantLast, tt.gaps, tt.resyncs, tt.received)
			}
		})
	}
}
