package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// outageAnswer bounds how long a publish may take to answer 503 while Redis
// is down: a publisher must not hang on a dead store.
const outageAnswer = 3 * time.Second

// TestClusterRedisOutage: Redis killed under traffic. Publishes answer 503
// with a JSON error in bounded time, stats show the broker down, and every
// client stays connected and served (an application ping is answered).
// Redis comes back empty (no persistence): publishes succeed again and the
// followers on both nodes get a resync to the new epoch, then every new
// message in order; never a silent gap.
func TestClusterRedisOutage(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, 2, redis.URL())
	key := testKey(t, "k")

	followers := follow(t, key, 2, nodes...)
	before := publishRange(t, nodes[0].Node, key, 1, 5)
	for i, f := range followers {
		if err := readRun(f, key, before.Epoch, 1, 5, false); err != nil {
			t.Fatalf("follower %d: %v", i, err)
		}
	}
	conns := make([]int64, len(nodes))
	for i, n := range nodes {
		conns[i] = n.Stats(t).Connections.WebSocket
	}

	// A publisher on node B runs across the kill: each of its publishes is
	// stored (200) or refused with a 503 in bounded time, never hangs.
	stopPub := make(chan struct{})
	pub := make(chan outagePublisher, 1)
	go func() { pub <- runOutagePublisher(nodes[1].Node, key, 6, stopPub) }()
	eventually(t, msgTimeout, func() (bool, string) {
		s := nodes[1].Stats(t)
		return s.Published >= 10, fmt.Sprintf("%d published on %s", s.Published, nodes[1].ID)
	})
	redis.Kill(t)
	killed := time.Now()
	for _, n := range nodes {
		waitBrokerState(t, n.Node, "down", 10*time.Second)
	}
	for round := range 2 {
		for _, n := range nodes {
			start := time.Now()
			status, b := n.AdminDo(t, http.MethodPost, "/push_gateway/publish", "application/json",
				strings.NewReader(`{"sdk_key":`+quote(key)+`,"data":"lost"}`))
			took := time.Since(start)
			if status != http.StatusServiceUnavailable || !isJSONError(b) {
				t.Fatalf("publish on %s with Redis down (round %d): %d %s, want 503 with a JSON error", n.ID, round, status, b)
			}
			if took > outageAnswer {
				t.Fatalf("publish on %s with Redis down answered after %v, want within %v", n.ID, took, outageAnswer)
			}
			t.Logf("publish on %s, Redis down %v: 503 in %v", n.ID, start.Sub(killed).Round(time.Millisecond), took.Round(time.Millisecond))
		}
	}
	close(stopPub)
	bg := <-pub
	if bg.err != nil {
		t.Fatal(bg.err)
	}
	if bg.refused == 0 {
		t.Fatalf("the background publisher met no 503 (%d stored): it did not run across the kill", bg.stored)
	}
	t.Logf("background publisher: %d stored before the kill (seq up to %d), %d refused with 503, slowest answer %v",
		bg.stored, bg.lastSeq, bg.refused, bg.slowest.Round(time.Millisecond))
	// Admin reads of a key answer too (503 or the node's mirror), never hang.
	for _, n := range nodes {
		start := time.Now()
		status, _, b := n.Key(t, key)
		if took := time.Since(start); took > 6*time.Second || (status != http.StatusOK && status != http.StatusServiceUnavailable) {
			t.Fatalf("GET key on %s with Redis down: %d %s after %v", n.ID, status, b, took)
		}
	}
	// Followers got the stored messages in order (or a run of them: one
	// stored but not yet fanned out when Redis died is covered by the resync
	// below), then the pong: no close, no other message.
	oldLast := make([]uint64, len(followers))
	for i, f := range followers {
		f.Send(t, `{"type":"ping"}`)
		oldLast[i] = 5
		for {
			m := f.ReadMsg(t, msgTimeout)
			if m.Type == "pong" {
				break
			}
			if m.Type != "message" || m.Epoch != before.Epoch || m.Seq != oldLast[i]+1 || m.Seq > bg.lastSeq {
				t.Fatalf("follower %d after seq %d, Redis down: got %s", i, oldLast[i], m.Raw)
			}
			oldLast[i] = m.Seq
		}
	}
	t.Logf("followers reached seqs %v of the %d stored before the kill", oldLast, bg.lastSeq)
	for i, n := range nodes {
		if got := n.Stats(t).Connections.WebSocket; got != conns[i] {
			t.Fatalf("%s: %d websocket connections during the outage, %d before", n.ID, got, conns[i])
		}
	}

	redis.Restart(t)
	restarted := time.Now()
	// Each node publishes again once it has reconnected; the first answers
	// may still be 503 while a node's connection pool backs off.
	var first Published
	last := uint64(0)
	for _, n := range nodes {
		var p Published
		eventually(t, 15*time.Second, func() (bool, string) {
			var err error
			p, err = n.TryPublish(key, `"after"`)
			return err == nil, fmt.Sprint(err)
		})
		t.Logf("%s published again %v after Redis restarted: %+v", n.ID, time.Since(restarted).Round(time.Millisecond), p)
		if first.Epoch == "" {
			first = p
		}
		if p.Epoch != first.Epoch || (last != 0 && p.Seq != last+1) {
			t.Fatalf("publish on %s after restart: %+v, want epoch %s seq %d", n.ID, p, first.Epoch, last+1)
		}
		last = p.Seq
	}
	if first.Epoch == before.Epoch {
		t.Fatalf("epoch %s unchanged after Redis lost the history", first.Epoch)
	}
	for i := range 4 {
		n := nodes[i%len(nodes)]
		p := n.PublishOK(t, key, "", `"after"`)
		if p.Epoch != first.Epoch || p.Seq != last+1 {
			t.Fatalf("publish on %s after restart: %+v, want epoch %s seq %d", n.ID, p, first.Epoch, last+1)
		}
		last = p.Seq
	}
	for _, n := range nodes {
		waitBrokerState(t, n.Node, "up", 10*time.Second)
	}
	resyncAt := make([]uint64, len(followers))
	for i, f := range followers {
		m := f.ReadMsg(t, msgTimeout)
		// What a node held back for a refill when Redis died may still come,
		// in order, before the resync.
		for m.Type == "message" && m.Epoch == before.Epoch && m.Seq == oldLast[i]+1 && m.Seq <= bg.lastSeq {
			oldLast[i] = m.Seq
			m = f.ReadMsg(t, msgTimeout)
		}
		// The resync may come at the node's reconnection (seq 0) or with a
		// later message: it tells where to continue, the state before it is
		// pulled by the client.
		if m.Type != "resync" || m.SDKKey != key || m.Epoch != first.Epoch || m.Seq > last {
			t.Fatalf("follower %d: first message after the restart %s, want resync to epoch %s at seq <= %d", i, m.Raw, first.Epoch, last)
		}
		resyncAt[i] = m.Seq
		if err := readRun(f, key, first.Epoch, m.Seq+1, last, true); err != nil {
			t.Fatalf("follower %d after resync to seq %d: %v", i, m.Seq, err)
		}
	}
	t.Logf("after the restart: publishes seq %d..%d, followers resynced at seqs %v", first.Seq, last, resyncAt)
	for i, n := range nodes {
		if got := n.Stats(t).Connections.WebSocket; got != conns[i] {
			t.Fatalf("%s: %d websocket connections after the outage, %d before", n.ID, got, conns[i])
		}
	}
}

// TestClusterPubSubLoss: Redis drops the nodes' Pub/Sub connections (CLIENT
// KILL TYPE pubsub) while publishers run, so messages are lost on the way
// to the nodes but not from the shared history: every follower on both
// nodes still gets every seq once, in order.
func TestClusterPubSubLoss(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, 2, redis.URL())
	key := testKey(t, "k")
	const perPublisher = 100
	const total = 2 * perPublisher

	followers := follow(t, key, 2, nodes...)

	reconnects := make([]uint64, len(nodes))
	for i, n := range nodes {
		s, _ := n.ClusterStats(t)
		reconnects[i] = s.Broker.Reconnects
	}

	var done atomic.Int64
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perPublisher {
				if _, err := n.TryPublish(key, strconv.Itoa(j)); err != nil {
					errs <- fmt.Errorf("publisher on %s, publish %d: %w", n.ID, j, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	// Kill the Pub/Sub connections every 20 publishes of the run.
	var killedAny bool
	for at := int64(15); at < total; at += 20 {
		deadline := time.Now().Add(30 * time.Second)
		for done.Load() < at && len(errs) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // polling the publishers' progress
		}
		out, err := redis.Try("CLIENT", "KILL", "TYPE", "pubsub")
		if err != nil {
			t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
		}
		t.Logf("after %d publishes: CLIENT KILL TYPE pubsub killed %s", done.Load(), out)
		killedAny = killedAny || (out != "0" && out != "")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !killedAny {
		t.Fatal("CLIENT KILL TYPE pubsub found no Pub/Sub connection to kill: the test proves nothing")
	}
	for i, n := range nodes {
		eventually(t, msgTimeout, func() (bool, string) {
			s, raw := n.ClusterStats(t)
			return s.Broker.Reconnects > reconnects[i], fmt.Sprintf("%s: Pub/Sub reconnects %d before the kills, now %s", n.ID, reconnects[i], raw)
		})
	}
	readTotalOrder(t, followers, key, total)
}

// outagePublisher is what runOutagePublisher saw.
type outagePublisher struct {
	stored, refused int
	lastSeq         uint64        // the newest seq a 200 answered
	slowest         time.Duration // the slowest answer
	err             error
}

// runOutagePublisher publishes seq, seq+1, … to key on n until stop is
// closed (at most 5000 times). Every answer must be a 200 with the next seq
// or a 503 with a JSON error within outageAnswer; once one is refused, none
// may be stored (the store is down for good).
func runOutagePublisher(n *Node, key string, seq uint64, stop <-chan struct{}) outagePublisher {
	var r outagePublisher
	// Bounded by time, not by a count a fast machine could use up before
	// the kill: the publisher must still be running when Redis dies.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return r
		default:
		}
		start := time.Now()
		resp, err := adminClient.Post(n.Admin+"/push_gateway/publish", "application/json",
			strings.NewReader(fmt.Sprintf(`{"sdk_key":%s,"data":%d}`, quote(key), seq)))
		if err != nil {
			r.err = fmt.Errorf("background publish: %w", err)
			return r
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		r.slowest = max(r.slowest, took)
		switch {
		case err != nil:
			r.err = fmt.Errorf("background publish: %w", err)
		case took > outageAnswer:
			r.err = fmt.Errorf("background publish answered %d after %v, want within %v", resp.StatusCode, took, outageAnswer)
		case resp.StatusCode == http.StatusServiceUnavailable && isJSONError(b):
			r.refused++
		case resp.StatusCode == http.StatusOK && r.refused == 0:
			var ans struct {
				Published []Published `json:"published"`
			}
			if err := json.Unmarshal(b, &ans); err != nil || len(ans.Published) != 1 || ans.Published[0].Seq != seq {
				r.err = fmt.Errorf("background publish of seq %d answered %s", seq, b)
				break
			}
			r.stored++
			r.lastSeq = seq
			seq++
		default:
			r.err = fmt.Errorf("background publish (%d stored, %d refused): %d %s", r.stored, r.refused, resp.StatusCode, b)
		}
		if r.err != nil {
			return r
		}
	}
	return r
}
