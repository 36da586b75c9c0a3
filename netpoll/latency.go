package netpoll

import "time"

// Publish→write latency, per frame and exact. EnqueueStamped keeps, in
// each queued entry next to its frame, its message's publish stamp. A
// write that completes frames reports, through Config.OnLatency, the wait
// of the oldest stamped frame among them: one sample per write batch, one
// clock read next to a writev that costs a hundred times more, and nothing
// per idle connection (the stamp lives in the queue entry, and an idle
// connection has no queue array).
//
// Per frame rather than per connection head (lag.go's headAt) because a
// backlogged connection is where the tail lives: after a partial write the
// next head's own stamp is still known, so a consumer that trickles shows
// its real, growing wait instead of the time of its last write.

// reportLatencyLocked reports the wait of the oldest stamped frame among
// the n a write just completed. The caller holds c.mu and has not yet
// shifted the queue.
func (c *Conn) reportLatencyLocked(n int) {
	f := c.p.cfg.OnLatency
	if f == nil {
		return
	}
	out := c.queue()
	for _, q := range out[:min(n, len(out))] {
		if q.stamp != 0 {
			f(time.Duration(max(0, time.Now().UnixNano()-q.stamp)))
			return
		}
	}
}
