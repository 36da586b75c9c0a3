package redis

import (
	"context"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Publishes are pipelined: Publish queues its script call, and whichever
// goroutine finds fewer than maxPipelines pipelines on the way sends every
// call queued by then in one pipeline. A lone publisher still pays one
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

// enqueuePublish queues c and makes sure a pipeline will send it.
func (b *Broker) enqueuePublish(c *publishCall) {
	b.pmu.Lock()
	b.pending = append(b.pending, c)
	start := b.pipelines < maxPipelines
	if start {
		b.pipelines++
	}
	b.pmu.Unlock()
	if start {
		go b.sendPipelines()
	}
}

// sendPipelines sends queued publishes until none is left. It runs only
// while there is work: an idle broker has no pipelining goroutine.
func (b *Broker) sendPipelines() {
	for {
		b.pmu.Lock()
		n := min(len(b.pending), maxBatch)
		if n == 0 {
			b.pipelines--
			b.pmu.Unlock()
			return
		}
		batch := make([]*publishCall, n)
		copy(batch, b.pending)
		clear(b.pending[:n])
		b.pending = b.pending[n:]
		if len(b.pending) == 0 {
			b.pending = nil
		}
		b.pmu.Unlock()
		b.sendBatch(batch)
	}
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
