package netpoll

import (
	"cmp"
	"slices"
	"time"
)

// Fan-out lag, measured where it ends: at the write. Each connection keeps
// one stamp, the poller's coarse clock when the frame now at the head of its
// queue was queued (the clock is advanced by the wheel, so stamping costs an
// atomic load per delivery, not a clock read, and nothing per idle
// connection). Two views come out of it:
//
//   - TakeWriteLag: the longest wait between queueing and writing among the
//     frames written since the last call, updated by workers per write
//     batch with an atomic maximum: lag under CPU pressure, when every
//     connection reads but the workers fall behind.
//   - Backlogs: each connection's unwritten frames and how long its head has
//     waited: lag of connections that stopped reading, whose frames are
//     never written and so never show in the first view.
//
// Both have the wheel's resolution (Config.Tick). After a partial write the
// new head's stamp is the time of that write, not of its own enqueue: an
// underestimate for a connection that trickles, exact for one that stalls.

// Backlog is one connection's unwritten output, as Poller.Backlogs reports
// it.
type Backlog struct {
	Conn   *Conn
	Frames int           // frames queued, not yet written
	Age    time.Duration // how long the oldest of them has waited
}

// Backlogs appends to dst every live connection that has frames waiting to
// be written and is not closing, largest queue first (the oldest head
// first among equals), and returns it. dst is the caller's to reuse;
// clear it after use so that it does not keep closed connections alive.
//
// It visits every connection under the poller's connection lock, taking
// each connection's lock in turn (lock order: connsMu, then Conn.mu): 0.1
// to 0.2 ms for 10,000 connections (BenchmarkBacklogs), so a monitor may
// call it a few times a second.
func (p *Poller) Backlogs(dst []Backlog) []Backlog {
	now := p.clock.Load()
	p.connsMu.RLock()
	for _, c := range p.conns {
		if c == nil {
			continue
		}
		c.mu.Lock()
		if n := len(c.queue()); n > 0 && !c.closing && !c.closed {
			dst = append(dst, Backlog{Conn: c, Frames: n, Age: time.Duration(max(0, now-c.out.headAt))})
		}
		c.mu.Unlock()
	}
	p.connsMu.RUnlock()
	slices.SortFunc(dst, func(a, b Backlog) int {
		if a.Frames != b.Frames {
			return cmp.Compare(b.Frames, a.Frames)
		}
		return cmp.Compare(b.Age, a.Age)
	})
	return dst
}

// TakeWriteLag returns the longest time a frame waited between its enqueue
// and the write that completed it, among the frames written since the
// previous call, and starts a new window. It is meant for one reader (a
// monitor ticking at a steady pace).
func (p *Poller) TakeWriteLag() time.Duration {
	return time.Duration(p.writeLag.Swap(0))
}

// noteWritten records that c's head frame (and maybe more) was written:
// the wait it had joins the window's maximum, and a head still queued is
// stamped now. The caller holds c.mu.
func (p *Poller) noteWritten(c *Conn, more bool) {
	now := p.clock.Load()
	if !c.closing {
		lag := now - c.out.headAt
		for {
			old := p.writeLag.Load()
			if lag <= old || p.writeLag.CompareAndSwap(old, lag) {
				break
			}
		}
	}
	if more {
		c.out.headAt = now
	}
}
