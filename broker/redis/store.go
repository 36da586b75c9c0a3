package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pushgateway/push_gateway/hub"
)

// errBadReply is returned for a script reply this package's scripts do not
// give: another program wrote the broker's keys, or a script is wrong.
var errBadReply = errors.New("unexpected script reply")

// Publish assigns key's next seq, appends the message to the shared history
// and publishes it to every tracking node, in one script: one round trip
// once Redis has cached the script, shared with concurrent publishes
// (pipeline.go). The error wraps hub.ErrUnavailable. A
// timeout cannot tell whether Redis ran the script; the message may then
// be stored although Publish failed.
func (b *Broker) Publish(ctx context.Context, key, event string, data []byte) (hub.Entry, error) {
	size, ttl, metaTTL := b.ttlArgs()
	c := &publishCall{
		keys: b.keysOf(key),
		args: []any{newEpoch(), event, data, size, ttl, metaTTL, b.channel(key)},
		done: make(chan struct{}),
	}
	b.enqueuePublish(c) // pipeline.go
	select {
	case <-c.done:
	case <-ctx.Done():
		return hub.Entry{}, unavailable("publishing", ctx.Err())
	}
	res, err := c.res, c.err
	if err != nil {
		return hub.Entry{}, unavailable("publishing", err)
	}
	b.publishes.Add(1)
	if len(res) != 3 {
		return hub.Entry{}, unavailable("publishing", errBadReply)
	}
	epoch, ok1 := res[0].(string)
	seq, ok2 := res[1].(int64)
	ts, err := strconv.ParseInt(fmt.Sprint(res[2]), 10, 64)
	if !ok1 || !ok2 || seq < 1 || err != nil {
		return hub.Entry{}, unavailable("publishing", errBadReply)
	}
	return hub.Entry{Key: key, Epoch: epoch, Seq: uint64(seq), Event: event, Data: data, TS: ts}, nil
}

// State reads key's state; ok is false when Redis holds none.
func (b *Broker) State(ctx context.Context, key string) (hub.Snapshot, bool, error) {
	size, ttl, _ := b.ttlArgs()
	res, err := stateScript.Run(ctx, b.client, b.keysOf(key), size, ttl).Slice()
	if errors.Is(err, goredis.Nil) {
		return hub.Snapshot{}, false, nil
	}
	if err != nil {
		return hub.Snapshot{}, false, unavailable("reading key state", err)
	}
	s, err := parseState(res)
	if err != nil {
		return hub.Snapshot{}, false, unavailable("reading key state", err)
	}
	return s, true, nil
}

// Drop deletes key's state and tells every tracking node, this one
// included. It returns the state as it was; ok is false when there was
// none (trackers are told all the same).
func (b *Broker) Drop(ctx context.Context, key string) (hub.Snapshot, bool, error) {
	size, ttl, _ := b.ttlArgs()
	res, err := dropScript.Run(ctx, b.client, b.keysOf(key), size, ttl, b.channel(key)).Slice()
	if errors.Is(err, goredis.Nil) {
		return hub.Snapshot{}, false, nil
	}
	if err != nil {
		return hub.Snapshot{}, false, unavailable("dropping key", err)
	}
	s, err := parseState(res)
	if err != nil {
		return hub.Snapshot{}, false, unavailable("dropping key", err)
	}
	return s, true, nil
}

// parseState reads {epoch, seq, held}.
func parseState(res []any) (hub.Snapshot, error) {
	if len(res) < 3 {
		return hub.Snapshot{}, errBadReply
	}
	epoch, ok1 := res[0].(string)
	seq, ok2 := res[1].(int64)
	held, ok3 := res[2].(int64)
	if !ok1 || !ok2 || !ok3 || seq < 0 || held < 0 {
		return hub.Snapshot{}, errBadReply
	}
	return hub.Snapshot{Epoch: epoch, Seq: uint64(seq), Held: int(held)}, nil
}

// parseSync reads the sync script's {epoch, seq, held, entries} into a
// snapshot whose history is oldest first and ends at the snapshot's seq.
func parseSync(key string, res []any) (hub.Snapshot, error) {
	s, err := parseState(res)
	if err != nil || len(res) != 4 {
		return hub.Snapshot{}, errBadReply
	}
	raw, ok := res[3].([]any)
	if !ok {
		return hub.Snapshot{}, errBadReply
	}
	if len(raw) > 0 {
		s.History = make([]hub.Entry, len(raw))
	}
	for i, r := range raw {
		e, err := parseStreamEntry(key, s.Epoch, r)
		if err != nil {
			return hub.Snapshot{}, err
		}
		// XREVRANGE gives newest first: seq s.Seq, s.Seq-1, ...
		if e.Seq != s.Seq-uint64(i) {
			return hub.Snapshot{}, fmt.Errorf("%w: history seq %d where %d belongs", errBadReply, e.Seq, s.Seq-uint64(i))
		}
		s.History[len(raw)-1-i] = e
	}
	return s, nil
}

// parseStreamEntry reads one XRANGE entry: [id, [field, value, ...]] with
// fields s (seq), e (event) and d (data); the ID's milliseconds are its ts.
func parseStreamEntry(key, epoch string, r any) (hub.Entry, error) {
	pair, ok := r.([]any)
	if !ok || len(pair) != 2 {
		return hub.Entry{}, errBadReply
	}
	id, ok1 := pair[0].(string)
	fields, ok2 := pair[1].([]any)
	if !ok1 || !ok2 {
		return hub.Entry{}, errBadReply
	}
	ms, _, _ := strings.Cut(id, "-")
	ts, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return hub.Entry{}, errBadReply
	}
	e := hub.Entry{Key: key, Epoch: epoch, TS: ts}
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		switch name {
		case "s":
			if e.Seq, err = strconv.ParseUint(val, 10, 64); err != nil {
				return hub.Entry{}, errBadReply
			}
		case "e":
			e.Event = val
		case "d":
			e.Data = []byte(val)
		}
	}
	if e.Seq == 0 {
		return hub.Entry{}, errBadReply
	}
	return e, nil
}
