package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/hub"
)

const (
	pingInterval   = time.Second           // keeps State honest and the pub/sub connection checked
	minBackoff     = 50 * time.Millisecond // first wait after a failure
	maxBackoff     = time.Second           // longest wait between tries during an outage
	callTimeout    = 2 * time.Second       // one ping, subscription or sync pipeline
	maxSyncBatch   = 256                   // syncs sent in one pipeline
	maxSubBatch    = 1000                  // channels in one SUBSCRIBE
	receiveTimeout = 10 * pingInterval     // pub/sub silence that means a dead connection
)

// syncReq asks for a key's entries after seq in epoch; epoch "" asks for
// the whole held history.
type syncReq struct {
	epoch string
	seq   uint64
}

// merge returns the request covering both r and o.
func (r syncReq) merge(o syncReq) syncReq {
	if r.epoch == "" || o.epoch == "" || r.epoch != o.epoch {
		return syncReq{}
	}
	return syncReq{epoch: r.epoch, seq: min(r.seq, o.seq)}
}

// control is the goroutine that runs the queued ops: subscriptions in
// order, and syncs, pipelined and retried with backoff while Redis is
// unreachable. It also pings Redis.
func (b *Broker) control() {
	defer b.wg.Done()
	pending := make(map[string]syncReq)
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var retryAt time.Time
	backoff := minBackoff
	b.ping()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.wake:
		case <-ping.C:
			b.ping()
		case <-retry.C:
		}
		b.apply(b.drain(), pending)
		if len(pending) == 0 || time.Now().Before(retryAt) {
			continue
		}
		if b.runSyncs(pending) {
			backoff, retryAt = minBackoff, time.Time{}
			if len(pending) > 0 { // more than one batch: go on at once
				b.nudge()
			}
			continue
		}
		retryAt = time.Now().Add(backoff)
		retry.Reset(backoff)
		backoff = min(2*backoff, maxBackoff)
	}
}

func (b *Broker) nudge() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// ping checks Redis and the pub/sub connection; the answers keep State
// current and let receive tell a silent connection from a dead one.
func (b *Broker) ping() {
	ctx, cancel := context.WithTimeout(b.ctx, callTimeout)
	defer cancel()
	_ = b.client.Ping(ctx).Err() // observed by the hook
	b.psMu.Lock()
	err := b.ps.Ping(ctx)
	b.psMu.Unlock()
	if err != nil {
		b.observe(err)
	}
}

// apply runs ops in order: consecutive subscriptions and unsubscriptions
// go in one command each.
func (b *Broker) apply(ops []op, pending map[string]syncReq) {
	var run []string
	var runKind opKind
	flush := func() {
		if len(run) > 0 {
			b.subscribe(runKind == opTrack, run)
			run = run[:0]
		}
	}
	for _, o := range ops {
		switch o.kind {
		case opTrack, opUntrack:
			if runKind != o.kind || len(run) >= maxSubBatch {
				flush()
				runKind = o.kind
			}
			b.kmu.Lock()
			if o.kind == opTrack {
				if b.keys[o.key] == nil {
					b.keys[o.key] = &keyState{}
				}
			} else {
				delete(b.keys, o.key)
				delete(pending, o.key)
			}
			b.kmu.Unlock()
			run = append(run, b.channel(o.key))
		case opRefill:
			b.kmu.Lock()
			tracked := b.keys[o.key] != nil
			b.kmu.Unlock()
			if !tracked {
				continue // untracked meanwhile
			}
			req := syncReq{epoch: o.epoch, seq: o.seq}
			if old, ok := pending[o.key]; ok {
				req = req.merge(old)
			}
			pending[o.key] = req
		}
	}
	flush()
}

// subscribe (or unsubscribes) channels. A failure needs no retry: the
// PubSub remembers its channels and subscribes them again when it
// reconnects, and the confirmations bring the syncs.
func (b *Broker) subscribe(sub bool, channels []string) {
	ctx, cancel := context.WithTimeout(b.ctx, callTimeout)
	defer cancel()
	b.psMu.Lock()
	var err error
	if sub {
		err = b.ps.Subscribe(ctx, channels...)
	} else {
		err = b.ps.Unsubscribe(ctx, channels...)
	}
	b.psMu.Unlock()
	if err != nil {
		b.observe(err)
		if ce := b.log.Check(zap.DebugLevel, "redis broker subscription deferred"); ce != nil {
			ce.Write(zap.Bool("subscribe", sub), zap.Int("channels", len(channels)), zap.Error(err))
		}
	}
}

// runSyncs runs up to maxSyncBatch pending syncs in one pipeline and hands
// the snapshots to the sink. Done syncs leave pending; it reports whether
// every one it ran succeeded.
func (b *Broker) runSyncs(pending map[string]syncReq) bool {
	type item struct {
		key  string
		keys []string
		args []any
		cmd  *goredis.Cmd
	}
	size, ttl, metaTTL := b.ttlArgs()
	items := make([]item, 0, min(len(pending), maxSyncBatch))
	for key, r := range pending {
		if len(items) == maxSyncBatch {
			break
		}
		items = append(items, item{key: key, keys: b.keysOf(key),
			args: []any{newEpoch(), r.epoch, r.seq, size, ttl, metaTTL}})
	}
	ctx, cancel := context.WithTimeout(b.ctx, callTimeout)
	defer cancel()
	pipe := b.client.Pipeline()
	for i := range items {
		items[i].cmd = syncScript.EvalSha(ctx, pipe, items[i].keys, items[i].args...)
	}
	_, _ = pipe.Exec(ctx)
	// A server that has not cached the script yet (first use, restart)
	// gets it whole, once.
	var again goredis.Pipeliner
	for i := range items {
		if goredis.HasErrorPrefix(items[i].cmd.Err(), "NOSCRIPT") {
			if again == nil {
				again = b.client.Pipeline()
			}
			items[i].cmd = syncScript.Eval(ctx, again, items[i].keys, items[i].args...)
		}
	}
	if again != nil {
		_, _ = again.Exec(ctx)
	}
	ok := true
	for _, it := range items {
		res, err := it.cmd.Slice()
		var snap hub.Snapshot
		if err == nil {
			snap, err = parseSync(it.key, res)
		}
		if err != nil {
			ok = false
			if !unreachable(err) { // not an outage: worth an operator's eye
				b.log.Warn("redis broker sync failed", zap.String("sdk_key", it.key), zap.Error(err))
			}
			continue
		}
		delete(pending, it.key)
		b.kmu.Lock()
		st := b.keys[it.key]
		if st != nil {
			recordLocked(st, snap.Epoch, snap.Seq)
		}
		b.kmu.Unlock()
		if st != nil {
			b.sink.Sync(it.key, snap)
		}
	}
	return ok
}
