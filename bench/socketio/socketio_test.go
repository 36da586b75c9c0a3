package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		kind  packetKind
		idx   uint64
		stamp int64
	}{
		{name: "open", in: `0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`, kind: pktOpen},
		{name: "ping", in: `2`, kind: pktPing},
		{name: "close", in: `1`, kind: pktClose},
		{name: "namespace connected", in: `40/realtime,{"sid":"xyz"}`, kind: pktConnected},
		{name: "root connected is another namespace", in: `40{"sid":"xyz"}`, kind: pktOther},
		{name: "connect error", in: `44/realtime,{"message":"Invalid namespace"}`, kind: pktConnectError},
		{name: "disconnect", in: `41/realtime,`, kind: pktDisconnect},
		{name: "disconnect without comma", in: `41/realtime`, kind: pktDisconnect},
		{name: "registered", in: `42/realtime,["update",""]`, kind: pktRegistered},
		{name: "broadcast", in: `42/realtime,["update",{"i":7,"t":1700000000123456789}]`, kind: pktUpdate, idx: 7, stamp: 1700000000123456789},
		{name: "broadcast, other field order", in: `42/realtime,["update",{"t":5,"i":3}]`, kind: pktUpdate, idx: 3, stamp: 5},
		{name: "other event", in: `42/realtime,["other",{"i":1,"t":2}]`, kind: pktOther},
		{name: "update without stamp", in: `42/realtime,["update",{"i":1}]`, kind: pktOther},
		{name: "other namespace", in: `42/other,["update",{"i":1,"t":2}]`, kind: pktOther},
		{name: "empty", in: ``, kind: pktOther},
		{name: "bare 4", in: `4`, kind: pktOther},
		{name: "engine.io noop", in: `6`, kind: pktOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, idx, stamp := classify([]byte(tc.in), "/realtime")
			if kind != tc.kind || idx != tc.idx || stamp != tc.stamp {
				t.Fatalf("classify(%q) = %v, %d, %d; want %v, %d, %d", tc.in, kind, idx, stamp, tc.kind, tc.idx, tc.stamp)
			}
		})
	}
}

func TestClassifyRootNamespace(t *testing.T) {
	if kind, _, _ := classify([]byte(`40{"sid":"x"}`), "/"); kind != pktConnected {
		t.Fatalf("root connect: %v", kind)
	}
	if kind, idx, _ := classify([]byte(`42["update",{"i":2,"t":9}]`), "/"); kind != pktUpdate || idx != 2 {
		t.Fatalf("root update: %v %d", kind, idx)
	}
}

func TestRatios(t *testing.T) {
	rs := []ServerResult{
		{Server: serverGateway, N: 10, RSSPerConnBytes: 2000, CPUPerDeliveryUs: 5, P50Ms: 1, P99Ms: 2, LastMs: 3},
		{Server: serverReference, N: 10, RSSPerConnBytes: 14000, CPUPerDeliveryUs: 20, P50Ms: 2, P99Ms: 4, LastMs: 6},
		{Server: serverGateway, N: 20, RSSPerConnBytes: 5000, CPUPerDeliveryUs: 15, P99Ms: 5},
		{Server: serverReference, N: 20, RSSPerConnBytes: 14000, CPUPerDeliveryUs: 20, P99Ms: 4},
		{Server: serverGateway, N: 30, Error: "failed"},
		{Server: serverReference, N: 30, RSSPerConnBytes: 1},
	}
	got := ratios(rs)
	if len(got) != 2 {
		t.Fatalf("got %d ratios, want 2: %+v", len(got), got)
	}
	a, b := got[0], got[1]
	if a.N != 10 || a.RSSPerConn != 2000.0/14000 || a.CPUPerDelivery != 0.25 || a.P99 != 0.5 || a.TimeToLast != 0.5 ||
		!a.RSSTargetMet || !a.CPUTargetMet || !a.P99TargetMet {
		t.Fatalf("N=10: %+v", a)
	}
	if b.N != 20 || b.RSSTargetMet || b.CPUTargetMet || b.P99TargetMet || b.P50 != 0 {
		t.Fatalf("N=20: %+v", b)
	}
}

func TestPublishBody(t *testing.T) {
	body := publishBody("k", 3, time.Unix(0, 1700000000123456789))
	want := `{"sdk_key":"k","event":"update","data":{"i":3,"t":1700000000123456789}}`
	if body != want {
		t.Fatalf("body %s, want %s", body, want)
	}
	// What either server emits of it is what the clients classify.
	kind, idx, stamp := classify([]byte(`42/realtime,["update",{"i":3,"t":1700000000123456789}]`), "/realtime")
	if kind != pktUpdate || idx != 3 || stamp != 1700000000123456789 {
		t.Fatalf("classify: %v %d %d", kind, idx, stamp)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{name: "defaults", args: nil},
		{name: "list", args: []string{"-n", "2000, 10000", "-servers", "socket.io"}},
		{name: "too many clients", args: []string{"-n", "2000,19000"}, wantErr: true},
		{name: "not a number", args: []string{"-n", "x"}, wantErr: true},
		{name: "unknown server", args: []string{"-servers", "ws"}, wantErr: true},
		{name: "no broadcasts", args: []string{"-broadcasts", "0"}, wantErr: true},
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
			if len(o.ns) == 0 || len(o.servers) == 0 {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

func TestMarkdownShowsFailuresAndRatios(t *testing.T) {
	rs := []ServerResult{
		{Server: serverGateway, N: 2, RSSPerConnBytes: 2000, CPUPerDeliveryUs: 5, P99Ms: 3},
		{Server: serverReference, N: 2, RSSPerConnBytes: 14000, CPUPerDeliveryUs: 20, P99Ms: 6},
		{Server: serverReference, N: 4, Error: "a|b"},
	}
	r := Results{Command: "go run ./bench/socketio", Broadcasts: 1, Servers: rs, Ratios: ratios(rs)}
	md := string(r.markdown())
	for _, want := range []string{"| push_gateway | 2 | 2.00 KB |", "| socket.io | 4 | failed: a/b |", "| 2 | 0.143 | 0.250 |"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
}
