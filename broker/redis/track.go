package redis

// Track, Untrack and Refill run under a hub shard lock: they only queue an
// op for the control goroutine (control.go), which keeps their order.

type opKind uint8

const (
	opTrack   opKind = iota // subscribe to the key's channel
	opUntrack               // unsubscribe and forget the key
	opRefill                // sync the key after (epoch, seq); epoch "": its whole history
)

type op struct {
	kind  opKind
	key   string
	epoch string
	seq   uint64
}

// Track subscribes to key's messages; Sink.Sync follows once Redis has
// confirmed the subscription, so no message falls between the two.
func (b *Broker) Track(key string) { b.enqueue(op{kind: opTrack, key: key}) }

// Untrack stops delivering key's messages.
func (b *Broker) Untrack(key string) { b.enqueue(op{kind: opUntrack, key: key}) }

// Refill asks for Sink.Sync of a tracked key with the entries after seq
// when Redis's epoch is epoch, else the whole held history.
func (b *Broker) Refill(key, epoch string, seq uint64) {
	b.enqueue(op{kind: opRefill, key: key, epoch: epoch, seq: seq})
}

func (b *Broker) enqueue(o op) {
	b.qmu.Lock()
	b.queue = append(b.queue, o)
	b.qmu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default: // a nudge is pending already
	}
}

// drain takes the queued ops.
func (b *Broker) drain() []op {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	q := b.queue
	b.queue = nil
	return q
}

// record notes what was handed to the sink for st's key, so that a
// reconnection syncs from there. An older seq of the same epoch (a sync
// read before messages Apply handed over meanwhile) does not move it back.
// The caller holds b.kmu.
func recordLocked(st *keyState, epoch string, seq uint64) {
	if !st.handed || st.epoch != epoch || seq > st.seq {
		st.handed, st.epoch, st.seq = true, epoch, seq
	}
}
