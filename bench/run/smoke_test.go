package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestRunSmoke runs the whole command, small: every server (the real caddy
// with the module, the baseline, socket.io on node), two load generator
// processes each, every phase. It proves the runner and the generator
// work together and that the gateway's storm resumes without loss; the
// figures themselves mean nothing at this size.
func TestRunSmoke(t *testing.T) {
	out := t.TempDir()
	o, err := parseFlags([]string{"-n", "300", "-per-proc", "200", "-repeat", "1", "-broadcasts", "2", "-warmup", "1",
		"-burst", "5", "-storm", "3", "-steady-keys", "20", "-steady-rate", "100", "-steady-for", "1s", "-out", out})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(allServers) {
		t.Fatalf("%d results, want one per server (%d)", len(rep.Results), len(allServers))
	}
	for _, r := range rep.Results {
		t.Run(r.Server, func(t *testing.T) {
			if r.Error != "" {
				t.Fatalf("error: %s", r.Error)
			}
			if r.Connected != 300 || r.Storm.Connected != 300 {
				t.Errorf("connected %d, after the storm %d; want 300", r.Connected, r.Storm.Connected)
			}
			if r.Lost != 0 || r.Duplicates != 0 {
				t.Errorf("broadcasts: lost %d, duplicated %d", r.Lost, r.Duplicates)
			}
			if r.Median.Received != 300 || r.BurstDeliveries != 5*300 {
				t.Errorf("broadcast reached %d, burst delivered %d", r.Median.Received, r.BurstDeliveries)
			}
			if r.Steady.Deliveries != r.Steady.Expected || r.Steady.Expected != 100*300/20*1 {
				t.Errorf("steady: %d of %d deliveries, want 1500", r.Steady.Deliveries, r.Steady.Expected)
			}
			switch r.Server {
			case nameGateway:
				if !r.Storm.Resumes || r.Storm.Lost != 0 || r.Storm.Resyncs != 0 {
					t.Errorf("storm: resumes %v, lost %d, resyncs %d; want a lossless resume", r.Storm.Resumes, r.Storm.Lost, r.Storm.Resyncs)
				}
			case nameBaseline:
				// No history: what was published while away is gone.
				if r.Storm.Lost != 3*300 {
					t.Errorf("baseline storm lost %d, want %d", r.Storm.Lost, 3*300)
				}
			}
			if r.Server != nameSocketIO && r.GoroutinesIdleN == 0 {
				t.Error("no goroutine count")
			}
		})
	}
	for _, f := range []string{"results.md", "peers.md", "cost-per-connection.png", "latency-vs-n.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}
