package hub

import (
	"crypto/rand"
	"encoding/base32"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Hub is the registry of keys and their followers. Create it with New; the
// zero value is not usable. All methods are goroutine-safe.
type Hub struct {
	shards [numShards]shard
	seed   maphash.Seed

	// broker is the cluster-mode store (WithBroker); nil on a single node.
	broker Broker

	cfg   atomic.Pointer[config]
	cfgMu sync.Mutex // serialises Configure

	// Epochs are epochPrefix (random per Hub, so unique across restarts)
	// followed by a per-Hub counter.
	epochPrefix string
	epochSeq    atomic.Uint64

	closed    atomic.Bool
	closeOnce sync.Once
	stop      chan struct{} // closed by Close to stop the sweeper
	done      chan struct{} // closed by the sweeper when it returns; nil without one

	subsMu sync.Mutex
	// subs are the live subscriptions, for Close, guarded by subsMu. A
	// slice, each Subscription knowing its index (subIdx): a map entry would
	// cost an idle connection ~31 bytes, a slot here 8 to 16.
	subs []*Subscription

	evictMu sync.Mutex // held by the one goroutine enforcing the global cap

	keys       atomic.Int64
	published  atomic.Uint64 // publishes through this hub
	order      atomic.Uint64 // the order messages entered this hub's history, for eviction
	delivered  atomic.Uint64
	dropped    atomic.Uint64
	slowCloses atomic.Uint64
	registers  atomic.Uint64 // successful Follow calls
	evicted    atomic.Uint64
	histMsgs   atomic.Int64
	histBytes  atomic.Int64
}

// New returns a running Hub: its sweeper goroutine runs until Close.
func New(opts ...Option) *Hub {
	c := defaultConfig()
	for _, o := range opts {
		o(&c)
	}
	h := &Hub{
		seed:        maphash.MakeSeed(),
		epochPrefix: newEpochPrefix(),
		stop:        make(chan struct{}),
	}
	for i := range h.shards {
		h.shards[i].keys = make(map[string]*keyState)
	}
	h.broker = c.broker
	c.broker = nil // Configure must not look as if it could change it
	h.cfg.Store(&c)
	if h.broker != nil {
		h.broker.Start(h)
	}
	interval := c.sweepInterval
	if interval == 0 {
		interval = DefaultSweepInterval
	}
	if interval > 0 {
		h.done = make(chan struct{})
		go h.sweepLoop(interval)
	}
	return h
}

// newEpochPrefix returns 8 random base32 characters: 40 bits make a clash
// between two process lifetimes of one gateway practically impossible.
func newEpochPrefix() string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// newEpoch returns an epoch no other key state of any process has had.
func (h *Hub) newEpoch() string {
	return h.epochPrefix + "-" + strconv.FormatUint(h.epochSeq.Add(1), 36)
}

func (h *Hub) shardFor(key string) *shard {
	return &h.shards[maphash.String(h.seed, key)%numShards]
}

// Configure applies options to the running hub (a Caddy reload). Smaller
// limits apply to live state at once: history is trimmed to a smaller size,
// expired by a shorter TTL and evicted down to a smaller byte cap. A smaller
// MaxKeysPerConn applies to later Follow calls; keys already followed stay.
func (h *Hub) Configure(opts ...Option) {
	h.cfgMu.Lock()
	defer h.cfgMu.Unlock()
	old := h.cfg.Load()
	c := *old
	for _, o := range opts {
		o(&c)
	}
	h.cfg.Store(&c)
	if c.historySize < old.historySize {
		for i := range h.shards {
			sh := &h.shards[i]
			sh.mu.Lock()
			h.trimLocked(sh, c.historySize)
			sh.mu.Unlock()
		}
	}
	if c.historyTTL > 0 && (old.historyTTL == 0 || c.historyTTL < old.historyTTL) {
		h.sweep()
	}
	h.enforceCap()
}

// Close shuts the hub down: it stops the sweeper and waits for it, then
// calls Close(ReasonShutdown) on every follower the hub has not already
// closed. Afterwards Publish and Follow return ErrClosed and Subscribe
// returns closed subscriptions. Close is idempotent.
func (h *Hub) Close() {
	h.closeOnce.Do(func() {
		h.subsMu.Lock()
		h.closed.Store(true)
		subs := append([]*Subscription(nil), h.subs...)
		h.subsMu.Unlock()
		close(h.stop)
		if h.done != nil {
			<-h.done
		}
		for _, s := range subs {
			if s.stopped.CompareAndSwap(false, true) {
				s.f.Close(ReasonShutdown)
			}
		}
	})
}

// Publish appends a message to key's history and queues it to every
// follower of key, in seq order, without waiting for any of them. It
// returns once that is done: the message is in history and queued.
//
// An empty event means DefaultEvent. Publish keeps data as the message's
// Data: the caller must not modify it afterwards (several Publish calls may
// share one data slice). Followers whose queue is full are counted as
// dropped and closed with ReasonSlowConsumer after the lock is released.
func (h *Hub) Publish(key, event string, data []byte) (Published, error) {
	p, _, err := h.publish(key, event, data, false)
	return p, err
}

// PublishConfirm is Publish that also returns a Confirmation: which of the
// followers the message was queued to acknowledge its seq (Subscription.Ack,
// Hub.AckClient). The caller must call its Wait.
func (h *Hub) PublishConfirm(key, event string, data []byte) (Published, *Confirmation, error) {
	return h.publish(key, event, data, true)
}

func (h *Hub) publish(key, event string, data []byte, confirm bool) (Published, *Confirmation, error) {
	if err := ValidKey(key); err != nil {
		return Published{}, nil, err
	}
	if event == "" {
		event = DefaultEvent
	}
	if err := ValidEvent(event); err != nil {
		return Published{}, nil, err
	}
	if h.closed.Load() {
		return Published{}, nil, ErrClosed
	}
	if h.broker != nil {
		return h.publishMirror(key, event, data, confirm)
	}
	m := &Message{Event: event, Data: data}
	var out fanOut

	sh := h.shardFor(key)
	sh.mu.Lock()
	// The config and the clock are read under the lock so that Configure,
	// which trims under the same lock after storing, never misses a message.
	cfg := h.cfg.Load()
	ks := h.keyStateLocked(sh, key)
	m.Key, m.Epoch, m.Seq = ks.key, ks.epoch, ks.seq+1
	m.TS = cfg.now().UnixMilli()
	h.published.Add(1)
	var conf *Confirmation
	if confirm {
		conf = newConfirmation(sh, ks, m.Seq)
	}
	h.applyLocked(sh, ks, m, conf, &out)
	p := Published{Key: ks.key, Epoch: ks.epoch, Seq: m.Seq, LocalReceivers: out.delivered}
	if conf != nil {
		conf.startLocked()
	}
	sh.mu.Unlock()

	h.finish(&out)
	return p, conf, nil
}

// fanOut collects what applying messages under a shard lock leaves to do
// once the lock is released. A few slow followers fit without allocating;
// no field points into the struct itself, so it stays on the caller's
// stack.
type fanOut struct {
	delivered, dropped int
	nslow              int
	slowBuf            [8]*Subscription
	moreSlow           []*Subscription
}

// slowLocked records a follower the hub decided to close as slow.
func (o *fanOut) slowLocked(s *Subscription) {
	o.dropped++
	if !s.stopped.CompareAndSwap(false, true) {
		return
	}
	if o.nslow < len(o.slowBuf) {
		o.slowBuf[o.nslow] = s
		o.nslow++
		return
	}
	o.moreSlow = append(o.moreSlow, s)
}

// applyLocked makes m, the message after ks.seq, the key's newest: it stamps
// its order, appends it to history and queues it to every follower. With
// conf, the followers it was queued to are recorded for acknowledgement.
// The caller holds sh.mu.
func (h *Hub) applyLocked(sh *shard, ks *keyState, m *Message, conf *Confirmation, out *fanOut) {
	cfg := h.cfg.Load()
	ks.seq = m.Seq
	m.order = h.order.Add(1)
	if cfg.historySize > 0 {
		h.appendLocked(sh, ks, m, cfg.historySize)
	} else if len(ks.followers) == 0 {
		sh.sweepEmpty = true
	}
	delivered := 0
	m.live = liveStamp(len(ks.followers)) // stamp.go
	for i := range ks.followers {
		fl := &ks.followers[i]
		if fl.sub.stopped.Load() {
			continue
		}
		if fl.sub.f.Deliver(m) {
			delivered++
			if conf != nil {
				conf.pending[fl.sub.ackID()]++
			}
			continue
		}
		out.slowLocked(fl.sub)
	}
	m.live = 0 // a replay, later under this lock, is not live
	if conf != nil {
		conf.written = delivered
	}
	out.delivered += delivered
	if ks.mir != nil {
		ks.mir.appliedLocked(sh, ks, m, delivered)
	}
}

// finish does, without locks, what applying left: counters, closing slow
// followers, the global history cap.
func (h *Hub) finish(out *fanOut) {
	if out.delivered > 0 {
		h.delivered.Add(uint64(out.delivered))
	}
	if out.dropped > 0 {
		h.dropped.Add(uint64(out.dropped))
	}
	for _, s := range out.slowBuf[:out.nslow] {
		h.slowCloses.Add(1)
		s.f.Close(ReasonSlowConsumer)
	}
	for _, s := range out.moreSlow {
		h.slowCloses.Add(1)
		s.f.Close(ReasonSlowConsumer)
	}
	h.enforceCap()
}

// KeyInfo describes key. It reports false when the key has neither history
// nor followers. In cluster mode the seq, epoch and history come from the
// shared store and Followers counts this node's; the error then wraps
// ErrUnavailable when the store cannot be read.
func (h *Hub) KeyInfo(key string) (KeyInfo, bool, error) {
	if ValidKey(key) != nil {
		return KeyInfo{}, false, nil
	}
	if h.broker != nil {
		return h.keyInfoMirror(key)
	}
	sh := h.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := sh.keys[key]
	if ks == nil || (ks.hist.n == 0 && len(ks.followers) == 0) {
		return KeyInfo{}, false, nil
	}
	return ks.infoLocked(), true, nil
}

// DropKey forgets key: its history goes, the next Publish or Follow gets a
// new epoch and seq restarts at 1. Every follower of key is unfollowed from
// it and closed with ReasonKeyDropped (the whole connection: its client must
// resync). It returns the key as it was, and false when the key had neither
// history nor followers. In cluster mode the key is dropped from the shared
// store and on every node.
func (h *Hub) DropKey(key string) (KeyInfo, bool, error) {
	if ValidKey(key) != nil {
		return KeyInfo{}, false, nil
	}
	if h.broker != nil {
		return h.dropKeyMirror(key)
	}
	info, ok := h.dropLocal(key)
	return info, ok, nil
}

// dropLocal is DropKey on this hub's own state.
func (h *Hub) dropLocal(key string) (KeyInfo, bool) {
	return h.dropLocalIf(key, nil)
}

// dropLocalIf is dropLocal of a key state that satisfies cond (nil: any).
func (h *Hub) dropLocalIf(key string, cond func(*keyState) bool) (KeyInfo, bool) {
	sh := h.shardFor(key)
	sh.mu.Lock()
	ks := sh.keys[key]
	if ks == nil || (cond != nil && !cond(ks)) {
		sh.mu.Unlock()
		return KeyInfo{}, false
	}
	info := ks.infoLocked()
	h.clearHistoryLocked(sh, ks)
	fs := ks.followers
	ks.followers = nil
	for i := range fs {
		fs[i].ref.idx = -1
	}
	h.deleteKeyLocked(sh, ks)
	sh.mu.Unlock()

	for i := range fs {
		s := fs[i].sub
		if s.stopped.CompareAndSwap(false, true) {
			s.f.Close(ReasonKeyDropped)
		}
		s.forget(ks.key, fs[i].ref)
	}
	return info, info.History > 0 || info.Followers > 0
}

// Stats returns the hub's counters. They are read one by one, so a Stats
// taken while publishing may be off by the messages in flight.
func (h *Hub) Stats() Stats {
	return Stats{
		Keys:               int(h.keys.Load()),
		Published:          h.published.Load(),
		Delivered:          h.delivered.Load(),
		Dropped:            h.dropped.Load(),
		SlowConsumerCloses: h.slowCloses.Load(),
		Registers:          h.registers.Load(),
		HistoryMessages:    h.histMsgs.Load(),
		HistoryBytes:       h.histBytes.Load(),
		HistoryEvicted:     h.evicted.Load(),
	}
}

// sweepLoop is the hub's one goroutine.
func (h *Hub) sweepLoop(interval time.Duration) {
	defer close(h.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.sweep()
		}
	}
}

// sweep expires history older than the TTL, deletes key states left empty
// by publishes without history, and enforces the global cap. It takes one
// shard lock at a time.
func (h *Hub) sweep() {
	cfg := h.cfg.Load()
	cutoff := int64(math.MinInt64)
	if cfg.historyTTL > 0 {
		cutoff = cfg.now().Add(-cfg.historyTTL).UnixMilli()
	}
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		h.expireLocked(sh, cutoff)
		if sh.sweepEmpty {
			sh.sweepEmpty = h.sweepEmptyLocked(sh, cfg.now().UnixMilli())
		}
		sh.mu.Unlock()
	}
	h.enforceCap()
}

// HistorySize is the configured number of messages kept per key: the most a
// Follow with since can replay at once.
func (h *Hub) HistorySize() int { return h.cfg.Load().historySize }
