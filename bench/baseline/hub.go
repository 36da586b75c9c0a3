package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// hub keeps the followers of every key. One mutex guards the whole map: the
// simplest correct thing, and what the baseline is meant to represent.
type hub struct {
	epoch string // one epoch per process: there is no history to lose

	mu   sync.Mutex
	keys map[string]*topic // guarded by mu

	published atomic.Int64
	delivered atomic.Int64 // messages queued to a follower
	dropped   atomic.Int64 // followers closed because their queue was full
}

// topic is one key's state; its fields are guarded by hub.mu.
type topic struct {
	seq       int64
	followers map[*client]struct{}
}

func newHub() *hub {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &hub{epoch: hex.EncodeToString(b[:]), keys: map[string]*topic{}}
}

// follow adds c to key's followers and queues `registered` under the same
// lock that publish takes, so no live message can overtake it.
func (h *hub) follow(c *client, key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.keys[key]
	if t == nil {
		t = &topic{followers: map[*client]struct{}{}}
		h.keys[key] = t
	}
	t.followers[c] = struct{}{}
	b, _ := json.Marshal(serverMsg{Type: "registered", SDKKey: key, Epoch: h.epoch, Seq: t.seq})
	c.enqueue(b)
}

// unfollow removes c from key's followers; a key with neither followers nor
// messages is forgotten.
func (h *hub) unfollow(c *client, key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.keys[key]
	if t == nil {
		return
	}
	delete(t.followers, c)
	if len(t.followers) == 0 && t.seq == 0 {
		delete(h.keys, key)
	}
}

// published is one entry of the publish answer.
type published struct {
	SDKKey         string `json:"sdk_key"`
	Epoch          string `json:"epoch"`
	Seq            int64  `json:"seq"`
	LocalReceivers int    `json:"local_receivers"`
}

// publish numbers the message, encodes it once, snapshots the followers under
// the lock and queues the bytes to each of them outside it.
func (h *hub) publish(key, event string, data json.RawMessage) published {
	h.mu.Lock()
	t := h.keys[key]
	if t == nil {
		t = &topic{followers: map[*client]struct{}{}}
		h.keys[key] = t
	}
	t.seq++
	seq := t.seq
	b, _ := json.Marshal(serverMsg{
		Type: "message", SDKKey: key, Epoch: h.epoch, Seq: seq,
		Event: event, Data: data, TS: time.Now().UnixMilli(),
	})
	followers := make([]*client, 0, len(t.followers))
	for c := range t.followers {
		followers = append(followers, c)
	}
	h.mu.Unlock()

	h.published.Add(1)
	for _, c := range followers {
		if c.enqueue(b) {
			h.delivered.Add(1)
		} else {
			h.dropped.Add(1)
		}
	}
	return published{SDKKey: key, Epoch: h.epoch, Seq: seq, LocalReceivers: len(followers)}
}

// keyCount answers the number of keys with followers or messages.
func (h *hub) keyCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.keys)
}

// serverMsg is every message the baseline sends, in the contract's shape.
type serverMsg struct {
	Type   string          `json:"type"`
	SDKKey string          `json:"sdk_key,omitempty"`
	Epoch  string          `json:"epoch,omitempty"`
	Seq    int64           `json:"seq"`
	Event  string          `json:"event,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	TS     int64           `json:"ts,omitempty"`
}
