package hub

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// numShards is the fixed number of key shards. 64 keeps lock contention
// between publishers to distinct keys low on machines with dozens of cores
// while the sweeper and the eviction scan stay cheap.
const numShards = 64

// shard holds the key states whose key hashes to it. Publish, Follow,
// Unfollow, DropKey, eviction and the sweeper take mu; no code holds two
// shard locks at once.
type shard struct {
	mu   sync.Mutex
	keys map[string]*keyState // guarded by mu

	// The messages held in this shard's history, in publish order, oldest
	// at head. Guarded by mu.
	head, tail *Message
	// oldest mirrors head.order (0: no history) so that global eviction can
	// find the shard with the oldest message without taking every lock.
	oldest atomic.Uint64
	// sweepEmpty is set when a publish left a key state with neither
	// history nor followers (history size 0); the sweeper then walks the
	// shard's keys to delete such states. Guarded by mu.
	sweepEmpty bool

	_ [64]byte // keep neighbouring shards' locks off one cache line
}

// keyState is one key's seq, epoch, history and followers. All fields are
// guarded by the lock of the key's shard.
type keyState struct {
	key   string
	epoch string
	seq   uint64 // newest seq; 0 before the first publish
	hist  ring   // held messages, seqs seq-hist.n+1 .. seq
	// followers is iterated on every publish; ref.idx is each entry's
	// position so that removal is O(1) (swap with the last).
	followers []follower
	dead      bool // removed from its shard (DropKey, or empty and deleted)
	// waiters are the confirmations waiting for acks of this key's seqs.
	waiters []*Confirmation
	// emptySince is when a state that never saw a message (seq 0) last
	// became empty (unix ms); the sweeper deletes it emptyKeyGrace later.
	emptySince int64
	// mir is the cluster-mode part; nil without a Broker.
	mir *mirror
}

// emptyKeyGrace is how long a key that never saw a message keeps its state,
// and so its epoch, once nobody follows it. Long-poll clients follow only
// while a request is held: without the grace, each poll cycle would find a
// new epoch and a quiet key would answer resync every time. (A key that did
// see messages keeps its state while it has history.)
const emptyKeyGrace = 2 * time.Minute

// follower is one Subscription's entry in a key's follower list. The
// Follower itself is reached through sub (sub.f): the delivery loop reads
// sub.stopped first, on the same cache line, and every connection's entry
// is 16 bytes instead of 32.
type follower struct {
	sub *Subscription
	ref *followRef
}

// followRef links a Subscription to one followed key state. It is stored in
// both the Subscription's key map and the key's follower list; idx is
// guarded by the shard lock.
type followRef struct {
	ks  *keyState
	idx int
}

// keyStateLocked returns key's state, creating it (seq 0, fresh epoch) when
// absent. The caller holds sh.mu.
func (h *Hub) keyStateLocked(sh *shard, key string) *keyState {
	if ks := sh.keys[key]; ks != nil {
		return ks
	}
	// Clone: the caller's key may point into a large request buffer.
	ks := &keyState{key: strings.Clone(key)}
	sh.keys[key] = ks
	h.keys.Add(1)
	if h.broker == nil {
		ks.epoch = h.newEpoch()
		return ks
	}
	// Cluster mode: the store has the epoch; the first Sync brings it. A
	// mirror nobody follows is dropped by the sweeper after the grace.
	ks.mir = newMirror()
	ks.emptySince = h.cfg.Load().now().UnixMilli()
	sh.sweepEmpty = true
	h.broker.Track(ks.key)
	return ks
}

// deleteKeyLocked removes ks from its shard; its history must already be
// empty. The caller holds sh.mu.
func (h *Hub) deleteKeyLocked(sh *shard, ks *keyState) {
	if ks.dead {
		return
	}
	ks.dead = true
	delete(sh.keys, ks.key)
	h.keys.Add(-1)
	if ks.mir != nil {
		ks.mir.wakeLocked(ks, true)
		if !ks.mir.synced {
			close(ks.mir.syncedCh) // wake Read: it looks again
		}
		h.broker.Untrack(ks.key)
	}
}

// deleteIfEmptyLocked deletes ks when it has neither history nor
// followers: nothing is lost, and a key that was only ever touched once must
// not cost memory forever. A key that never saw a message is left to the
// sweeper for emptyKeyGrace (see there). The caller holds sh.mu.
func (h *Hub) deleteIfEmptyLocked(sh *shard, ks *keyState) {
	if ks.mir != nil {
		// A mirror stays while followed and for the grace after: its
		// history is the store's, kept current at the cost of one
		// subscription, and a poll client comes back within the grace.
		if len(ks.followers) == 0 {
			ks.emptySince = h.cfg.Load().now().UnixMilli()
			sh.sweepEmpty = true
		}
		return
	}
	if ks.hist.n != 0 || len(ks.followers) != 0 {
		return
	}
	if ks.seq > 0 {
		h.deleteKeyLocked(sh, ks)
		return
	}
	ks.emptySince = h.cfg.Load().now().UnixMilli()
	sh.sweepEmpty = true
}

// sweepEmptyLocked deletes the shard's empty states that are due and
// reports whether any empty state is left waiting. The caller holds sh.mu.
func (h *Hub) sweepEmptyLocked(sh *shard, nowMs int64) (waiting bool) {
	for _, ks := range sh.keys {
		if ks.mir != nil {
			if len(ks.followers) != 0 {
				continue
			}
			if nowMs-ks.emptySince < emptyKeyGrace.Milliseconds() {
				waiting = true
				continue
			}
			h.clearHistoryLocked(sh, ks)
			h.deleteKeyLocked(sh, ks)
			continue
		}
		if ks.hist.n != 0 || len(ks.followers) != 0 {
			continue
		}
		if ks.seq > 0 || nowMs-ks.emptySince >= emptyKeyGrace.Milliseconds() {
			h.deleteKeyLocked(sh, ks)
			continue
		}
		waiting = true
	}
	return waiting
}

// addFollowerLocked appends sub to ks's followers and returns its ref.
// The caller holds the shard lock.
func (ks *keyState) addFollowerLocked(sub *Subscription) *followRef {
	ref := &followRef{ks: ks, idx: len(ks.followers)}
	ks.followers = append(ks.followers, follower{sub: sub, ref: ref})
	return ref
}

// removeFollowerLocked removes the entry of ref from ks's followers. The
// caller holds the shard lock and has checked that ref belongs to ks.
func (ks *keyState) removeFollowerLocked(ref *followRef) {
	i, last := ref.idx, len(ks.followers)-1
	if i < 0 || i > last || ks.followers[i].ref != ref {
		return
	}
	if i != last {
		ks.followers[i] = ks.followers[last]
		ks.followers[i].ref.idx = i
	}
	ks.followers[last] = follower{}
	ks.followers = ks.followers[:last]
	ref.idx = -1
	// Give memory back after a mass disconnect from a popular key.
	if c := cap(ks.followers); c > 64 && len(ks.followers) < c/4 {
		ks.followers = append(make([]follower, 0, c/2), ks.followers...)
	}
}

// infoLocked describes ks. The caller holds the shard lock.
func (ks *keyState) infoLocked() KeyInfo {
	return KeyInfo{Key: ks.key, Epoch: ks.epoch, Seq: ks.seq, History: ks.hist.n, Followers: len(ks.followers)}
}
