package netpoll

import "time"

// Publish→write latency, per frame and exact. EnqueueStamped keeps, next to
// each queued frame, its message's publish stamp (c.stamps, aligned with
// c.out: every append, truncation and shift of out does the same to stamps).
// A write that completes frames reports, through Config.OnLatency, the wait
// of the oldest stamped frame among them: one sample per write batch, one
// clock read next to a writev that costs a hundred times more, and nothing
// per idle connection beyond the slice header.
//
// Per frame rather than per connection head (lag.go's headAt) because a
// backlogged connection is where the tail lives: after a partial write the
// next head's own stamp is still known, so a consumer that trickles shows
// its real, growing wait instead of the time of its last write.

// wroteStampsLocked drops the stamps of the n frames a write just
// completed, after reporting the oldest stamped one's wait. The caller holds
// c.mu and has not yet shifted c.out.
func (c *Conn) wroteStampsLocked(n int) {
	if n > len(c.stamps) {
		n = len(c.stamps) // out and stamps disagree: never expected, never fatal
	}
	if f := c.p.cfg.OnLatency; f != nil {
		for _, s := range c.stamps[:n] {
			if s != 0 {
				f(time.Duration(max(0, time.Now().UnixNano()-s)))
				break
			}
		}
	}
	left := copy(c.stamps, c.stamps[n:])
	c.stamps = c.stamps[:left]
	if left == 0 && cap(c.stamps) > 16 {
		c.stamps = nil // as out: no backlog-sized array kept while idle
	}
}
