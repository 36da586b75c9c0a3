package redis

import (
	"context"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Publishes are pipelined: Publish queues its script call, and a publisher
// that finds fewer than maxPipelines pipelines on the way sends every call
// queued by then in one pipeline, itself. A lone publisher still pays one
// round trip; concurrent publishers (a busy toggle backend, several admin
// clients, a batch of keys) share round trips and Redis's read and write
// system calls, which is where a single-threaded Redis spends its time.
// Calls of one key from one caller never share a pipeline (the caller waits
// for its answer first), and Redis runs a pipeline's scripts in order, so
// seq order is what it was without pipelining.
const (
	maxPipelines = 4   // pipelines on the way at once
	maxBatch     = 256 // publishes per pipeline
)

// pipelineTimeout bounds one pipeline; a caller's own deadline still ends
// its wait earlier (the message may then be stored all the same, as with
// any timeout).
const pipelineTimeout = 2 * time.Second

// publishCall is one Publish waiting for its pipeline.
type publishCall struct {
	keys []string
	args []any
	res  []any
	err  error
	done chan struct{}
}

// enqueuePublish queues c and makes sure a pipeline will send it. When a
// pipeline slot is free the caller sends pipelines itself until its own call
// is answered (sendUntil): a lone publisher pays no goroutine hand-off,
// which with its stack growth and wake-ups cost about as much as the round
// trip.
func (b *Broker) enqueuePublish(c *publishCall) {
	b.pmu.Lock()
	b.pending = append(b.pending, c)
	lead := b.pipelines < maxPipelines
	if lead {
		b.pipelines++
	}
	b.pmu.Unlock()
	if lead {
		b.sendUntil(c)
	}
}

// sendUntil sends queued publishes in pipelines from the caller's goroutine
// until c is answered, then hands what is still queued to a goroutine
// (with the pipeline slot), so that no call waits for a publisher that
// left.
func (b *Broker) sendUntil(c *publishCall) {
	for {
		batch := b.takeBatch()
		if batch == nil {
			return // the slot was given back: nothing queued
		}
		b.sendBatch(batch)
		select {
		case <-c.done:
		default:
			continue
		}
		b.pmu.Lock()
		if len(b.pending) == 0 {
			b.pipelines--
			b.pmu.Unlock()
			return
		}
		b.pmu.Unlock()
		go b.sendPipelines()
		return
	}
}

// sendPipelines sends queued publishes until none is left. It runs only
// while there is work: an idle broker has no pipelining goroutine.
func (b *Broker) sendPipelines() {
	for {
		batch := b.takeBatch()
		if batch == nil {
			return
		}
		b.sendBatch(batch)
	}
}

// takeBatch takes up to maxBatch queued publishes. With none queued it
// gives the caller's pipeline slot back and returns nil.
func (b *Broker) takeBatch() []*publishCall {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	n := min(len(b.pending), maxBatch)
	if n == 0 {
		b.pipelines--
		return nil
	}
	batch := make([]*publishCall, n)
	copy(batch, b.pending)
	clear(b.pending[:n])
	b.pending = b.pending[n:]
	if len(b.pending) == 0 {
		b.pending = nil
	}
	return batch
}

// sendBatch runs one pipeline of publish scripts. A script Redis does not
// have cached (restarted, SCRIPT FLUSH) is sent again on its own with its
// body, which caches it for the next pipeline.
func (b *Broker) sendBatch(batch []*publishCall) {
	ctx, cancel := context.WithTimeout(b.ctx, pipelineTimeout)
	defer cancel()
	cmds := make([]*goredis.Cmd, len(batch))
	if len(batch) == 1 {
		c := batch[0]
		c.res, c.err = publishScript.Run(ctx, b.client, c.keys, c.args...).Slice()
		close(c.done)
		return
	}
	pipe := b.client.Pipeline()
	for i, c := range batch {
		cmds[i] = publishScript.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, c := range batch {
		c.res, c.err = cmds[i].Slice()
		if c.err != nil && strings.HasPrefix(c.err.Error(), "NOSCRIPT") {
			c.res, c.err = publishScript.Run(ctx, b.client, c.keys, c.args...).Slice()
		}
		close(c.done)
	}
}
