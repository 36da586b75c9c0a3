package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// publishTick is how often the publisher posts a batch: -rate spread over
// ticks, so that the load is steady rather than one burst a second.
const publishTick = 50 * time.Millisecond

// publisher posts the soak's messages, one batch (a JSON array) per tick,
// round-robin over the keys, and keeps the last seq each key was given. It
// is the only publisher, so each key's seqs must come back consecutive.
type publisher struct {
	admin    string // host:port
	keys     []string
	keyIndex map[string]int
	last     []uint64 // per key: the newest seq published; owned by run, read after it
	next     int      // round-robin position
	messages int64    // published since the last reset (the prefill excluded)
	gaps     int64    // seqs the publish answers skipped or repeated
}

var publishClient = &http.Client{Timeout: 30 * time.Second}

// post publishes the messages of body (an array) and checks the seqs.
func (p *publisher) post(body []byte) error {
	resp, err := publishClient.Post("http://"+p.admin+"/push_gateway/publish", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publishing: %s: %.300s", resp.Status, b)
	}
	var ans struct {
		Published []struct {
			SDKKey string `json:"sdk_key"`
			Seq    uint64 `json:"seq"`
		} `json:"published"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("publishing: answer %.300q: %w", b, err)
	}
	for _, e := range ans.Published {
		k, ok := p.keyIndex[e.SDKKey]
		if !ok {
			return fmt.Errorf("publishing: answer names key %q", e.SDKKey)
		}
		if e.Seq != p.last[k]+1 {
			p.gaps++
		}
		p.last[k] = max(p.last[k], e.Seq)
	}
	return nil
}

// batch builds n messages round-robin over the keys, stamped with now.
func (p *publisher) batch(n int) []byte {
	b := []byte{'['}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sdk_key":"`...)
		b = append(b, p.keys[p.next]...)
		b = append(b, `","data":{"t":`...)
		b = append(b, stamp...)
		b = append(b, "}}"...)
		p.next = (p.next + 1) % len(p.keys)
	}
	return append(b, ']')
}

// prefill publishes history messages to every key, so that histories are
// full before the first memory figure: a history filling up is growth the
// configuration allows, not a leak.
func (p *publisher) prefill(history int) error {
	for range history {
		if err := p.post(p.batch(len(p.keys))); err != nil {
			return err
		}
	}
	return nil
}

// run publishes rate messages a second until ctx ends.
func (p *publisher) run(ctx context.Context, rate int) error {
	tick := time.NewTicker(publishTick)
	defer tick.Stop()
	began := time.Now()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		// Catch up with the schedule rather than count ticks: a slow
		// answer on a loaded machine must not lower the rate.
		due := int64(time.Since(began).Seconds()*float64(rate)) - sent
		if due <= 0 {
			continue
		}
		due = min(due, int64(rate)) // at most a second's worth at once
		if err := p.post(p.batch(int(due))); err != nil {
			return err
		}
		sent += due
		p.messages += due
	}
}
