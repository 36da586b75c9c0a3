package main

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
)

// socketPair answers the two ends of a non-blocking stream socket pair,
// closed when the test ends.
func socketPair(tb testing.TB) (int, int) {
	tb.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = syscall.Close(fds[0]); _ = syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ns   string
		want sioPacket
	}{
		{name: "open", in: `0{"sid":"x","pingInterval":25000}`, ns: "/realtime", want: sioPacket{kind: pktOpen}},
		{name: "engine close", in: `1`, ns: "/realtime", want: sioPacket{kind: pktClose}},
		{name: "ping", in: `2`, ns: "/realtime", want: sioPacket{kind: pktPing}},
		{name: "pong is ignored", in: `3`, ns: "/realtime"},
		{name: "empty", in: ``, ns: "/realtime"},
		{name: "bare 4", in: `4`, ns: "/realtime"},
		{name: "connected", in: `40/realtime,{"sid":"y"}`, ns: "/realtime", want: sioPacket{kind: pktConnected}},
		{name: "connected on /", in: `40{"sid":"y"}`, ns: "/", want: sioPacket{kind: pktConnected}},
		{name: "other namespace", in: `40/other,{"sid":"y"}`, ns: "/realtime"},
		{name: "namespace sharing the prefix", in: `40/realtimex,{"sid":"y"}`, ns: "/realtime"},
		{name: "disconnect", in: `41/realtime,`, ns: "/realtime", want: sioPacket{kind: pktDisconnect}},
		{name: "disconnect without comma", in: `41/realtime`, ns: "/realtime", want: sioPacket{kind: pktDisconnect}},
		{name: "connect error", in: `44/realtime,{"message":"no"}`, ns: "/realtime", want: sioPacket{kind: pktConnectError}},
		{name: "registered", in: `42/realtime,["update",""]`, ns: "/realtime", want: sioPacket{kind: pktRegistered}},
		{name: "registered on /", in: `42["update",""]`, ns: "/", want: sioPacket{kind: pktRegistered}},
		{name: "update", in: `42/realtime,["update",{"i":7,"t":1732300000123456789}]`, ns: "/realtime",
			want: sioPacket{kind: pktUpdate, seq: 7, stamp: 1732300000123456789, hasSeq: true, hasStamp: true}},
		{name: "update fields reversed", in: `42/realtime,["update",{"t":5,"i":70000}]`, ns: "/realtime",
			want: sioPacket{kind: pktUpdate, seq: 70000, stamp: 5, hasSeq: true, hasStamp: true}},
		{name: "update without stamp", in: `42/realtime,["update",{"i":3}]`, ns: "/realtime",
			want: sioPacket{kind: pktUpdate, seq: 3, hasSeq: true}},
		{name: "update without seq", in: `42/realtime,["update",{"x":1}]`, ns: "/realtime", want: sioPacket{kind: pktUpdate}},
		{name: "update with an ack id", in: `42/realtime,5["update",""]`, ns: "/realtime"},
		{name: "other event", in: `42/realtime,["hello",{"i":1}]`, ns: "/realtime"},
		{name: "binary event", in: `451-/realtime,["update",{"_placeholder":true,"num":0}]`, ns: "/realtime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify([]byte(tt.in), tt.ns); got != tt.want {
				t.Fatalf("classify(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{`0{"sid":"x"}`, `2`, `40/realtime,{}`, `41/realtime`, `42/realtime,["update",""]`,
		`42/realtime,["update",{"i":7,"t":17}]`, `42["update",{"i":-1,"t":"x"}]`, `44/realtime,`, `4`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		in := bytes.Clone(msg)
		for _, ns := range []string{"/realtime", "/"} {
			p := classify(msg, ns)
			if !bytes.Equal(msg, in) {
				t.Fatal("classify changed its input")
			}
			if p.kind != pktUpdate && (p.hasSeq || p.hasStamp) {
				t.Fatalf("%q: fields on a non-update %+v", msg, p)
			}
			if p.kind > pktUpdate {
				t.Fatalf("%q: unknown kind %d", msg, p.kind)
			}
			// Whatever comes, a live connection survives it or ends cleanly.
			st := newStats(4)
			st.alive.Store(1)
			c := &conn{lat: make([]atomic.Int64, 5), sio: newSIOFrames(ns), ns: ns}
			c.raw.fd = -1
			code, done := c.text(msg, 100, st)
			if done != (code != "") {
				t.Fatalf("%q: done %v with code %q", msg, done, code)
			}
		}
	})
}

// sioUpdate is a Socket.IO live message as a server frame.
func sioUpdate(i, t int64) []byte {
	return serverFrame(true, opText, fmt.Appendf(nil, `42/realtime,["update",{"i":%d,"t":%d}]`, i, t))
}

func TestFeedSocketIO(t *testing.T) {
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	tests := []struct {
		name     string
		in       []byte
		wantCode string
		wantLat  []int64 // by seq, index 1..
		received int64
		gaps     int64
		dups     int64
		hist     uint64
		pongs    int
	}{
		{name: "updates", in: cat(sioUpdate(1, 100), sioUpdate(2, 300)), wantLat: []int64{900, 700}, received: 2, hist: 2},
		{name: "gap and duplicate", in: cat(sioUpdate(1, 100), sioUpdate(3, 100), sioUpdate(3, 100)),
			wantLat: []int64{900, 0, 900}, received: 3, gaps: 1, dups: 1, hist: 3},
		{name: "beyond max-seq counts", in: cat(sioUpdate(1, 100), sioUpdate(2, 100), sioUpdate(3, 100), sioUpdate(4, 100), sioUpdate(5, 100)),
			wantLat: []int64{900, 900, 900, 900}, received: 5, hist: 5},
		{name: "ping, other packets", in: cat(serverFrame(true, opText, []byte("2")), serverFrame(true, opText, []byte(`42/realtime,["update",""]`)), sioUpdate(1, 100)),
			wantLat: []int64{900}, received: 1, hist: 1, pongs: 1},
		{name: "no stamp", in: serverFrame(true, opText, []byte(`42/realtime,["update",{"i":1}]`)), wantLat: []int64{0}, received: 1},
		{name: "namespace disconnect", in: cat(sioUpdate(1, 100), serverFrame(true, opText, []byte("41/realtime,"))),
			wantCode: sioClosed, wantLat: []int64{900}, received: 1, hist: 1},
		{name: "engine close", in: serverFrame(true, opText, []byte("1")), wantCode: sioClosed},
		{name: "connect error", in: serverFrame(true, opText, []byte(`44/realtime,{"message":"x"}`)), wantCode: sioClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStats(4)
			st.alive.Store(1)
			c := &conn{lat: make([]atomic.Int64, 5), sio: newSIOFrames("/realtime"), ns: "/realtime"}
			var peer int
			c.raw.fd, peer = socketPair(t)
			var code string
			for _, ch := range split(tt.in, 3) {
				if cd, done := c.feed(bytes.Clone(ch), 1000, st); done {
					code = cd
					break
				}
			}
			if code != tt.wantCode {
				t.Fatalf("close code %q, want %q", code, tt.wantCode)
			}
			for i, want := range tt.wantLat {
				if got := c.lat[i+1].Load(); got != want {
					t.Errorf("latency of seq %d = %d, want %d", i+1, got, want)
				}
			}
			out := make([]byte, 1024)
			n, _ := syscall.Read(peer, out)
			if want := bytes.Repeat(c.sio.pong, tt.pongs); !bytes.Equal(out[:max(n, 0)], want) {
				t.Fatalf("sent %x, want %x", out[:max(n, 0)], want)
			}
			var inHist uint64
			for i := range st.lat.counts {
				inHist += st.lat.counts[i].Load()
			}
			if st.received.Load() != tt.received || st.gaps.Load() != tt.gaps || st.duplicates.Load() != tt.dups || inHist != tt.hist {
				t.Fatalf("received %d gaps %d dups %d hist %d; want %d %d %d %d", st.received.Load(), st.gaps.Load(),
					st.duplicates.Load(), inHist, tt.received, tt.gaps, tt.dups, tt.hist)
			}
		})
	}
}
