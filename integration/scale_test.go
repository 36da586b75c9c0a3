package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dialMany opens count clients, at most 64 handshakes at a time, with the URL
// urlFor(i); when registered is set, that URL registers one key and dialMany
// waits for each one's registered message.
func dialMany(t testing.TB, count int, urlFor func(i int) string, o DialOpts, registered bool) []*Client {
	t.Helper()
	clients := make([]*Client, count)
	inParallel(t, count, dialLimit, func(i int) error {
		c, _, err := TryDial(t, urlFor(i), o)
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		clients[i] = c
		if !registered {
			return nil
		}
		m, err := c.NextMsg(30 * time.Second)
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		if m.Type != "registered" {
			return fmt.Errorf("client %d: want registered, got %s", i, m.Raw)
		}
		return nil
	})
	return clients
}

func closeAll(cs []*Client) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test: skipped with -short")
	}
}

// TestScaleIdleGoroutines: idle connections cost no goroutine
// (ARCHITECTURE I4), over plain TCP and over TLS.
func TestScaleIdleGoroutines(t *testing.T) {
	skipShort(t)
	tests := []struct {
		name  string
		count int
		tls   bool
	}{
		{name: "ws", count: 2000},
		{name: "wss", count: 1000, tls: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n *Node
			wsURL := func(pq string) string { return n.WSURL(pq) }
			if tc.tls {
				n = startTLSNode(t)
				wsURL = func(pq string) string { return n.WSSURL(pq) }
			} else {
				n = startCaddy(t, caddyfile(nil, nil))
			}
			keyBase := testKey(t, "k")
			// One connection first, so that lazily started pools are running
			// before the baseline is read.
			warm := Dial(t, wsURL(route+"?sdk_key="+keyBase+"-warm"))
			warm.ReadMsg(t, msgTimeout)
			base := n.Stats(t)

			dialStart := time.Now()
			clients := dialMany(t, tc.count, func(i int) string {
				return wsURL(fmt.Sprintf("%s?sdk_key=%s-%d", route, keyBase, i%50))
			}, DialOpts{}, true)
			t.Logf("%d %s connections registered in %v", tc.count, tc.name, time.Since(dialStart))
			var last Stats
			eventually(t, 60*time.Second, func() (bool, string) {
				last = n.Stats(t)
				return last.Connections.WebSocket == base.Connections.WebSocket+int64(tc.count) &&
						last.Goroutines-base.Goroutines < 50,
					fmt.Sprintf("websocket connections %d (base %d), goroutines %d (base %d)",
						last.Connections.WebSocket, base.Connections.WebSocket, last.Goroutines, base.Goroutines)
			})
			t.Logf("%d idle %s connections: goroutines %d -> %d", tc.count, tc.name, base.Goroutines, last.Goroutines)

			// They are alive: one key's followers all get a publish.
			p := n.PublishOK(t, keyBase+"-0", "", `"hello"`)
			if want := tc.count / 50; p.LocalReceivers != want {
				t.Fatalf("local_receivers %d, want %d", p.LocalReceivers, want)
			}
			for i := 0; i < tc.count; i += 50 {
				clients[i].ExpectMessage(t, keyBase+"-0", 1)
			}
			closeAll(clients)
			eventually(t, 60*time.Second, func() (bool, string) {
				s := n.Stats(t)
				return s.Connections.WebSocket == base.Connections.WebSocket,
					fmt.Sprintf("%d websocket connections after closing, base %d", s.Connections.WebSocket, base.Connections.WebSocket)
			})
		})
	}
}

// readSeqs reads messages of key from c until it has seen seq to, checking
// each is the next seq; it returns the first error.
func readSeqs(c *Client, key string, from, to uint64, timeout time.Duration) error {
	return readSeqsData(c, key, from, to, timeout, func(seq uint64) string { return fmt.Sprint(seq) })
}

// readSeqsData is readSeqs with the data each seq must carry.
func readSeqsData(c *Client, key string, from, to uint64, timeout time.Duration, data func(seq uint64) string) error {
	for want := from; want <= to; want++ {
		m, err := c.NextMsg(timeout)
		if err != nil {
			return fmt.Errorf("waiting for seq %d: %w", want, err)
		}
		if m.Type != "message" || m.SDKKey != key || m.Seq != want {
			return fmt.Errorf("want message seq %d, got %s", want, truncate(m.Raw, 200))
		}
		if string(m.Data) != data(want) {
			return fmt.Errorf("seq %d carries data %s", want, truncate(m.Data, 100))
		}
	}
	return nil
}

// TestScaleFanOut: one key, hundreds of followers, 50 messages: each
// follower gets each message once, in order. Over TLS the messages are
// larger, so writes meet a full socket and go through the TLS send-room
// sizing and the wheel's retries.
func TestScaleFanOut(t *testing.T) {
	skipShort(t)
	tests := []struct {
		name      string
		tls       bool
		followers int
		pad       int // bytes of padding per message
	}{
		{name: "ws", followers: 500},
		{name: "wss", tls: true, followers: 300, pad: 8 << 10},
	}
	const messages = 50
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n *Node
			wsURL := func(pq string) string { return n.WSURL(pq) }
			if tc.tls {
				n = startTLSNode(t)
				wsURL = func(pq string) string { return n.WSSURL(pq) }
			} else {
				n = startCaddy(t, caddyfile(nil, nil))
			}
			key := testKey(t, "k")
			data := func(seq uint64) string {
				if tc.pad == 0 {
					return fmt.Sprint(seq)
				}
				return fmt.Sprintf(`{"i":%d,"pad":"%s"}`, seq, strings.Repeat("x", tc.pad))
			}
			clients := dialMany(t, tc.followers, func(int) string { return wsURL(route + "?sdk_key=" + key) }, DialOpts{}, true)
			before := n.Stats(t)

			errs := make(chan error, tc.followers)
			var wg sync.WaitGroup
			for i, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := readSeqsData(c, key, 1, messages, 30*time.Second, data); err != nil {
						errs <- fmt.Errorf("follower %d: %w", i, err)
					}
				}()
			}
			for i := uint64(1); i <= messages; i++ {
				p := n.PublishOK(t, key, "", data(i))
				if p.Seq != i || p.LocalReceivers != tc.followers {
					t.Errorf("publish %d: seq %d, local_receivers %d, want %d", i, p.Seq, p.LocalReceivers, tc.followers)
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			// Nothing after the last one.
			for _, c := range clients[:20] {
				c.ExpectQuiet(t, 50*time.Millisecond)
			}
			after := n.Stats(t)
			if d := after.Delivered - before.Delivered; d < uint64(tc.followers*messages) {
				t.Errorf("stats delivered grew by %d, want at least %d", d, tc.followers*messages)
			}
			if after.SlowConsumerCloses != before.SlowConsumerCloses {
				t.Errorf("slow consumer closes grew from %d to %d", before.SlowConsumerCloses, after.SlowConsumerCloses)
			}
		})
	}
}

// TestScaleSlowConsumer: a reader that never reads is closed with 4429 once
// its queue is full, while 200 others on the same key keep every message in
// order (ARCHITECTURE I3).
func TestScaleSlowConsumer(t *testing.T) {
	skipShort(t)
	const others, maxPublishes = 200, 1000
	n := startCaddy(t, caddyfile(nil, []string{"queue_size 64"}))
	key := testKey(t, "k")
	clients := dialMany(t, others, func(int) string { return n.WSURL(route + "?sdk_key=" + key) }, DialOpts{}, true)
	stalled := DialWith(t, n.WSURL(route+"?sdk_key="+key), DialOpts{NoReader: true, RecvBuf: 4096})
	eventually(t, msgTimeout, func() (bool, string) {
		_, ki, b := n.Key(t, key)
		return ki.Followers == others+1, fmt.Sprintf("key info %s", b)
	})
	base := n.Stats(t)

	readers := startSeqReaders(clients, key)

	big := `"` + strings.Repeat("x", 32<<10) + `"`
	published, closed := 0, false
	for published < maxPublishes && !closed {
		published++
		n.PublishOK(t, key, "", big)
		// Pace the publisher by the readers that do read, so that only
		// the stalled one falls behind.
		eventually(t, 60*time.Second, func() (bool, string) {
			return readers.minSeen()+16 >= uint64(published), fmt.Sprintf("readers at %d of %d", readers.minSeen(), published)
		})
		if published%4 == 0 {
			closed = n.Stats(t).SlowConsumerCloses > base.SlowConsumerCloses
		}
	}
	if !closed {
		t.Fatalf("stalled reader not closed after %d messages of 32 KiB", published)
	}
	t.Logf("stalled reader closed after %d messages of 32 KiB", published)
	n.PublishOK(t, key, "end", `"end"`)
	readers.finish(t, uint64(published+1))
	// The stalled one finds its buffered messages, then the close code.
	stalled.StartReader()
	got := stalled.ExpectClose(t, 4429, 60*time.Second)
	// What it did get is registered, then a gapless prefix of the stream.
	if len(got) == 0 || got[0].Type != "registered" {
		t.Fatalf("stalled reader's first message %s, want registered", lastRaw(got[:min(1, len(got))]))
	}
	if last := got[len(got)-1]; last.Type == "error" { // the contract allows an error before the close
		got = got[:len(got)-1]
	}
	for i, m := range got[1:] {
		if m.Type != "message" || m.Seq != uint64(i+1) {
			t.Fatalf("stalled reader's message %d is %s, want seq %d", i+1, truncate(m.Raw, 100), i+1)
		}
	}
	t.Logf("stalled reader got %d messages before 4429", len(got)-1)
	eventually(t, 30*time.Second, func() (bool, string) {
		_, ki, b := n.Key(t, key)
		return ki.Followers == others, fmt.Sprintf("after the slow consumer close: %s, want %d followers", b, others)
	})
}

// TestScaleResumeUnderPublish: 200 clients drop and resume with since/epoch
// while a publisher publishes every millisecond; each ends up with exactly
// seqs 1..N, in order, once (ARCHITECTURE I1).
func TestScaleResumeUnderPublish(t *testing.T) {
	skipShort(t)
	const clients = 200
	const publishFor = 3 * time.Second
	n := startCaddy(t, caddyfile([]string{"history_size 20000"}, []string{"queue_size 4096"}))
	key := testKey(t, "k")
	first := n.PublishOK(t, key, "", "1")
	epoch := first.Epoch

	var final atomic.Uint64 // the last seq published, once the publisher is done
	var pubErr error
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		end := time.Now().Add(publishFor)
		last := uint64(1)
		for time.Now().Before(end) {
			<-tick.C
			p, err := n.TryPublish(key, fmt.Sprint(last+1))
			if err != nil {
				pubErr = err
				break
			}
			if p.Seq != last+1 {
				pubErr = fmt.Errorf("publish answered seq %d after %d", p.Seq, last)
				break
			}
			last = p.Seq
		}
		final.Store(last)
	}()

	type result struct {
		seen, reconnects int
		err              error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32) // handshakes under way at once
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			var last uint64
			deadline := time.Now().Add(publishFor + 90*time.Second)
			for time.Now().Before(deadline) {
				if f := final.Load(); f != 0 && last == f {
					return
				}
				q := url.Values{"sdk_key": {key}, "since": {fmt.Sprint(last)}, "epoch": {epoch}}
				sem <- struct{}{}
				c, _, err := TryDial(t, n.WSURL(route+"?"+q.Encode()), DialOpts{})
				if err == nil {
					var m ServerMsg
					if m, err = c.NextMsg(30 * time.Second); err == nil && (m.Type != "registered" || m.Epoch != epoch) {
						err = fmt.Errorf("want registered in epoch %s, got %s", epoch, m.Raw)
					}
				}
				<-sem
				if err != nil {
					r.err = fmt.Errorf("reconnect %d after seq %d: %w", r.reconnects, last, err)
					return
				}
				r.reconnects++
				// Read a random number of messages, then drop the
				// connection without a goodbye; a close from the gateway
				// (e.g. 4429) is just another reason to resume.
				budget := 10 + rng.IntN(150)
				quietSince := time.Now()
				for budget > 0 {
					if f := final.Load(); f != 0 && last == f {
						break
					}
					e, ok := c.Next(200 * time.Millisecond)
					if !ok {
						if time.Since(quietSince) > 30*time.Second {
							break
						}
						continue // re-check final
					}
					quietSince = time.Now()
					if e.Op != opText {
						break // closed by the gateway or gone: resume
					}
					var m ServerMsg
					if err := json.Unmarshal(e.Data, &m); err != nil {
						r.err = fmt.Errorf("message %q: %w", truncate(e.Data, 100), err)
						c.Close()
						return
					}
					m.Raw = e.Data
					if m.Type != "message" || m.Seq != last+1 {
						r.err = fmt.Errorf("after seq %d got %s", last, truncate(m.Raw, 120))
						c.Close()
						return
					}
					last = m.Seq
					r.seen++
					budget--
				}
				c.Close()
			}
			r.err = fmt.Errorf("gave up at seq %d of %d", last, final.Load())
		}()
	}
	wg.Wait()
	<-pubDone
	if pubErr != nil {
		t.Fatalf("publisher: %v", pubErr)
	}
	total := final.Load()
	t.Logf("published %d messages in %v; %d clients resumed", total, publishFor, clients)
	var errCount int
	for i, r := range results {
		switch {
		case r.err != nil:
			errCount++
			if errCount <= 10 {
				t.Errorf("client %d: %v", i, r.err)
			}
		case uint64(r.seen) != total:
			t.Errorf("client %d saw %d messages, want %d", i, r.seen, total)
		case r.reconnects < 2:
			t.Errorf("client %d never resumed", i)
		}
	}
	if errCount > 10 {
		t.Errorf("... %d clients failed in all", errCount)
	}
	if n.Exited() {
		t.Fatal("caddy exited")
	}
}

// TestSlowFrames: clients that dribble frames one byte at a time cost no
// worker (ARCHITECTURE I5): 100 others keep receiving meanwhile.
func TestSlowFrames(t *testing.T) {
	skipShort(t)
	const dribblers, receivers, maxMessages = 50, 100, 5000
	n := startCaddy(t, caddyfile(nil, nil))
	key := testKey(t, "k")
	recv := dialMany(t, receivers, func(int) string { return n.WSURL(route + "?sdk_key=" + key) }, DialOpts{}, true)
	slow := dialMany(t, dribblers, func(int) string { return n.WSURL(route) }, DialOpts{}, false)
	readers := startSeqReaders(recv, key)

	stop := make(chan struct{})
	dribbleErrs := make(chan error, dribblers)
	var frames atomic.Int64
	var dwg sync.WaitGroup
	for i, c := range slow {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			msg := []byte(`{"type":"ping"}` + strings.Repeat(" ", 45))
			for f := 0; f < 10; f++ { // bounded: at most 10 frames of ~1.2s each
				frame := encodeFrame(true, opText, msg, true)
				for _, b := range frame {
					if err := c.WriteRaw([]byte{b}); err != nil {
						dribbleErrs <- fmt.Errorf("dribbler %d: %w", i, err)
						return
					}
					time.Sleep(20 * time.Millisecond) // the client's pace, not synchronisation
				}
				m, err := c.NextMsg(30 * time.Second)
				if err != nil || m.Type != "pong" {
					dribbleErrs <- fmt.Errorf("dribbler %d frame %d: pong %s: %v", i, f, m.Raw, err)
					return
				}
				frames.Add(1)
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}

	// Publish while the dribblers dribble: until they completed two
	// frames each on average, bounded in count. Every message must reach
	// every receiver within a few seconds, dribblers or not.
	published := 0
	for published < maxMessages && frames.Load() < 2*dribblers {
		published++
		n.PublishOK(t, key, "", fmt.Sprint(published))
		eventually(t, 5*time.Second, func() (bool, string) {
			return readers.minSeen() >= uint64(published), fmt.Sprintf("receivers at %d of %d", readers.minSeen(), published)
		})
	}
	t.Logf("%d messages to %d receivers while %d clients dribbled %d frames", published, receivers, dribblers, frames.Load())
	n.PublishOK(t, key, "end", `"end"`)
	readers.finish(t, uint64(published+1))
	close(stop)
	dwg.Wait()
	close(dribbleErrs)
	for err := range dribbleErrs {
		t.Error(err)
	}
	if frames.Load() < dribblers {
		t.Errorf("only %d dribbled frames completed", frames.Load())
	}
}

// seqReaders read one key on many clients, each checking that seqs come as
// 1, 2, 3, ... until a message with event "end".
type seqReaders struct {
	lastSeen []atomic.Uint64
	errs     chan error
	wg       sync.WaitGroup
}

func startSeqReaders(clients []*Client, key string) *seqReaders {
	r := &seqReaders{lastSeen: make([]atomic.Uint64, len(clients)), errs: make(chan error, len(clients))}
	for i, c := range clients {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				m, err := c.NextMsg(60 * time.Second)
				if err != nil {
					r.errs <- fmt.Errorf("reader %d after seq %d: %w", i, r.lastSeen[i].Load(), err)
					return
				}
				if m.Type != "message" || m.SDKKey != key || m.Seq != r.lastSeen[i].Load()+1 {
					r.errs <- fmt.Errorf("reader %d after seq %d got %s", i, r.lastSeen[i].Load(), truncate(m.Raw, 120))
					return
				}
				r.lastSeen[i].Store(m.Seq)
				if m.Event == "end" {
					return
				}
			}
		}()
	}
	return r
}

// minSeen is the lowest seq every reader has reached.
func (r *seqReaders) minSeen() uint64 {
	lowest := r.lastSeen[0].Load()
	for i := range r.lastSeen {
		lowest = min(lowest, r.lastSeen[i].Load())
	}
	return lowest
}

// finish waits for every reader to read the end message, seq last.
func (r *seqReaders) finish(t testing.TB, last uint64) {
	t.Helper()
	r.wg.Wait()
	close(r.errs)
	for err := range r.errs {
		t.Error(err)
	}
	for i := range r.lastSeen {
		if got := r.lastSeen[i].Load(); got != last {
			t.Errorf("reader %d ended at seq %d, want %d", i, got, last)
		}
	}
}
