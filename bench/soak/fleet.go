package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/clientfleet"
)

// fleet is every client of the run, the scheduler that drops them, and
// the load switch the scheduler and the stallers obey.
type fleet struct {
	o        options
	addr     string // the gateway's site, host:port
	keys     []string
	keyIndex map[string]int
	history  int // messages a key keeps: a resync within it is unexplained

	clients []*client
	load    atomic.Bool   // drops and stalls happen only while set
	dialSem chan struct{} // bounds handshakes under way

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newFleet makes the clients: the first o.stallers are stallers, the next
// o.slow slow readers, the rest normal. Each but the stallers follows one
// to three keys picked by a source seeded with o.seed, so that a run can
// be repeated.
func newFleet(o options, addr string, keys []string) *fleet {
	f := &fleet{o: o, addr: addr, keys: keys, keyIndex: map[string]int{}, history: o.history,
		dialSem: make(chan struct{}, clientfleet.DialConcurrency)}
	for i, k := range keys {
		f.keyIndex[k] = i
	}
	rng := rand.New(rand.NewPCG(uint64(o.seed), 1))
	for i := range o.clients {
		k := kindNormal
		switch {
		case i < o.stallers:
			k = kindStaller
		case i < o.stallers+o.slow:
			k = kindSlow
		}
		var ks []int
		if k == kindStaller {
			for j := range keys {
				ks = append(ks, j)
			}
		} else {
			for _, j := range rng.Perm(len(keys))[:1+rng.IntN(min(3, len(keys)))] {
				ks = append(ks, j)
			}
		}
		f.clients = append(f.clients, newClient(f, i, k, ks))
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f
}

// jitter answers a duration uniformly in [d/2, 3d/2), so that the
// clients' drops and stalls spread out rather than come in waves.
func (f *fleet) jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

// start runs every client and the scheduler.
func (f *fleet) start() {
	for _, c := range f.clients {
		f.wg.Go(func() { c.run(f.ctx) })
	}
	f.wg.Go(f.schedule)
}

// schedule drops clients at their drop times while the load runs.
func (f *fleet) schedule() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case now := <-tick.C:
			if !f.load.Load() {
				continue
			}
			for _, c := range f.clients {
				c.dropIfDue(now)
			}
		}
	}
}

// connected answers how many clients have every key registered.
func (f *fleet) connected() int {
	n := 0
	for _, c := range f.clients {
		if c.connected.Load() {
			n++
		}
	}
	return n
}

// behind answers how many clients are not connected or have not handled
// the last seq published to one of their keys, and one of them.
func (f *fleet) behind(published []uint64) (int, string) {
	n, example := 0, ""
	for _, c := range f.clients {
		lag := !c.connected.Load()
		why := "not connected"
		for i, t := range c.tracks {
			if got := c.last[i].Load(); got != published[t.key] {
				lag, why = true, fmt.Sprintf("%s at seq %d of %d", f.keys[t.key], got, published[t.key])
			}
		}
		if lag {
			if n == 0 {
				example = fmt.Sprintf("client %d (kind %d): %s", c.id, c.kind, why)
			}
			n++
		}
	}
	return n, example
}

// stop ends every client and the scheduler and waits for them.
func (f *fleet) stop() {
	f.load.Store(false)
	f.cancel()
	for _, c := range f.clients {
		c.closeConn()
	}
	f.wg.Wait()
}

// totals sums what the clients saw; call it after stop.
func (f *fleet) totals(published []uint64) Totals {
	var t Totals
	for _, c := range f.clients {
		for i, tr := range c.tracks {
			t.Deliveries += int64(tr.received)
			t.Lost += int64(tr.lost)
			t.Duplicates += int64(tr.dups)
			t.Resyncs += int64(tr.resyncs)
			t.UnexplainedResyncs += int64(tr.badResync)
			t.EpochViolations += int64(tr.epochBad)
			// What the client never got by the end is lost too.
			if last := c.last[i].Load(); last < published[tr.key] {
				t.Lost += int64(published[tr.key] - last)
			}
		}
		t.Sessions += c.sessions.Load()
		t.Drops += c.drops.Load()
		t.SlowCloses += c.slowCloses.Load()
		if c.kind == kindStaller {
			t.StallerSlowCloses += c.slowCloses.Load()
		}
		t.ServerEnds += c.serverEnds.Load()
		t.Refusals += c.refusals.Load()
		t.Violations += c.violations.Load()
		if e, ok := c.firstErr.Load().(string); ok && t.FirstViolation == "" {
			t.FirstViolation = e
		}
	}
	return t
}

// Totals is what the clients saw over the whole run.
type Totals struct {
	Deliveries         int64  `json:"deliveries"`
	Lost               int64  `json:"lost"`
	Duplicates         int64  `json:"duplicates"`
	Resyncs            int64  `json:"resyncs"`
	UnexplainedResyncs int64  `json:"unexplained_resyncs"`
	EpochViolations    int64  `json:"epoch_violations"`
	Sessions           int64  `json:"sessions"`
	Drops              int64  `json:"drops"`
	SlowCloses         int64  `json:"slow_closes"`
	StallerSlowCloses  int64  `json:"staller_slow_closes"`
	ServerEnds         int64  `json:"server_ends"`
	Refusals           int64  `json:"refusals"`
	Violations         int64  `json:"violations"`
	FirstViolation     string `json:"first_violation,omitempty"`
}
