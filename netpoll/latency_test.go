package netpoll

import (
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latencies collects what Config.OnLatency reports.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) observe(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) take() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.d
	l.d = nil
	return d
}

func TestLatencyReportsEachFrame(t *testing.T) {
	const stall = 100 * time.Millisecond
	tests := []struct {
		name    string
		stamped bool
		frames  int
		size    int
		stall   bool // the peer stops reading for stall first
		// want: at least min samples, each at least atLeast, the last at
		// least lastAtLeast
		min                  int
		atLeast, lastAtLeast time.Duration
	}{
		{name: "unstamped frames report nothing", frames: 3, size: 100},
		{name: "a stamped frame reports its wait", stamped: true, frames: 1, size: 100, min: 1, atLeast: 50 * time.Millisecond},
		// A backlog is written in several batches; each reports its own
		// head's wait: the last batch, written after the stall, waited
		// since its own stamp (before the stall), not since the previous
		// partial write.
		{name: "a backlog reports each batch head's own stamp", stamped: true, frames: 64, size: 16 << 10, stall: true,
			min: 2, atLeast: 50 * time.Millisecond, lastAtLeast: stall},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got latencies
			p := newPoller(t, Config{Workers: 2, OnLatency: got.observe})
			addr := serve(t, p, &lineEcho{}, smallSendBuf)
			peer := dialSmall(t, addr)
			c := onlyConn(t, p)

			frame := make([]byte, tt.size)
			// A stamp 50ms in the past stands for a message published then.
			stamp := time.Now().Add(-50 * time.Millisecond).UnixNano()
			for range tt.frames {
				if tt.stamped {
					c.EnqueueStamped(frame, 0, stamp)
				} else {
					c.Enqueue(frame, 0)
				}
			}
			if tt.stall {
				start := time.Now()
				eventually(t, "a stalled backlog", func() bool {
					return c.Queued() > 0 && time.Since(start) >= stall
				})
			}
			if _, err := io.ReadFull(peer, make([]byte, tt.frames*tt.size)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "an empty queue", func() bool { return c.Queued() == 0 })
			d := got.take()
			if len(d) < tt.min || (tt.min == 0 && len(d) > 0) {
				t.Fatalf("%d samples %v, want %d or more (none when unstamped)", len(d), d, tt.min)
			}
			if len(d) > 0 {
				if m := slices.Min(d); m < tt.atLeast {
					t.Fatalf("samples %v: the smallest is under %v", d, tt.atLeast)
				}
				if m := slices.Max(d); m > time.Minute {
					t.Fatalf("samples %v: the largest is implausible", d)
				}
				if last := d[len(d)-1]; last < tt.lastAtLeast {
					t.Fatalf("samples %v: the last is under %v", d, tt.lastAtLeast)
				}
			}
		})
	}
}

func TestLatencyStampsFollowCloseWith(t *testing.T) {
	var got latencies
	p := newPoller(t, Config{Workers: 2, OnLatency: got.observe})
	addr := serve(t, p, &lineEcho{}, smallSendBuf)
	dialSmall(t, addr) // never reads
	c := onlyConn(t, p)

	frame := make([]byte, 16<<10)
	for range 64 {
		c.EnqueueStamped(frame, 0, time.Now().UnixNano())
	}
	eventually(t, "a blocked queue", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.writeBlocked
	})
	c.CloseWith([]byte("bye\n"), true) // drops what was not started, queues an unstamped frame
	c.mu.Lock()
	q := c.queue()
	last := q[len(q)-1].stamp
	c.mu.Unlock()
	if last != 0 {
		t.Fatalf("the close frame's stamp is %d, want 0", last)
	}
	c.Close()
}

// BenchmarkFanoutStamped is BenchmarkFanout with publish stamps and a
// latency observer: its cost over BenchmarkFanout is the measurement's.
func BenchmarkFanoutStamped(b *testing.B) {
	// The hub reads the clock once per message, not per follower: one
	// stamp for the whole run costs the same here.
	stamp := time.Now().UnixNano()
	var n atomic.Int64
	benchFanout(b, Config{OnLatency: func(time.Duration) { n.Add(1) }}, func(c *Conn, frame []byte) {
		c.EnqueueStamped(frame, 0, stamp)
	})
}
