package netpoll

import (
	"sync"
	"time"
)

// wheel is a hashed timing wheel: one goroutine and one ticker serve the
// timers of every connection (heartbeats, idle timeouts, close grace), so a
// connection costs two pointers and a tick number, not a runtime timer.
type wheel struct {
	p     *Poller
	tick  time.Duration
	start time.Time

	mu    sync.Mutex
	slots [wheelSlots]*Conn // heads of doubly linked lists, guarded by mu
	now   uint64            // last tick processed, guarded by mu
	wait  []*Conn           // TLS connections waiting for send room, guarded by mu

	quit chan struct{}
	done chan struct{}
}

func newWheel(p *Poller, tick time.Duration) *wheel {
	w := &wheel{p: p, tick: tick, start: time.Now(), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *wheel) stop() {
	close(w.quit)
	<-w.done
}

// schedule arms c's timer to fire after d, replacing any earlier one.
func (w *wheel) schedule(c *Conn, d time.Duration) {
	ticks := uint64((d + w.tick - 1) / w.tick)
	if ticks == 0 {
		ticks = 1
	}
	w.mu.Lock()
	w.unlinkLocked(c)
	c.tAt = w.now + ticks
	slot := &w.slots[c.tAt%wheelSlots]
	c.tNext = *slot
	if c.tNext != nil {
		c.tNext.tPrev = c
	}
	c.tPrev = nil
	*slot = c
	w.mu.Unlock()
}

func (w *wheel) remove(c *Conn) {
	w.mu.Lock()
	w.unlinkLocked(c)
	w.mu.Unlock()
}

func (w *wheel) unlinkLocked(c *Conn) {
	if c.tAt == 0 {
		return
	}
	if c.tPrev != nil {
		c.tPrev.tNext = c.tNext
	} else {
		w.slots[c.tAt%wheelSlots] = c.tNext
	}
	if c.tNext != nil {
		c.tNext.tPrev = c.tPrev
	}
	c.tNext, c.tPrev, c.tAt = nil, nil, 0
}

// retry asks the wheel to signal c writable on its next tick: a TLS
// connection that had no send room never sees an EPOLLOUT edge, because it
// never made the kernel refuse a write.
func (w *wheel) retry(c *Conn) {
	w.mu.Lock()
	w.wait = append(w.wait, c)
	w.mu.Unlock()
}

func (w *wheel) run() {
	defer close(w.done)
	t := time.NewTicker(w.tick)
	defer t.Stop()
	var due, waiting []*Conn
	for {
		select {
		case <-w.quit:
			return
		case now := <-t.C:
			w.p.clock.Store(now.UnixNano())
			target := uint64(now.Sub(w.start) / w.tick)
			w.mu.Lock()
			for w.now < target {
				w.now++
				slot := &w.slots[w.now%wheelSlots]
				for c := *slot; c != nil; {
					next := c.tNext
					if c.tAt <= w.now {
						w.unlinkLocked(c)
						due = append(due, c)
					}
					c = next
				}
			}
			waiting, w.wait = w.wait, waiting[:0]
			w.mu.Unlock()

			for i, c := range due {
				w.fire(c, now)
				due[i] = nil
			}
			due = due[:0]
			for i, c := range waiting {
				c.onWritable()
				waiting[i] = nil
			}
		}
	}
}

func (w *wheel) fire(c *Conn, now time.Time) {
	if c.Closing() {
		// The close grace period is over.
		c.Close()
		return
	}
	d := c.h.OnTimer(c, now)
	if d > 0 && !c.Closing() {
		w.schedule(c, d)
	}
}
