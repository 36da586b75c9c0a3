package hub

import (
	"math"
	"unsafe"
)

// messageOverhead is what a held message costs beyond its key, event and
// data: the Message struct, its history slot and allocator rounding. It is
// counted against the global cap so that millions of tiny messages are
// bounded too.
const messageOverhead = int64(unsafe.Sizeof(Message{})) + 32

// maxEvictPerCall bounds the work one publisher does for the global cap, so
// a publisher racing many others cannot loop forever; whoever publishes next
// continues.
const maxEvictPerCall = 4096

// ring is a key's history: a FIFO of messages with contiguous seqs, grown by
// doubling up to the history size so that a key with one message does not
// pay for 256 slots.
type ring struct {
	buf  []*Message
	head int // index of the oldest message
	n    int
}

// at returns the i-th oldest message, 0 <= i < n.
func (r *ring) at(i int) *Message {
	j := r.head + i
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	return r.buf[j]
}

// push appends m; limit is the history size, the largest capacity needed.
func (r *ring) push(m *Message, limit int) {
	if r.n == len(r.buf) {
		r.resize(min(max(2*len(r.buf), 2), max(limit, r.n+1)))
	}
	j := r.head + r.n
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	r.buf[j] = m
	r.n++
}

// popFront removes and returns the oldest message.
func (r *ring) popFront() *Message {
	m := r.buf[r.head]
	r.buf[r.head] = nil
	r.head++
	if r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
	switch {
	case r.n == 0:
		// An empty history keeps no buffer: most keys go quiet.
		r.buf, r.head = nil, 0
	case len(r.buf) > 8 && r.n < len(r.buf)/4:
		r.resize(len(r.buf) / 2)
	}
	return m
}

func (r *ring) resize(c int) {
	buf := make([]*Message, c)
	for i := 0; i < r.n; i++ {
		buf[i] = r.at(i)
	}
	r.buf, r.head = buf, 0
}

// appendLocked adds m to ks's history and to the shard's publish-order list,
// then trims ks to the history size. The caller holds sh.mu.
func (h *Hub) appendLocked(sh *shard, ks *keyState, m *Message, size int) {
	m.ks = ks
	m.size = messageOverhead + int64(len(m.Key)+len(m.Event)+len(m.Data))
	ks.hist.push(m, size)
	if sh.tail == nil {
		sh.head, sh.tail = m, m
		sh.oldest.Store(m.order)
	} else {
		m.prev = sh.tail
		sh.tail.next = m
		sh.tail = m
	}
	h.histMsgs.Add(1)
	h.histBytes.Add(m.size)
	for ks.hist.n > size {
		h.removeOldestLocked(sh, ks)
	}
}

// removeOldestLocked drops ks's oldest held message from history. The
// caller holds sh.mu.
func (h *Hub) removeOldestLocked(sh *shard, ks *keyState) {
	m := ks.hist.popFront()
	if m.prev == nil {
		sh.head = m.next
		if sh.head == nil {
			sh.oldest.Store(0)
		} else {
			sh.oldest.Store(sh.head.order)
		}
	} else {
		m.prev.next = m.next
	}
	if m.next == nil {
		sh.tail = m.prev
	} else {
		m.next.prev = m.prev
	}
	// Followers' queues may still hold m; unlinking keeps them from
	// retaining the rest of the history through it.
	m.prev, m.next, m.ks = nil, nil, nil
	h.histMsgs.Add(-1)
	h.histBytes.Add(-m.size)
}

// clearHistoryLocked drops all of ks's history. The caller holds sh.mu.
func (h *Hub) clearHistoryLocked(sh *shard, ks *keyState) {
	for ks.hist.n > 0 {
		h.removeOldestLocked(sh, ks)
	}
}

// trimLocked shrinks every key of sh to size messages (Configure). The
// caller holds sh.mu.
func (h *Hub) trimLocked(sh *shard, size int) {
	for _, ks := range sh.keys {
		if ks.hist.n <= size {
			continue
		}
		for ks.hist.n > size {
			h.removeOldestLocked(sh, ks)
		}
		h.deleteIfEmptyLocked(sh, ks)
	}
}

// expireLocked drops messages published before cutoff (Unix ms). The
// shard's list head is always the oldest message of its own key, so expiry
// costs O(expired), not O(keys). The caller holds sh.mu.
func (h *Hub) expireLocked(sh *shard, cutoff int64) {
	for sh.head != nil && sh.head.TS < cutoff {
		ks := sh.head.ks
		h.removeOldestLocked(sh, ks)
		h.evicted.Add(1)
		h.deleteIfEmptyLocked(sh, ks)
	}
}

// enforceCap evicts the hub's oldest messages, across shards, until the
// history bytes are within the global cap. It takes one shard lock at a
// time and must be called with none held. Only one goroutine evicts at a
// time; the others go on, since the evictor re-reads the byte count before
// every step (the cap may be overshot by what concurrent publishers add
// meanwhile, one message each).
func (h *Hub) enforceCap() {
	limit := h.cfg.Load().maxBytes
	if limit <= 0 || h.histBytes.Load() <= limit {
		return
	}
	if !h.evictMu.TryLock() {
		return
	}
	defer h.evictMu.Unlock()
	for n := 0; n < maxEvictPerCall && h.histBytes.Load() > limit; n++ {
		// Find the shard holding the oldest message, and the next oldest
		// head elsewhere: the chosen shard may evict up to that point
		// before the order across shards has to be looked at again.
		best, first, second := -1, uint64(math.MaxUint64), uint64(math.MaxUint64)
		for i := range h.shards {
			o := h.shards[i].oldest.Load()
			switch {
			case o == 0:
			case o < first:
				best, first, second = i, o, first
			case o < second:
				second = o
			}
		}
		if best < 0 {
			return
		}
		sh := &h.shards[best]
		sh.mu.Lock()
		// n also counts rounds that evicted nothing (another goroutine
		// emptied the shard meanwhile), so the loop always ends.
		for n < maxEvictPerCall && sh.head != nil && sh.head.order <= second && h.histBytes.Load() > limit {
			ks := sh.head.ks
			h.removeOldestLocked(sh, ks)
			h.evicted.Add(1)
			h.deleteIfEmptyLocked(sh, ks)
			n++
		}
		sh.mu.Unlock()
	}
}
