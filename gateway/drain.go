package gateway

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pushgateway/push_gateway/netpoll"
)

// Graceful drain: a stopping gateway closes its connections with 1001 in
// small batches, in random order, spread over a window, rather than all in
// the same millisecond: 20,000 clients told to reconnect at once land on
// the other nodes as a reconnect storm; spread over 5 s they arrive at
// 4,000 a second. Shutdown runs the drain after the node left the registry
// (so nobody is sent back here) and while the hub still runs (a client
// keeps its messages until its turn).

const (
	// DefaultDrainWindow is Config.DrainWindow's default: long enough to
	// turn a node's worth of reconnects into a steady stream, short enough
	// for a deploy (and well inside systemd's 90 s stop timeout).
	DefaultDrainWindow = 5 * time.Second
	// drainTick is the shortest time between two batches.
	drainTick = 50 * time.Millisecond
	// drainMinRate is the slowest a drain closes connections, per second:
	// a handful of clients gain nothing from being spread out, and the
	// stop should not wait on them.
	drainMinRate = 100
)

// setDrainWindow records the window of the next stop (New, Configure); 0
// takes DefaultDrainWindow, < 0 closes everything at once.
func (e *Engine) setDrainWindow(d time.Duration) {
	if d == 0 {
		d = DefaultDrainWindow
	}
	e.drainWindow.Store(int64(max(d, 0)))
}

// DrainWindow is the window the next stop spreads its 1001s over.
func (e *Engine) DrainWindow() time.Duration { return time.Duration(e.drainWindow.Load()) }

// drainPlan splits n closes into batches: every batch but the last holds
// size connections, one batch starts every spacing. The closes run at n
// per window, or drainMinRate per second when that is faster; batches are
// at least drainTick apart.
func drainPlan(n int, window time.Duration) (batches, size int, spacing time.Duration) {
	if n <= 0 {
		return 0, 0, 0
	}
	dur := window
	if minDur := time.Duration(n) * time.Second / drainMinRate; minDur < dur {
		dur = minDur
	}
	batches = max(1, int(dur/drainTick))
	batches = min(batches, n)
	size = (n + batches - 1) / batches
	batches = (n + size - 1) / size
	return batches, size, dur / time.Duration(batches)
}

// drain closes every connection on the poller with 1001 following
// drainPlan, and returns once the last batch was told (not once the
// clients left). It takes at most the drain window.
func (e *Engine) drain() {
	var conns []*netpoll.Conn
	e.poller.Range(func(c *netpoll.Conn) { conns = append(conns, c) })
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	batches, size, spacing := drainPlan(len(conns), e.DrainWindow())
	start := time.Now()
	var t *time.Timer
	for b := range batches {
		if b > 0 {
			// Sleep until this batch's slot, measured from the start so
			// that slow batches do not stretch the window.
			wait := time.Until(start.Add(time.Duration(b) * spacing))
			if wait > 0 {
				if t == nil {
					t = time.NewTimer(wait)
				} else {
					t.Reset(wait)
				}
				<-t.C
			}
		}
		for _, c := range conns[b*size : min((b+1)*size, len(conns))] {
			goAway(c)
		}
	}
	if t != nil {
		t.Stop()
	}
}

// goAway tells one connection the gateway is shutting down: 1001 for a
// WebSocket, a last comment for an event stream.
func goAway(c *netpoll.Conn) {
	if s, ok := c.Handler().(interface{ goAway() }); ok {
		s.goAway()
	} else {
		c.Close()
	}
}

// startConn lists c with the poller so that it starts reading. A connection
// that passed ServeHTTP's closing check but is started after Shutdown took
// its snapshot of the poller's connections would get no 1001 (and end
// without a close frame when the poller closes): Shutdown sets closing
// before the snapshot, so checking it after Start catches every such one.
// goAway is idempotent, so a connection both ways is told once.
func (e *Engine) startConn(c *netpoll.Conn, buffered []byte) error {
	if err := c.Start(buffered); err != nil {
		return fmt.Errorf("starting connection: %w", err)
	}
	if e.closing.Load() {
		goAway(c)
	}
	return nil
}
