package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(options) bool
		wantErr bool
	}{
		{name: "defaults", args: nil, check: func(o options) bool {
			return o.followers == 200 && o.publishes() == 2000 && len(o.publishers) == 3 && o.runs == 3 && len(o.configs) == 2
		}},
		{name: "quick", args: []string{"-quick"}, check: func(o options) bool {
			return o.followers == 50 && o.publishes() == 200 && o.runs == 1 && o.tpPublishes == 400
		}},
		{name: "quick keeps what is given", args: []string{"-quick", "-runs", "2", "-followers", "10"}, check: func(o options) bool {
			return o.followers == 10 && o.publishes() == 200 && o.runs == 2
		}},
		{name: "one config", args: []string{"-configs", "single", "-publishers", "4"}, check: func(o options) bool {
			return len(o.configs) == 1 && o.configs[0] == configSingle && o.publishers[0] == 4
		}},
		{name: "unknown config", args: []string{"-configs", "sentinel"}, wantErr: true},
		{name: "bad publishers", args: []string{"-publishers", "1,x"}, wantErr: true},
		{name: "too many followers", args: []string{"-followers", "9000"}, wantErr: true},
		{name: "unbounded publishes", args: []string{"-rate", "20000", "-duration", "10m"}, wantErr: true},
		{name: "no runs", args: []string{"-runs", "0"}, wantErr: true},
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
			if !tc.check(o) {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=300,usec_per_call=25.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setname:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=7,usec=9,usec_per_call=1.2,rejected_calls=0,failed_calls=0\r\n"
	got := parseCommandStats(info)
	want := map[string]int64{"evalsha": 12, "client|setname": 2, "info": 7}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	d, total := commandDelta(map[string]int64{"evalsha": 2, "info": 1}, got)
	if total != 12 || d["evalsha"] != 10 || d["client|setname"] != 2 || d["info"] != 0 {
		t.Fatalf("delta %v, total %d", d, total)
	}
}

func TestBrokerCounts(t *testing.T) {
	tests := []struct {
		name       string
		stats      string
		pubs, rts  int64
		wantCounts bool
	}{
		{name: "single node", stats: `{"published":3}`},
		{name: "broker without counters", stats: `{"broker":{"state":"up"}}`},
		{name: "broker with counters", stats: `{"broker":{"publishes":10,"round_trips":12}}`, pubs: 10, rts: 12, wantCounts: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st nodeStats
			if err := json.Unmarshal([]byte(tc.stats), &st); err != nil {
				t.Fatal(err)
			}
			p, r, ok := st.brokerCounts()
			if ok != tc.wantCounts || p != tc.pubs || r != tc.rts {
				t.Fatalf("got %d, %d, %v", p, r, ok)
			}
		})
	}
}

func TestSummarizeAndRatios(t *testing.T) {
	rt := 2.0
	res := Results{Measurements: []Measurement{
		{Config: configSingle, Kind: kindLatency, Scenario: scenarioSingle, Run: 1, P50Ms: 1, P99Ms: 2, CPUPerPublishUs: map[string]float64{"a": 10, loadgenName: 99}},
		{Config: configSingle, Kind: kindLatency, Scenario: scenarioSingle, Run: 2, P50Ms: 3, P99Ms: 4, CPUPerPublishUs: map[string]float64{"a": 30, loadgenName: 99}},
		{Config: configSingle, Kind: kindLatency, Scenario: scenarioSingle, Run: 3, P50Ms: 2, P99Ms: 3, CPUPerPublishUs: map[string]float64{"a": 20, loadgenName: 99}},
		{Config: configCluster, Kind: kindLatency, Scenario: scenarioCrossNode, Run: 1, P50Ms: 4, P99Ms: 9, Publishes: 10,
			CPUPerPublishUs: map[string]float64{"a": 20, "b": 10, redisName: 10}, RedisCommands: map[string]int64{"evalsha": 10, "publish": 20},
			RedisCommandsPerPublish: 3, BrokerRoundTripsPerPublish: &rt},
		{Config: configCluster, Kind: kindLatency, Scenario: scenarioCrossNode, Run: 2, Error: "boom|x"},
		{Config: configSingle, Kind: kindThroughput, Scenario: configSingle, Publishers: 8, Run: 1, PublishesPerSec: 1000},
		{Config: configCluster, Kind: kindThroughput, Scenario: configCluster, Publishers: 8, Run: 1, PublishesPerSec: 250},
	}}
	res.summarize()
	if len(res.Summary) != 4 {
		t.Fatalf("%d summaries: %+v", len(res.Summary), res.Summary)
	}
	s := res.Summary[0]
	if s.OKRuns != 3 || s.P50Ms != 2 || s.P99Ms != 3 || s.CPUPerPublishUs["a"] != 20 {
		t.Fatalf("single: %+v", s)
	}
	c := res.Summary[1]
	if c.OKRuns != 1 || len(c.Errors) != 1 || c.RedisCommandsPerPublishBy["publish"] != 2 || *c.BrokerRoundTripsPerPublish != 2 {
		t.Fatalf("cluster: %+v", c)
	}
	if len(res.Ratios) != 2 {
		t.Fatalf("ratios %+v", res.Ratios)
	}
	lat, tp := res.Ratios[0], res.Ratios[1]
	if lat.P50 != 2 || lat.P99 != 3 || lat.ServerCPUPerPublish != 2 {
		t.Fatalf("latency ratio %+v", lat)
	}
	if tp.Publishers != 8 || tp.PublishesPerSec != 0.25 {
		t.Fatalf("throughput ratio %+v", tp)
	}
	md := string(res.markdown())
	for _, want := range []string{"| single | 0 | 0 | 2.00 ms | 3.00 ms |", "| cluster-cross-node |", "| throughput, 8 publishers |", "0.25×", "publish 2.00"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// TestQuick runs the command's -quick version end to end: both
// configurations, a real redis-server and a caddy built from the module.
func TestQuick(t *testing.T) {
	o, err := parseFlags([]string{"-quick"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(o.redisBin); err != nil {
		t.Skipf("no redis-server: %v", err)
	}
	if testing.Short() {
		t.Skip("builds caddy and runs servers")
	}
	if bin := os.Getenv("PUSHGW_CLUSTER_BENCH_CADDY"); bin != "" {
		o.gatewayBin = bin // a prebuilt caddy, to skip the build
	}
	// Shorter still: the test checks that every measurement works, not the
	// figures.
	o.duration, o.tpPublishes, o.publishers = time.Second, 200, []int{1, 8}
	o.out = filepath.Join(t.TempDir(), "out")
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(o.out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	// single: latency and two throughputs; cluster: two latencies and two
	// throughputs.
	if len(res.Measurements) != 7 {
		t.Fatalf("%d measurements, want 7", len(res.Measurements))
	}
	for _, m := range res.Measurements {
		if m.Error != "" {
			t.Errorf("%s %s %d: %s", m.Kind, m.Scenario, m.Publishers, m.Error)
			continue
		}
		if m.Kind == kindLatency && (m.Missing != 0 || m.Deliveries != int64(m.Followers*m.Publishes) || m.P50Ms <= 0) {
			t.Errorf("%s: %d deliveries, %d missing, p50 %v", m.Scenario, m.Deliveries, m.Missing, m.P50Ms)
		}
		// CPU time comes in 10ms ticks: a short measurement may read 0.
		if _, ok := m.CPUPerPublishUs["a"]; m.PublishesPerSec <= 0 || !ok {
			t.Errorf("%s %s %d: %v publishes/s, CPU %v", m.Kind, m.Scenario, m.Publishers, m.PublishesPerSec, m.CPUPerPublishUs)
		}
		if m.Config == configCluster && m.RedisCommandsPerPublish <= 0 {
			t.Errorf("%s %s %d: no redis commands", m.Kind, m.Scenario, m.Publishers)
		}
	}
	if len(res.Ratios) != 4 {
		t.Errorf("%d ratios, want 4", len(res.Ratios))
	}
	if p := res.RedisProbe; p == nil || p.Error != "" || p.ClientPerPublish <= 0 {
		t.Errorf("redis probe %+v", p)
	}
}

func TestParseMonitorLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		src     string
		cmd     string
		wantErr bool
	}{
		{name: "client", line: `+1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "abc" "1" "k"` + "\r\n", src: "127.0.0.1:5555", cmd: "evalsha"},
		{name: "script", line: `+1700000000.123456 [0 lua] "xadd" "s" "*"` + "\r\n", src: "lua", cmd: "xadd"},
		{name: "unix socket", line: `+1.0 [3 unix:/tmp/r.sock] "ping"`, src: "unix:/tmp/r.sock", cmd: "ping"},
		{name: "OK", line: "+OK\r\n", wantErr: true},
		{name: "no command", line: `+1.0 [0 lua]`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, cmd, ok := parseMonitorLine(tc.line)
			if ok == tc.wantErr || src != tc.src || cmd != tc.cmd {
				t.Fatalf("got %q, %q, %v", src, cmd, ok)
			}
		})
	}
}
