package hub

import "time"

// ackID names who acknowledges: a subscription, or, for transports whose
// client comes back on a new request (SSE, long poll), the client id it
// sends along, so that a later request can acknowledge what an earlier one
// was written.
type ackID struct {
	sub *Subscription
	cid string
}

// Confirmation follows one published message until every follower it was
// queued to has acknowledged its seq, for publish with "confirm". Its
// counters are guarded by the lock of the key's shard.
type Confirmation struct {
	sh      *shard
	ks      *keyState
	seq     uint64
	written int
	acked   int
	pending map[ackID]int // who has yet to acknowledge, with multiplicity
	done    chan struct{} // closed when pending empties
	waiting bool          // listed in ks.waiters
}

func newConfirmation(sh *shard, ks *keyState, seq uint64) *Confirmation {
	return &Confirmation{sh: sh, ks: ks, seq: seq, pending: make(map[ackID]int), done: make(chan struct{})}
}

// startLocked lists c with its key to receive acks, or completes it at once
// when the message was queued to nobody. The caller holds c.sh.mu.
func (c *Confirmation) startLocked() {
	if len(c.pending) == 0 {
		close(c.done)
		return
	}
	c.waiting = true
	c.ks.waiters = append(c.ks.waiters, c)
}

// Wait waits until every follower acknowledged or timeout passed, then
// stops tracking, and returns how many acknowledged of how many the message
// was written to.
func (c *Confirmation) Wait(timeout time.Duration) (acked, written int) {
	t := time.NewTimer(timeout)
	select {
	case <-c.done:
	case <-t.C:
	}
	t.Stop()
	c.sh.mu.Lock()
	defer c.sh.mu.Unlock()
	if c.waiting {
		c.ks.removeWaiterLocked(c)
	}
	return c.acked, c.written
}

// removeWaiterLocked drops c from ks.waiters. The caller holds the shard lock.
func (ks *keyState) removeWaiterLocked(c *Confirmation) {
	for i, w := range ks.waiters {
		if w == c {
			last := len(ks.waiters) - 1
			ks.waiters[i] = ks.waiters[last]
			ks.waiters[last] = nil
			ks.waiters = ks.waiters[:last]
			break
		}
	}
	c.waiting = false
	if len(ks.waiters) == 0 {
		ks.waiters = nil
	}
}

// ackLocked records that id has applied ks up to seq. The caller holds the
// key's shard lock.
func (ks *keyState) ackLocked(id ackID, seq uint64) {
	for i := 0; i < len(ks.waiters); {
		c := ks.waiters[i]
		if n := c.pending[id]; n > 0 && c.seq <= seq {
			delete(c.pending, id)
			c.acked += n
			if len(c.pending) == 0 {
				close(c.done)
				ks.removeWaiterLocked(c)
				continue
			}
		}
		i++
	}
}

// SetClientID names the client behind the subscription for acknowledgements
// (see ackID): an SSE stream or a held long poll whose client comes back on
// a later request, which acknowledges through Hub.AckClient. Call it before
// Follow.
func (s *Subscription) SetClientID(cid string) {
	var p *string // nil: none
	if cid != "" {
		p = &cid
	}
	s.mu.Lock()
	// A new subExt, not a write into the old one: ackID reads cid under
	// shard locks, without s.mu.
	x := new(subExt)
	if old := s.ext.Load(); old != nil {
		x.more = old.more
	}
	x.cid = p
	s.ext.Store(x)
	s.mu.Unlock()
}

func (s *Subscription) ackID() ackID {
	if x := s.ext.Load(); x != nil && x.cid != nil {
		return ackID{cid: *x.cid}
	}
	return ackID{sub: s}
}

// Ack records that the subscription's client applied key up to seq (the
// native {"type":"ack"}). Acks of keys not followed are ignored.
func (s *Subscription) Ack(key string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.indexLocked(key)
	if at < 0 {
		return
	}
	ks := s.keyLocked(at).ks
	sh := s.h.shardFor(key)
	sh.mu.Lock()
	if len(ks.waiters) > 0 {
		ks.ackLocked(s.ackID(), seq)
	}
	sh.mu.Unlock()
}

// AckClient records that the client cid applied key up to seq in epoch: an
// SSE or long-poll request resuming past seq. An empty cid acknowledges
// nothing: without it, one request cannot be told from another.
func (h *Hub) AckClient(cid, key, epoch string, seq uint64) {
	if cid == "" || ValidKey(key) != nil {
		return
	}
	sh := h.shardFor(key)
	sh.mu.Lock()
	if ks := sh.keys[key]; ks != nil && ks.epoch == epoch && len(ks.waiters) > 0 {
		ks.ackLocked(ackID{cid: cid}, seq)
	}
	sh.mu.Unlock()
}
