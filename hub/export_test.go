package hub

import "fmt"

// SweepNow runs one sweep (TTL expiry, empty-state deletion, global cap)
// synchronously, for tests with a fake clock.
func (h *Hub) SweepNow() { h.sweep() }

// CheckInvariants walks every shard and returns an error when the
// bookkeeping disagrees with itself: list order, ring contents, counters,
// follower indexes.
func (h *Hub) CheckInvariants() error {
	var msgs, bytes, keys int64
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		err := func() error {
			keys += int64(len(sh.keys))
			inList := map[*Message]bool{}
			var prev *Message
			for m := sh.head; m != nil; m = m.next {
				if m.prev != prev {
					return fmt.Errorf("shard %d: broken prev link at %s/%d", i, m.Key, m.Seq)
				}
				if prev != nil && prev.order >= m.order {
					return fmt.Errorf("shard %d: list out of order at %s/%d", i, m.Key, m.Seq)
				}
				if m.ks == nil || m.ks.dead || sh.keys[m.Key] != m.ks {
					return fmt.Errorf("shard %d: listed message %s/%d has no live key state", i, m.Key, m.Seq)
				}
				inList[m] = true
				msgs++
				bytes += m.size
				prev = m
			}
			if sh.tail != prev {
				return fmt.Errorf("shard %d: tail mismatch", i)
			}
			want := uint64(0)
			if sh.head != nil {
				want = sh.head.order
			}
			if got := sh.oldest.Load(); got != want {
				return fmt.Errorf("shard %d: oldest %d, head order %d", i, got, want)
			}
			n := 0
			for key, ks := range sh.keys {
				if ks.key != key || ks.dead {
					return fmt.Errorf("shard %d: key %q maps to state of %q (dead %v)", i, key, ks.key, ks.dead)
				}
				for j := 0; j < ks.hist.n; j++ {
					m := ks.hist.at(j)
					if m.Seq != ks.seq-uint64(ks.hist.n)+1+uint64(j) {
						return fmt.Errorf("key %q: history slot %d holds seq %d, newest %d, held %d", key, j, m.Seq, ks.seq, ks.hist.n)
					}
					if !inList[m] {
						return fmt.Errorf("key %q: seq %d not in shard list", key, m.Seq)
					}
					n++
				}
				for j, f := range ks.followers {
					if f.ref.idx != j || f.ref.ks != ks {
						return fmt.Errorf("key %q: follower %d has idx %d", key, j, f.ref.idx)
					}
				}
			}
			if n != len(inList) {
				return fmt.Errorf("shard %d: %d messages in rings, %d in list", i, n, len(inList))
			}
			return nil
		}()
		sh.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if got := h.histMsgs.Load(); got != msgs {
		return fmt.Errorf("history messages counter %d, counted %d", got, msgs)
	}
	if got := h.histBytes.Load(); got != bytes {
		return fmt.Errorf("history bytes counter %d, counted %d", got, bytes)
	}
	if got := h.keys.Load(); got != keys {
		return fmt.Errorf("keys counter %d, counted %d", got, keys)
	}
	return nil
}

// MessageOverhead is the fixed per-message cost counted against the cap.
const MessageOverhead = messageOverhead
