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

	// mu guards the fields below but subIdx. It is taken before a shard
	// lock, never while holding one. (Field order and sizes keep the struct
	// at 64 bytes, a malloc size class: every connection holds one.)
	mu      sync.Mutex
	maxKeys int32 // 0: the hub's WithMaxKeysPerConn; negative: unlimited
	// The followed keys' refs, searched linearly (a connection follows a
	// few keys; even a one-entry map would cost an idle connection several
	// times the bytes): one, then ext's more. one is nil when no key is
	// followed. See the *KeyLocked methods.
	one *followRef
	// ext is what few subscriptions need: more keys and a client id. It is
	// nil until one does; an idle connection following one key has none.
	ext    atomic.Pointer[subExt]
	subIdx int32 // index in h.subs, guarded by h.subsMu; -1: not listed
	done   bool
}

// subExt is a subscription's rarely used state. more is guarded by the
// subscription's mu; cid is written once, before the first Follow, and
// read under shard locks (ackID), so a changed cid comes in a new subExt.
type subExt struct {
	more []*followRef // keys after Subscription.one
	cid  *string      // client id for acknowledgements, nil: none; see SetClientID
}

// numKeysLocked is how many keys are followed. The caller holds s.mu.
func (s *Subscription) numKeysLocked() int {
	if s.one == nil {
		return 0
	}
	n := 1
	if x := s.ext.Load(); x != nil {
		n += len(x.more)
	}
	return n
}

// keyLocked is the i-th followed key's ref, i < numKeysLocked(). The
// caller holds s.mu.
func (s *Subscription) keyLocked(i int) *followRef {
	if i == 0 {
		return s.one
	}
	return s.ext.Load().more[i-1]
}

// setKeyLocked replaces the i-th ref. The caller holds s.mu.
func (s *Subscription) setKeyLocked(i int, ref *followRef) {
	if i == 0 {
		s.one = ref
		return
	}
	s.ext.Load().more[i-1] = ref
}

// appendKeyLocked adds a ref. The caller holds s.mu.
func (s *Subscription) appendKeyLocked(ref *followRef) {
	if s.one == nil {
		s.one = ref
		return
	}
	x := s.ext.Load()
	if x == nil {
		x = new(subExt)
		s.ext.Store(x)
	}
	x.more = append(x.more, ref)
}

// removeLocked drops the i-th ref: the last takes its place. The caller
// holds s.mu.
func (s *Subscription) removeLocked(i int) {
	last := s.numKeysLocked() - 1
	if last > 0 {
		s.setKeyLocked(i, s.keyLocked(last))
		x := s.ext.Load()
		x.more[last-1] = nil
		x.more = x.more[:last-1]
		if len(x.more) == 0 {
			x.more = nil
		}
		return
	}
	s.one = nil
}

// Subscribe returns a Subscription delivering to f. On a closed hub the
// subscription is already closed: Follow returns ErrClosed.
func (h *Hub) Subscribe(f Follower) *Subscription {
	s := &Subscription{h: h, f: f, subIdx: -1}
	h.subsMu.Lock()
	if h.closed.Load() {
		s.done = true
	} else {
		s.subIdx = int32(len(h.subs))
		h.subs = append(h.subs, s)
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
		ref = s.keyLocked(at)
	} else {
		limit := int(s.maxKeys)
		if limit == 0 {
			limit = h.cfg.Load().maxKeysPerConn
		}
		if limit > 0 && s.numKeysLocked() >= limit {
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
			s.setKeyLocked(at, ref)
		} else {
			s.appendKeyLocked(ref)
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
	ref := s.keyLocked(at)
	s.removeLocked(at)
	s.h.detach(ref)
	return true
}

// indexLocked returns key's position among the refs, or -1. The caller
// holds s.mu.
func (s *Subscription) indexLocked(key string) int {
	for i := range s.numKeysLocked() {
		if s.keyLocked(i).ks.key == key {
			return i
		}
	}
	return -1
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
	for i := range s.numKeysLocked() {
		s.h.detach(s.keyLocked(i))
	}
	s.one = nil
	if x := s.ext.Load(); x != nil {
		clear(x.more)
		x.more = nil
	}
	s.h.unlistSub(s)
}

// unlistSub takes s out of h.subs: the last entry takes its place.
func (h *Hub) unlistSub(s *Subscription) {
	h.subsMu.Lock()
	defer h.subsMu.Unlock()
	i, last := int(s.subIdx), len(h.subs)-1
	if i < 0 || i > last || h.subs[i] != s {
		return
	}
	if i != last {
		h.subs[i] = h.subs[last]
		h.subs[i].subIdx = int32(i)
	}
	h.subs[last] = nil
	h.subs = h.subs[:last]
	s.subIdx = -1
	// Give memory back after a mass disconnect.
	if c := cap(h.subs); c > 64 && len(h.subs) < c/4 {
		h.subs = append(make([]*Subscription, 0, c/2), h.subs...)
	}
}

// Keys returns the keys followed, in no particular order.
func (s *Subscription) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.numKeysLocked()
	keys := make([]string, 0, n)
	for i := range n {
		keys = append(keys, s.keyLocked(i).ks.key)
	}
	return keys
}

// NumKeys returns how many keys are followed.
func (s *Subscription) NumKeys() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.numKeysLocked()
}

// forget drops key from the subscription if it still maps to ref (DropKey,
// after releasing the shard lock).
func (s *Subscription) forget(key string, ref *followRef) {
	s.mu.Lock()
	if at := s.indexLocked(key); at >= 0 && s.keyLocked(at) == ref {
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
