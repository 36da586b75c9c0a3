package hub

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// maxEarly bounds the messages a mirror holds while it waits for a Sync.
// The oldest go first: a later message still shows the gap, and the next
// Sync fills it from the store.
const maxEarly = 4096

// maxApplied bounds the outcomes a mirror keeps for this node's publishes
// in flight (see mirror.applied).
const maxApplied = 4096

// mirror is a key state's cluster-mode part: it exists only with a Broker.
// All fields are guarded by the key's shard lock.
type mirror struct {
	synced   bool          // the state holds the store's epoch, seq and history
	syncedCh chan struct{} // closed at the first Sync; Read waits on it
	// regs are Follow calls made before the first Sync: their registered,
	// replay or resync is sent when the state arrives.
	regs []pendingReg
	// early holds messages that cannot be applied yet: before the first
	// Sync, or after a gap while a Refill is outstanding.
	early     []*Message
	refilling bool

	// publishing counts this node's Publish calls of the key between the
	// broker call and their answer; confirming those with confirm. While
	// publishing is above 0, the outcome of every applied message is kept
	// in applied (or handed to a waiting Publish) so that a Publish whose
	// message came back before its own answer still finds its receivers.
	publishing, confirming int
	applied                []applied
	waits                  []*publishWait
}

// pendingReg is a Follow waiting for the key's first Sync.
type pendingReg struct {
	sub    *Subscription
	ref    *followRef
	since  uint64
	epoch  string
	resume bool
}

// applied is what applying one message did, for the Publish that sent it.
type applied struct {
	epoch     string
	seq       uint64
	receivers int
	conf      *Confirmation // with confirming > 0; nil otherwise
	claimed   bool
}

// publishWait is a Publish waiting for its message to be applied here.
type publishWait struct {
	epoch string
	seq   uint64
	done  chan struct{}
	res   applied
}

func newMirror() *mirror { return &mirror{syncedCh: make(chan struct{})} }

// appliedLocked records that m was applied and queued to receivers
// followers, for this node's Publish calls in flight. The caller holds the
// shard lock.
func (mi *mirror) appliedLocked(sh *shard, ks *keyState, m *Message, receivers int) {
	if mi.publishing == 0 {
		return
	}
	a := applied{epoch: m.Epoch, seq: m.Seq, receivers: receivers}
	for i, w := range mi.waits {
		if w.epoch == a.epoch && w.seq == a.seq {
			a.conf = mi.confirmationLocked(sh, ks, m)
			w.res = a
			close(w.done)
			mi.waits = append(mi.waits[:i], mi.waits[i+1:]...)
			return
		}
	}
	a.conf = mi.confirmationLocked(sh, ks, m)
	if len(mi.applied) >= maxApplied {
		mi.releaseLocked(ks, &mi.applied[0])
		mi.applied = mi.applied[1:]
	}
	mi.applied = append(mi.applied, a)
}

// confirmationLocked starts a Confirmation for m when a confirm publish is
// in flight: its publisher may be the one that sent m. The followers m was
// just queued to are the last len(ks.followers) deliveries; they are
// recorded by walking the followers again, which costs only while a
// confirm is in flight.
func (mi *mirror) confirmationLocked(sh *shard, ks *keyState, m *Message) *Confirmation {
	if mi.confirming == 0 {
		return nil
	}
	c := newConfirmation(sh, ks, m.Seq)
	for i := range ks.followers {
		if fl := &ks.followers[i]; !fl.sub.stopped.Load() {
			c.pending[fl.sub.ackID()]++
			c.written++
		}
	}
	c.startLocked()
	return c
}

// releaseLocked forgets an outcome nobody claimed: its confirmation stops
// waiting for acks.
func (mi *mirror) releaseLocked(ks *keyState, a *applied) {
	if !a.claimed && a.conf != nil && a.conf.waiting {
		ks.removeWaiterLocked(a.conf)
	}
}

// takeLocked returns the outcome of applying (epoch, seq) when it is
// known. The caller holds the shard lock.
func (mi *mirror) takeLocked(epoch string, seq uint64) (applied, bool) {
	for i := range mi.applied {
		if a := &mi.applied[i]; a.epoch == epoch && a.seq == seq {
			a.claimed = true
			return *a, true
		}
	}
	return applied{}, false
}

// publishDoneLocked ends one Publish's interest in the key. The caller
// holds the shard lock.
func (mi *mirror) publishDoneLocked(ks *keyState, confirm bool) {
	mi.publishing--
	if confirm {
		mi.confirming--
	}
	if mi.publishing == 0 {
		for i := range mi.applied {
			mi.releaseLocked(ks, &mi.applied[i])
		}
		mi.applied = nil
	}
}

// wakeLocked answers every waiting Publish whose message will not be
// applied live any more (a resync skipped it, or the key's state went):
// they answer with no local receivers.
func (mi *mirror) wakeLocked(ks *keyState, all bool) {
	kept := mi.waits[:0]
	for _, w := range mi.waits {
		if all || w.epoch != ks.epoch || w.seq <= ks.seq {
			w.res = applied{epoch: w.epoch, seq: w.seq}
			close(w.done)
			continue
		}
		kept = append(kept, w)
	}
	clear(mi.waits[len(kept):])
	mi.waits = kept
}

// publishMirror is Publish in cluster mode: the broker assigns the seq and
// hands the message to every node tracking the key, this one included;
// Publish answers once the message was applied here, with the receivers it
// was queued to.
func (h *Hub) publishMirror(key, event string, data []byte, confirm bool) (Published, *Confirmation, error) {
	sh := h.shardFor(key)
	sh.mu.Lock()
	ks := sh.keys[key]
	if ks != nil {
		ks.mir.publishing++
		if confirm {
			ks.mir.confirming++
		}
	}
	sh.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	e, err := h.broker.Publish(ctx, key, event, data)
	cancel()
	if err != nil {
		if ks != nil {
			sh.mu.Lock()
			ks.mir.publishDoneLocked(ks, confirm)
			sh.mu.Unlock()
		}
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return Published{}, nil, err
	}
	h.published.Add(1)
	p := Published{Key: key, Epoch: e.Epoch, Seq: e.Seq}
	if ks == nil {
		return p, h.emptyConfirmation(sh, confirm), nil
	}

	sh.mu.Lock()
	mi := ks.mir
	res, ok := mi.takeLocked(e.Epoch, e.Seq)
	if !ok && !ks.dead && !(mi.synced && ks.epoch == e.Epoch && ks.seq >= e.Seq) {
		w := &publishWait{epoch: e.Epoch, seq: e.Seq, done: make(chan struct{})}
		mi.waits = append(mi.waits, w)
		sh.mu.Unlock()
		t := time.NewTimer(publishApplyTimeout)
		select {
		case <-w.done:
		case <-t.C:
		}
		t.Stop()
		sh.mu.Lock()
		select {
		case <-w.done:
			res = w.res
		default:
			// Lost on the way (the broker's transport dropped it and no
			// later message showed the gap): have the mirror refilled.
			for i, x := range mi.waits {
				if x == w {
					mi.waits = append(mi.waits[:i], mi.waits[i+1:]...)
					break
				}
			}
			if mi.synced && !mi.refilling && !ks.dead {
				mi.refilling = true
				h.broker.Refill(ks.key, ks.epoch, ks.seq)
			}
		}
	}
	mi.publishDoneLocked(ks, confirm)
	sh.mu.Unlock()

	p.LocalReceivers = res.receivers
	conf := res.conf
	if confirm && conf == nil {
		conf = h.emptyConfirmation(sh, true)
	}
	return p, conf, nil
}

// emptyConfirmation is the Confirmation of a message queued to nobody here.
func (h *Hub) emptyConfirmation(sh *shard, confirm bool) *Confirmation {
	if !confirm {
		return nil
	}
	c := newConfirmation(sh, nil, 0)
	close(c.done)
	return c
}

// Apply implements Sink: a message of a tracked key, in the store's order.
func (h *Hub) Apply(e Entry) {
	if h.closed.Load() {
		return
	}
	sh := h.shardFor(e.Key)
	var out fanOut
	sh.mu.Lock()
	ks := sh.keys[e.Key]
	if ks == nil || ks.mir == nil {
		sh.mu.Unlock()
		return
	}
	m := &Message{Key: ks.key, Epoch: e.Epoch, Seq: e.Seq, Event: e.Event, Data: e.Data, TS: e.TS}
	h.receiveLocked(sh, ks, m, &out)
	sh.mu.Unlock()
	h.finish(&out)
}

// receiveLocked applies m when it is the message after the mirror's newest,
// drops it when the mirror has it, and otherwise holds it and asks the
// broker for what is missing. The caller holds sh.mu.
func (h *Hub) receiveLocked(sh *shard, ks *keyState, m *Message, out *fanOut) {
	mi := ks.mir
	if mi.synced && !mi.refilling && m.Epoch == ks.epoch {
		switch {
		case m.Seq <= ks.seq:
			return // already applied (a refill overtook it)
		case m.Seq == ks.seq+1:
			h.applyLocked(sh, ks, m, nil, out)
			return
		}
	}
	if len(mi.early) >= maxEarly {
		clear(mi.early[:1])
		mi.early = mi.early[1:]
	}
	mi.early = append(mi.early, m)
	if mi.synced && !mi.refilling {
		mi.refilling = true
		h.broker.Refill(ks.key, ks.epoch, ks.seq)
	}
}

// Sync implements Sink: the store's state of a tracked key. The first Sync
// installs it and answers the registrations made meanwhile; a later one
// fills the mirror's gap in order, or, when the store's history no longer
// reaches back (or its epoch changed: history lost), tells every follower to
// resync. Messages held meanwhile are applied after it.
func (h *Hub) Sync(key string, snap Snapshot) {
	if h.closed.Load() {
		return
	}
	sh := h.shardFor(key)
	var out fanOut
	sh.mu.Lock()
	ks := sh.keys[key]
	if ks == nil || ks.mir == nil {
		sh.mu.Unlock()
		return
	}
	mi := ks.mir
	size := h.cfg.Load().historySize
	switch {
	case !mi.synced:
		ks.epoch, ks.seq = snap.Epoch, snap.Seq
		h.installLocked(sh, ks, snap, size)
		mi.synced = true
		close(mi.syncedCh)
		regs := mi.regs
		mi.regs = nil
		for _, r := range regs {
			if r.ref.ks != ks || r.ref.idx < 0 || r.sub.stopped.Load() {
				continue // unfollowed or closed meanwhile
			}
			ok, replayed := r.sub.registerLocked(ks, r.since, r.epoch, r.resume)
			out.delivered += replayed
			if !ok {
				out.slowLocked(r.sub)
			}
		}
	case snap.Epoch == ks.epoch && snap.Seq >= ks.seq:
		for i := range snap.History {
			e := &snap.History[i]
			if e.Seq == ks.seq+1 {
				h.applyLocked(sh, ks, messageOf(ks.key, e), nil, &out)
			}
		}
		if ks.seq < snap.Seq {
			// The store no longer holds what this node missed.
			h.resyncLocked(sh, ks, snap, size, &out)
		}
	case snap.Epoch != ks.epoch:
		h.resyncLocked(sh, ks, snap, size, &out)
	}
	mi.refilling = false
	mi.wakeLocked(ks, false)
	early := mi.early
	mi.early = nil
	for _, m := range early {
		h.receiveLocked(sh, ks, m, &out)
	}
	sh.mu.Unlock()
	h.finish(&out)
}

// resyncLocked replaces the mirror by the store's state and tells every
// follower to resync from it. The caller holds sh.mu.
func (h *Hub) resyncLocked(sh *shard, ks *keyState, snap Snapshot, size int, out *fanOut) {
	h.clearHistoryLocked(sh, ks)
	ks.epoch, ks.seq = snap.Epoch, snap.Seq
	h.installLocked(sh, ks, snap, size)
	n := Notice{Kind: NoticeResync, Key: ks.key, Epoch: ks.epoch, Seq: ks.seq}
	for i := range ks.followers {
		fl := &ks.followers[i]
		if fl.sub.stopped.Load() {
			continue
		}
		if !fl.sub.f.Notify(n) {
			out.slowLocked(fl.sub)
		}
	}
}

// installLocked puts the store's held history into the (empty) mirror,
// keeping at most size messages. The caller holds sh.mu.
func (h *Hub) installLocked(sh *shard, ks *keyState, snap Snapshot, size int) {
	if size <= 0 {
		return
	}
	hist := snap.History
	if len(hist) > size {
		hist = hist[len(hist)-size:]
	}
	for i := range hist {
		m := messageOf(ks.key, &hist[i])
		m.order = h.order.Add(1)
		h.appendLocked(sh, ks, m, size)
	}
}

func messageOf(key string, e *Entry) *Message {
	return &Message{Key: key, Epoch: e.Epoch, Seq: e.Seq, Event: e.Event, Data: e.Data, TS: e.TS}
}

// Drop implements Sink: key's state in epoch was dropped from the store.
func (h *Hub) Drop(key, epoch string) {
	if ValidKey(key) != nil {
		return
	}
	h.dropLocalIf(key, func(ks *keyState) bool {
		return ks.mir == nil || (ks.mir.synced && ks.epoch == epoch)
	})
}

// keyInfoMirror is KeyInfo in cluster mode.
func (h *Hub) keyInfoMirror(key string) (KeyInfo, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	snap, ok, err := h.broker.State(ctx, key)
	cancel()
	if err != nil {
		return KeyInfo{}, false, unavailable(err)
	}
	info := KeyInfo{Key: key, Epoch: snap.Epoch, Seq: snap.Seq, History: snap.Held}
	sh := h.shardFor(key)
	sh.mu.Lock()
	if ks := sh.keys[key]; ks != nil {
		info.Followers = len(ks.followers)
	}
	sh.mu.Unlock()
	return info, ok || info.Followers > 0, nil
}

// dropKeyMirror is DropKey in cluster mode: the store drops the key and
// tells every node; this one does not wait for its own notice.
func (h *Hub) dropKeyMirror(key string) (KeyInfo, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	snap, ok, err := h.broker.Drop(ctx, key)
	cancel()
	if err != nil {
		return KeyInfo{}, false, unavailable(err)
	}
	local, _ := h.dropLocal(key)
	info := KeyInfo{Key: key, Epoch: snap.Epoch, Seq: snap.Seq, History: snap.Held, Followers: local.Followers}
	return info, ok || info.Followers > 0, nil
}

// waitSyncedLocked waits, with sh.mu released, for a new mirror's first
// Sync: Read answers from the mirror. When the state is dropped meanwhile
// (DELETE), it waits for the one that replaces it. It returns the key's
// synced state, or an error wrapping ErrUnavailable when the store did not
// answer within syncTimeout. The caller holds sh.mu.
func (h *Hub) waitSyncedLocked(sh *shard, ks *keyState) (*keyState, error) {
	t := time.NewTimer(syncTimeout)
	defer t.Stop()
	for !ks.mir.synced {
		ch := ks.mir.syncedCh
		sh.mu.Unlock()
		var timeout bool
		select {
		case <-ch:
		case <-t.C:
			timeout = true
		}
		sh.mu.Lock()
		if timeout {
			return nil, fmt.Errorf("%w: key %q not synced within %v", ErrUnavailable, ks.key, syncTimeout)
		}
		if h.closed.Load() {
			return nil, ErrClosed
		}
		ks = h.keyStateLocked(sh, ks.key)
	}
	return ks, nil
}

func unavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}
