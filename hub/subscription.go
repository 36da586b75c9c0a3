package hub

import (
	"math"
	"sync"
	"sync/atomic"
)

// Subscription is one connection's view of the hub: the keys it follows.
// The transport creates it with Hub.Subscribe when the connection starts and
// must call Close when the connection is gone. All methods are
// goroutine-safe.
type Subscription struct {
	h *Hub
	f Follower

	// stopped is set once the hub has decided to close the follower (slow
	// consumer, dropped key, shutdown): from then on it gets no Deliver or
	// Notify, and Close is called on it exactly once.
	stopped atomic.Bool

	// mu guards the fields below. It is taken before a shard lock, never
	// while holding one. (Field order and sizes keep the struct at 80
	// bytes, a malloc size class: every connection holds one.)
	mu sync.Mutex
	// keys are the followed keys' refs. A slice, searched linearly: a
	// connection follows a few keys, and an empty or one-entry map would
	// cost an idle connection several times the bytes.
	keys    []*followRef
	cid     *string // client id for acknowledgements, nil: none; see SetClientID
	maxKeys int32   // 0: the hub's WithMaxKeysPerConn; negative: unlimited
	done    bool
}

// Subscribe returns a Subscription delivering to f. On a closed hub the
// subscription is already closed: Follow returns ErrClosed.
func (h *Hub) Subscribe(f Follower) *Subscription {
	s := &Subscription{h: h, f: f}
	h.subsMu.Lock()
	if h.closed.Load() {
		s.done = true
	} else {
		h.subs[s] = struct{}{}
	}
	h.subsMu.Unlock()
	return s
}

// SetMaxKeys overrides the hub's per-connection key limit for this
// subscription (a route's setting): n > 0 is the limit, 0 restores the hub's,
// a negative n means unlimited. Keys already followed stay.
func (s *Subscription) SetMaxKeys(n int) {
	m := int32(min(max(n, -1), math.MaxInt32)) // beyond 2^31 keys is unlimited in practice
	s.mu.Lock()
	s.maxKeys = m
	s.mu.Unlock()
}

// Follow makes the subscription follow key. Under the key's shard lock it
// adds the follower and sends Notify(registered) with the key's newest seq;
// with resume it then delivers every held message after since, in order,
// when epoch is the key's epoch (or since is 0) and history still reaches
// back to since+1, and otherwise sends Notify(resync). No message published
// after Follow took the lock can reach the follower before those (I1).
//
// Following a key again repeats the notice and replay without adding a
// second entry. Follow returns ErrBadKey for an invalid key, ErrTooManyKeys
// when a new key would exceed the limit, ErrTooManyFollowers when the key
// has WithMaxFollowersPerKey followers already, and ErrClosed after Close,
// after the hub closed, or once the hub has closed the follower.
func (s *Subscription) Follow(key string, since uint64, epoch string, resume bool) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	h := s.h
	s.mu.Lock()
	ok, replayed, err := s.followLocked(key, since, epoch, resume)
	s.mu.Unlock()

	if replayed > 0 {
		h.delivered.Add(uint64(replayed))
	}
	if !ok {
		// Close is called without any lock held: a follower may close its
		// subscription from it.
		h.dropped.Add(1)
		if s.stopped.CompareAndSwap(false, true) {
			h.slowCloses.Add(1)
			s.f.Close(ReasonSlowConsumer)
		}
	}
	if err == nil {
		h.registers.Add(1)
	}
	return err
}

// followLocked does Follow's work; ok is false when the follower's queue
// overflowed. The caller holds s.mu.
func (s *Subscription) followLocked(key string, since uint64, epoch string, resume bool) (ok bool, replayed int, err error) {
	h := s.h
	if s.done || s.stopped.Load() || h.closed.Load() {
		return true, 0, ErrClosed
	}
	var ref *followRef
	at := s.indexLocked(key)
	if at >= 0 {
		ref = s.keys[at]
	} else {
		limit := int(s.maxKeys)
		if limit == 0 {
			limit = h.cfg.Load().maxKeysPerConn
		}
		if limit > 0 && len(s.keys) >= limit {
			return true, 0, ErrTooManyKeys
		}
	}

	sh := h.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := h.keyStateLocked(sh, key)
	if ref != nil && ref.ks != ks {
		// DropKey removed the state ref points to and has yet to tell us;
		// its entry is already gone from the old state.
		ref = nil
	}
	if ref == nil {
		if lim := h.cfg.Load().maxFollowers; lim > 0 && len(ks.followers) >= lim {
			return true, 0, ErrTooManyFollowers
		}
		ref = ks.addFollowerLocked(s)
		if at >= 0 {
			s.keys[at] = ref
		} else {
			s.keys = append(s.keys, ref)
		}
	}
	if ks.mir != nil && !ks.mir.synced {
		// Cluster mode, the key's state is on its way (Track): Sync
		// registers the follower, under this lock, when it comes.
		ks.mir.regs = append(ks.mir.regs, pendingReg{sub: s, ref: ref, since: since, epoch: epoch, resume: resume})
		return true, 0, nil
	}
	ok, replayed = s.registerLocked(ks, since, epoch, resume)
	return ok, replayed, nil
}

// registerLocked sends the registered notice and the replay or resync. It
// reports false when the follower's queue overflowed, and how many messages
// it replayed. The caller holds the key's shard lock.
func (s *Subscription) registerLocked(ks *keyState, since uint64, epoch string, resume bool) (ok bool, replayed int) {
	if !s.f.Notify(Notice{Kind: NoticeRegistered, Key: ks.key, Epoch: ks.epoch, Seq: ks.seq}) {
		return false, 0
	}
	if !resume {
		return true, 0
	}
	from, ok := ks.coverLocked(since, epoch)
	if !ok {
		return s.f.Notify(Notice{Kind: NoticeResync, Key: ks.key, Epoch: ks.epoch, Seq: ks.seq}), replayed
	}
	for i := from; i < ks.hist.n; i++ {
		if !s.f.Deliver(ks.hist.at(i)) {
			return false, replayed
		}
		replayed++
	}
	return true, replayed
}

// FollowersFull reports whether key has as many local followers as
// WithMaxFollowersPerKey allows, so that a new follower's Follow would
// return ErrTooManyFollowers: transports that must answer before they
// follow (an HTTP status) ask first. It is O(1) under the key's shard lock.
func (h *Hub) FollowersFull(key string) bool {
	lim := h.cfg.Load().maxFollowers
	if lim <= 0 {
		return false
	}
	sh := h.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := sh.keys[key]
	return ks != nil && len(ks.followers) >= lim
}

// Unfollow stops following key. It reports whether key was followed.
func (s *Subscription) Unfollow(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.indexLocked(key)
	if at < 0 {
		return false
	}
	ref := s.keys[at]
	s.removeLocked(at)
	s.h.detach(ref)
	return true
}

// indexLocked returns key's position in s.keys, or -1. The caller holds s.mu.
func (s *Subscription) indexLocked(key string) int {
	for i, ref := range s.keys {
		if ref.ks.key == key {
			return i
		}
	}
	return -1
}

// removeLocked drops s.keys[i]. The caller holds s.mu.
func (s *Subscription) removeLocked(i int) {
	last := len(s.keys) - 1
	s.keys[i] = s.keys[last]
	s.keys[last] = nil
	s.keys = s.keys[:last]
}

// Close unfollows every key and forgets the subscription. It does not call
// the follower's Close: the transport calls Close because its connection is
// gone. Close is idempotent.
func (s *Subscription) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	for _, ref := range s.keys {
		s.h.detach(ref)
	}
	s.keys = nil
	s.h.subsMu.Lock()
	delete(s.h.subs, s)
	s.h.subsMu.Unlock()
}

// Keys returns the keys followed, in no particular order.
func (s *Subscription) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.keys))
	for _, ref := range s.keys {
		keys = append(keys, ref.ks.key)
	}
	return keys
}

// NumKeys returns how many keys are followed.
func (s *Subscription) NumKeys() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// forget drops key from the subscription if it still maps to ref (DropKey,
// after releasing the shard lock).
func (s *Subscription) forget(key string, ref *followRef) {
	s.mu.Lock()
	if at := s.indexLocked(key); at >= 0 && s.keys[at] == ref {
		s.removeLocked(at)
	}
	s.mu.Unlock()
}

// detach removes ref's entry from its key state, deleting the state when it
// is left with neither followers nor history. It takes the key's shard lock.
func (h *Hub) detach(ref *followRef) {
	ks := ref.ks
	sh := h.shardFor(ks.key)
	sh.mu.Lock()
	if !ks.dead {
		ks.removeFollowerLocked(ref)
		h.deleteIfEmptyLocked(sh, ks)
	}
	sh.mu.Unlock()
}
