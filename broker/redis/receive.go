package redis

import (
	"errors"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// receive is the goroutine that reads the pub/sub connection and hands
// messages to the sink in the order Redis sent them. go-redis reconnects
// and subscribes every channel again on the Receive after a failure; the
// confirmations that come back make the control goroutine sync each key
// from what was last handed over, which fills whatever the outage lost.
func (b *Broker) receive() {
	defer b.wg.Done()
	backoff := minBackoff
	failing := false
	for b.ctx.Err() == nil {
		b.psMu.Lock()
		ps := b.ps
		b.psMu.Unlock()
		msg, err := ps.ReceiveTimeout(b.ctx, b.recvTimeout)
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			b.observe(err)
			if !failing {
				b.log.Warn("redis broker pub/sub connection lost", zap.Error(err))
			}
			failing = true
			if isTimeout(err) {
				// Pings go unanswered: a half-open connection that
				// go-redis would keep. Start over on a new one.
				b.resetPubSub()
			}
			if !b.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		if failing {
			failing = false
			b.reconnects.Add(1)
			b.log.Info("redis broker pub/sub connection back")
		}
		backoff = minBackoff
		b.observe(nil)
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if key, ok := b.keyOf(m.Channel); ok {
				b.resync(key)
			}
		case *goredis.Message:
			b.deliver(m)
		}
	}
}

// resync queues a sync of key from what was handed to the sink before its
// subscription was confirmed: later messages come by Apply, earlier ones
// that the sink lacks (published while unsubscribed) by the sync. The
// position is taken now, not when the sync runs: Apply moves it on
// meanwhile, past any gap.
func (b *Broker) resync(key string) {
	b.kmu.Lock()
	st := b.keys[key]
	o := op{kind: opRefill, key: key}
	if st != nil && st.handed {
		o.epoch, o.seq = st.epoch, st.seq
	}
	b.kmu.Unlock()
	if st != nil {
		b.enqueue(o)
	}
}

// deliver hands one pub/sub message of a tracked key to the sink.
func (b *Broker) deliver(m *goredis.Message) {
	key, ok := b.keyOf(m.Channel)
	if !ok {
		return
	}
	e, drop, err := parsePayload(key, m.Payload)
	if err != nil {
		b.log.Warn("redis broker ignored a pub/sub message", zap.String("channel", m.Channel), zap.Error(err))
		return
	}
	b.kmu.Lock()
	st := b.keys[key]
	if st != nil {
		if drop {
			*st = keyState{}
		} else {
			recordLocked(st, e.Epoch, e.Seq)
		}
	}
	b.kmu.Unlock()
	switch {
	case st == nil: // untracked meanwhile
	case drop:
		b.sink.Drop(key, e.Epoch)
	default:
		b.sink.Apply(e)
	}
}

// resetPubSub replaces the pub/sub connection with a new one subscribed to
// every tracked key. psMu is held throughout so that the control goroutine
// subscribes nothing on the old one meanwhile.
func (b *Broker) resetPubSub() {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	if b.ctx.Err() != nil {
		return // closing: Close closes b.ps
	}
	b.kmu.Lock()
	channels := make([]string, 0, len(b.keys))
	for key := range b.keys {
		channels = append(channels, b.channel(key))
	}
	b.kmu.Unlock()
	_ = b.ps.Close()
	b.ps = b.client.Subscribe(b.ctx)
	if len(channels) > 0 {
		_ = b.ps.Subscribe(b.ctx, channels...) // on failure, the next Receive subscribes them
	}
}

// sleep waits d or until Close; false means closed.
func (b *Broker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
