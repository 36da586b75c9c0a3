package gateway

import (
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestDrainPlan(t *testing.T) {
	tests := []struct {
		name        string
		n           int
		window      time.Duration
		wantBatches int
		wantSize    int
		wantSpacing time.Duration
	}{
		{name: "nothing to drain", n: 0, window: 5 * time.Second},
		{name: "a handful at once", n: 3, window: 5 * time.Second, wantBatches: 1, wantSize: 3, wantSpacing: 30 * time.Millisecond},
		{name: "all at once", n: 1000, window: -1, wantBatches: 1, wantSize: 1000, wantSpacing: -1},
		{name: "200 over 2s", n: 200, window: 2 * time.Second, wantBatches: 40, wantSize: 5, wantSpacing: 50 * time.Millisecond},
		{name: "200 over 5s at the minimum rate", n: 200, window: 5 * time.Second, wantBatches: 40, wantSize: 5, wantSpacing: 50 * time.Millisecond},
		{name: "a node's worth over 5s", n: 20000, window: 5 * time.Second, wantBatches: 100, wantSize: 200, wantSpacing: 50 * time.Millisecond},
		{name: "uneven split", n: 1001, window: time.Second, wantBatches: 20, wantSize: 51, wantSpacing: 50 * time.Millisecond},
		{name: "window shorter than a tick", n: 50, window: 10 * time.Millisecond, wantBatches: 1, wantSize: 50, wantSpacing: 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, size, spacing := drainPlan(tt.n, tt.window)
			if b != tt.wantBatches || size != tt.wantSize || spacing != tt.wantSpacing {
				t.Fatalf("drainPlan(%d, %v) = %d batches of %d every %v, want %d of %d every %v",
					tt.n, tt.window, b, size, spacing, tt.wantBatches, tt.wantSize, tt.wantSpacing)
			}
			if tt.n > 0 && (b*size < tt.n || (b-1)*size >= tt.n) {
				t.Fatalf("%d batches of %d do not cover %d connections exactly", b, size, tt.n)
			}
			if last := time.Duration(b-1) * spacing; tt.window > 0 && last > tt.window {
				t.Fatalf("last batch at %v, after the window %v", last, tt.window)
			}
		})
	}
}

// TestDrainSpreadsCloses: every client gets 1001, spread over the window
// (or at once with a negative window), and Shutdown takes about the window.
func TestDrainSpreadsCloses(t *testing.T) {
	tests := []struct {
		name       string
		window     time.Duration
		clients    int
		minSpread  time.Duration
		maxSpread  time.Duration
		maxShutoff time.Duration
	}{
		{name: "spread over 1s", window: time.Second, clients: 100, minSpread: 700 * time.Millisecond, maxSpread: 1500 * time.Millisecond, maxShutoff: 4 * time.Second},
		{name: "all at once", window: -1, clients: 100, maxSpread: 500 * time.Millisecond, maxShutoff: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, url := testEngine(t, RouteSettings{})
			e.setDrainWindow(tt.window)
			cs := make([]*client, tt.clients)
			for i := range cs {
				cs[i] = dialWS(t, url+"?sdk_key=k")
				cs[i].expect("registered")
			}
			var wg sync.WaitGroup
			got := make([]time.Time, len(cs))
			codes := make([]ws.StatusCode, len(cs))
			for i, c := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
					var buf [64]byte
					for {
						n, err := c.nc.Read(buf[:])
						if n >= 4 && buf[0] == 0x88 { // a close frame: 0x88, length, code
							codes[i] = ws.StatusCode(uint16(buf[2])<<8 | uint16(buf[3]))
							got[i] = time.Now()
							return
						}
						if err != nil {
							return
						}
					}
				}()
			}
			start := time.Now()
			e.Shutdown()
			took := time.Since(start)
			wg.Wait()
			first, last := got[0], got[0]
			for i, at := range got {
				if codes[i] != 1001 {
					t.Fatalf("client %d: close %d, want 1001", i, codes[i])
				}
				if at.Before(first) {
					first = at
				}
				if at.After(last) {
					last = at
				}
			}
			spread := last.Sub(first)
			t.Logf("%d closes spread over %v; Shutdown took %v", len(cs), spread, took)
			if spread < tt.minSpread || spread > tt.maxSpread {
				t.Fatalf("closes spread over %v, want %v..%v", spread, tt.minSpread, tt.maxSpread)
			}
			if took > tt.maxShutoff {
				t.Fatalf("Shutdown took %v, want at most %v", took, tt.maxShutoff)
			}
		})
	}
}
