package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakSpec sizes one soak run.
type soakSpec struct {
	name        string
	perKind     int           // clients per transport, all following key A
	extraB      int           // per transport, clients that also follow key B (SSE: extra streams of B alone)
	publishFor  time.Duration // how long the publisher runs
	interval    time.Duration // between two publish ticks; each publishes to A
	publishers  int           // concurrent publish calls at most
	everyB      int           // every everyB-th tick also publishes to B
	minDrops    int           // each client drops its connection minDrops..maxDrops times
	maxDrops    int
	historySize int
	// warmup, when set, publishes this long before publishFor; then, with
	// every client caught up, caddy's RSS is read after forced
	// collections: the start. The end is read the same way after
	// publishFor, and must not exceed the start by more than rssWithin.
	warmup    time.Duration
	rssWithin float64
	// stallers are WebSocket clients that follow A and never read (a
	// small receive window): the gateway must close each with 4429.
	stallers int
	// queueSize is the route's queue_size; 0: the default.
	queueSize int
}

// TestSoakMixedTransports: clients on the three transports follow a key
// while publishers post every few milliseconds, and each client drops its
// connection a few times at random moments and resumes from its last
// position. In the end every client holds every seq exactly once, in order
// (CONTRACT "Never": no message acknowledged by publish is lost for a client
// that resumes within the history window), or handled a resync.
func TestSoakMixedTransports(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	tests := []soakSpec{{
		name:        "300 clients, 3-5 drops each",
		perKind:     100,
		extraB:      5,
		publishFor:  6 * time.Second,
		interval:    5 * time.Millisecond,
		publishers:  8,
		everyB:      5,
		minDrops:    3,
		maxDrops:    5,
		historySize: 4096, // resync stays rare: at most 1,200 ticks (6s every 5ms)
	}, {
		// The short version of bench/soak: more clients, longer, a
		// history that fills during the warm-up (a full history is the
		// steady state), stallers, and memory flat from the end of the
		// warm-up to the end.
		name:        "500 clients for 20s, stallers, memory flat",
		perKind:     165,
		extraB:      5,
		warmup:      6 * time.Second,
		publishFor:  14 * time.Second,
		interval:    10 * time.Millisecond,
		publishers:  4,
		everyB:      5,
		minDrops:    2,
		maxDrops:    4,
		historySize: 512, // 5s of A: a resume on a loaded machine still finds its place
		queueSize:   64,  // with the history's room: a staller is closed within seconds
		rssWithin:   0.10,
		stallers:    4,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSoak(t, tc) })
	}
}

func runSoak(t *testing.T, spec soakSpec) {
	began := time.Now()
	// The default queue: a resume's replay must fit without a larger one
	// (the gateway leaves room for a whole history in every queue). A 1s
	// heartbeat puts pings and SSE comments between the messages.
	routeOpts := []string{"heartbeat 1s", "idle_timeout 60s"}
	if spec.queueSize > 0 {
		routeOpts = append(routeOpts, fmt.Sprintf("queue_size %d", spec.queueSize))
	}
	n := startCaddy(t, caddyfile([]string{fmt.Sprintf("history_size %d", spec.historySize)}, routeOpts))
	keyA, keyB := testKey(t, "a"), testKey(t, "b")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := &soakClock{started: make(chan struct{})}
	var ready atomic.Int64
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	var clients []*soakClient
	add := func(transport string, keys ...string) {
		drops := spec.minDrops + rng.IntN(spec.maxDrops-spec.minDrops+1)
		offsets := make([]time.Duration, drops)
		for i := range offsets {
			offsets[i] = time.Duration(rng.Int64N(int64(spec.warmup + spec.publishFor)))
		}
		slices.Sort(offsets)
		clients = append(clients, newSoakClient(t, n, clock, len(clients), transport, keys, offsets,
			func() { ready.Add(1) }))
	}
	for _, tr := range []string{soakWS, soakSSE, soakPoll} {
		for i := range spec.perKind {
			if i < spec.extraB && tr != soakSSE {
				add(tr, keyA, keyB)
			} else {
				add(tr, keyA)
			}
		}
		if tr == soakSSE { // one key per SSE stream: B gets streams of its own
			for range spec.extraB {
				add(tr, keyB)
			}
		}
	}

	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		soakWaitGroup(t, &wg, 30*time.Second)
	})
	eventually(t, 60*time.Second, func() (bool, string) {
		return ready.Load() == int64(len(clients)), fmt.Sprintf("%d of %d clients connected; %s", ready.Load(), len(clients), soakViolations(clients, 3))
	})

	// Publish for publishFor: a tick every interval, each taken by one of
	// a few concurrent publishers, so that a publish call slower than the
	// interval on a loaded machine does not slow the cadence (a tick that
	// finds every publisher busy is skipped), and concurrent publishes to
	// one key are part of the load. Each tick publishes {"i":<tick>} to A,
	// and every everyB-th tick to B too.
	stallers := dialSoakStallers(t, n, keyA, spec.stallers)
	clock.at = time.Now()
	close(clock.started)
	pub := &soakPublisher{node: n, keyA: keyA, keyB: keyB, everyB: uint64(spec.everyB),
		seqs: map[string]map[uint64]uint64{keyA: {}, keyB: {}}}
	var tickN, skipped uint64
	// publishPhase publishes for d: a tick every interval, each taken by
	// one of a few concurrent publishers, so that a publish call slower
	// than the interval on a loaded machine does not slow the cadence (a
	// tick that finds every publisher busy is skipped), and concurrent
	// publishes to one key are part of the load. Each tick publishes
	// {"i":<tick>} to A, and every everyB-th tick to B too. It answers
	// what each key must end at and the checksum of its messages.
	publishPhase := func(d time.Duration) (want, wantSum map[string]uint64) {
		t.Helper()
		ticks := make(chan uint64)
		var pubWG sync.WaitGroup
		for range spec.publishers {
			pubWG.Go(func() { pub.run(ticks) })
		}
		tick := time.NewTicker(spec.interval)
		for from := time.Now(); time.Since(from) < d && pub.failed() == nil; {
			<-tick.C
			select {
			case ticks <- tickN:
				tickN++
			default:
				skipped++
			}
		}
		tick.Stop()
		close(ticks)
		pubWG.Wait()
		if err := pub.failed(); err != nil {
			t.Fatal(err)
		}
		want, wantSum = map[string]uint64{}, map[string]uint64{}
		for _, k := range []string{keyA, keyB} {
			var err error
			if want[k], wantSum[k], err = pub.check(k); err != nil {
				t.Fatalf("%s: %v", soakKeyName(k, keyA), err)
			}
		}
		// Every client catches up, or the soak reports who did not.
		eventually(t, 30*time.Second, func() (bool, string) {
			var behind []string
			for _, c := range clients {
				tracks, _ := c.snapshot()
				for k, tr := range tracks {
					if tr.last != want[k] {
						behind = append(behind, fmt.Sprintf("%v at %s seq %d of %d", c, soakKeyName(k, keyA), tr.last, want[k]))
					}
				}
			}
			if len(behind) == 0 {
				return true, ""
			}
			return false, fmt.Sprintf("%d behind, e.g. %s; %s", len(behind), strings.Join(behind[:min(5, len(behind))], "; "), soakViolations(clients, 3))
		})
		return want, wantSum
	}
	var rssStart int64
	if spec.warmup > 0 {
		publishPhase(spec.warmup)
		rssStart = settledRSS(t, n)
	}
	want, wantSum := publishPhase(spec.publishFor)
	published := time.Since(clock.at)
	lastA, lastB := want[keyA], want[keyB]
	if spec.rssWithin > 0 {
		rssEnd := settledRSS(t, n)
		change := float64(rssEnd-rssStart) / float64(rssStart)
		t.Logf("soak: caddy's RSS after the warm-up %d KiB, at the end %d KiB (%+.1f%%)", rssStart, rssEnd, 100*change)
		// Only growth fails: a shrink is no leak (a staller's backlog, held
		// at the start, is gone at the end).
		if change > spec.rssWithin {
			t.Errorf("caddy's RSS went from %d KiB after the warm-up to %d KiB at the end (%+.1f%%, bound ±%.0f%%)",
				rssStart, rssEnd, 100*change, 100*spec.rssWithin)
		}
	}
	checkSoakStallers(t, n, stallers)
	cancel()
	soakWaitGroup(t, &wg, 30*time.Second)
	// Every session the clients dropped or ended is gone from the gateway
	// too: no stream or held poll outlives its client.
	eventually(t, 20*time.Second, func() (bool, string) {
		c := n.Stats(t).Connections
		return c.Total == 0, fmt.Sprintf("connections left after every client closed: %+v", c)
	})

	// Judge every client.
	var drops, serverEnds, sessions, resyncs, dups, gaps int64
	byTransport := map[string]int64{}
	for _, c := range clients {
		tracks, errs := c.snapshot()
		for _, e := range errs {
			t.Errorf("%v: %s", c, e)
		}
		for k, tr := range tracks {
			resyncs += int64(tr.resyncs)
			dups += int64(tr.dups)
			gaps += int64(tr.gaps)
			if tr.last != want[k] {
				t.Errorf("%v: %s ends at seq %d, want %d", c, soakKeyName(k, keyA), tr.last, want[k])
			}
			// After a resync the client skipped what the state it pulled
			// covers: its checksum only spans part of the seqs.
			if tr.resyncs == 0 && tr.sum != wantSum[k] {
				t.Errorf("%v: %s: the data received does not match the data published under each seq", c, soakKeyName(k, keyA))
			}
		}
		drops += c.drops.Load()
		byTransport[c.transport] += c.drops.Load()
		serverEnds += c.serverEnds.Load()
		sessions += c.sessions.Load()
	}
	if dups != 0 || gaps != 0 {
		t.Errorf("%d duplicates and %d gaps over %d clients", dups, gaps, len(clients))
	}
	if drops == 0 {
		t.Errorf("no client dropped its connection: the soak proved nothing about resuming")
	}
	st := n.Stats(t)
	t.Logf("soak: %d clients (ws %d, sse %d, poll %d), N=%d on A and %d on B published in %v (a tick every %v, %d publishers, %d ticks skipped), drops %d (ws %d, sse %d, poll %d), sessions %d, ended by the gateway %d, resyncs %d, duplicates %d, gaps %d; gateway slow_consumer_closes %d; total %v",
		len(clients), spec.perKind, spec.perKind+spec.extraB, spec.perKind,
		lastA, lastB, published.Round(time.Millisecond), spec.interval, spec.publishers, skipped,
		drops, byTransport[soakWS], byTransport[soakSSE], byTransport[soakPoll],
		sessions, serverEnds, resyncs, dups, gaps, st.SlowConsumerCloses, time.Since(began).Round(time.Millisecond))
}

// soakPublisher posts the soak's messages and keeps what each publish
// answered.
type soakPublisher struct {
	node       *Node
	keyA, keyB string
	everyB     uint64
	mu         sync.Mutex
	seqs       map[string]map[uint64]uint64 // guarded by mu: key → seq → tick published under it
	err        error                        // guarded by mu: the first publish failure
}

// run publishes one tick at a time until ticks is closed or a publish
// fails.
func (p *soakPublisher) run(ticks <-chan uint64) {
	for tick := range ticks {
		if p.failed() != nil {
			continue // drain: the ticker loop stops at its next tick
		}
		p.publish(p.keyA, tick)
		if tick%p.everyB == 0 {
			p.publish(p.keyB, tick)
		}
	}
}

func (p *soakPublisher) publish(key string, tick uint64) {
	ans, err := p.node.TryPublish(key, fmt.Sprintf(`{"i":%d}`, tick))
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil:
		err = fmt.Errorf("publish tick %d to %s: %w", tick, key, err)
	case p.seqs[key][ans.Seq] != 0 || ans.Seq == 0:
		err = fmt.Errorf("publish to %s answered seq %d twice", key, ans.Seq)
	}
	if err != nil {
		if p.err == nil {
			p.err = err
		}
		return
	}
	p.seqs[key][ans.Seq] = tick + 1 // +1: 0 marks a seq not (yet) answered
}

func (p *soakPublisher) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// check proves the publish answers gave key the seqs 1..N, each once, and
// returns N and the checksum a client that handled them all must hold.
func (p *soakPublisher) check(key string) (n, sum uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seqs := p.seqs[key]
	n = uint64(len(seqs))
	for seq := uint64(1); seq <= n; seq++ {
		tick := seqs[seq]
		if tick == 0 {
			return 0, 0, fmt.Errorf("publish answers skipped seq %d of %d", seq, n)
		}
		sum += soakMix(seq, tick-1)
	}
	return n, sum, nil
}

// soakKeyName names a soak key A or B in messages.
func soakKeyName(k, keyA string) string {
	if k == keyA {
		return "A"
	}
	return "B"
}

// soakViolations summarises the first violations the clients recorded.
func soakViolations(clients []*soakClient, limit int) string {
	var out []string
	for _, c := range clients {
		_, errs := c.snapshot()
		for _, e := range errs {
			if len(out) < limit {
				out = append(out, fmt.Sprintf("%v: %s", c, e))
			}
		}
	}
	if len(out) == 0 {
		return "no violations"
	}
	return "violations: " + strings.Join(out, "; ")
}

// soakWaitGroup waits for wg up to d and fails the test if it does not end.
func soakWaitGroup(t testing.TB, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Errorf("client goroutines still running %v after the soak ended", d)
	}
}
