package integration

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestClusterAcrossNodes: three nodes on one Redis. A key followed on node A
// and published to on node B reaches A's followers as seq 1, 2, 3… with no
// gap; node C resumes from any of those positions over every transport
// (native, SSE, long poll) with exactly the missed messages, and its
// Socket.IO followers get the updates. The discovery list names all three.
func TestClusterAcrossNodes(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, 3, redis.URL())
	a, b, c := nodes[0], nodes[1], nodes[2]
	key := testKey(t, "k")
	const total, resumeAt = 50, 20

	var followers []*Client
	for range 2 {
		f := Dial(t, a.WSURL(route))
		if m := f.Register(t, key); m.Seq != 0 {
			t.Fatalf("fresh key registered at %s", m.Raw)
		}
		followers = append(followers, f)
	}
	p := publishRange(t, b.Node, key, 1, total)
	epoch := p.Epoch
	for i, f := range followers {
		if err := readRun(f, key, epoch, 1, total, false); err != nil {
			t.Fatalf("follower %d on %s: %v", i, a.ID, err)
		}
	}
	next := uint64(total) // the newest seq published so far

	t.Run("native resume on a third node", func(t *testing.T) {
		r := Dial(t, c.WSURL(route))
		if m := registerSince(t, r, key, resumeAt, epoch); m.Epoch != epoch || m.Seq != next {
			t.Fatalf("registered %s, want epoch %s seq %d", m.Raw, epoch, next)
		}
		if err := readRun(r, key, epoch, resumeAt+1, next, false); err != nil {
			t.Fatal(err)
		}
		// Then live, with nothing in between: the next message is the next
		// publish, on every node.
		next++
		publishRange(t, b.Node, key, next, next)
		for i, f := range append([]*Client{r}, followers...) {
			if err := readRun(f, key, epoch, next, next, false); err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		// On the URL too.
		u := Dial(t, c.WSURL(fmt.Sprintf("%s?sdk_key=%s&since=%d&epoch=%s", route, key, resumeAt, epoch)))
		if m := u.ReadMsg(t, msgTimeout); m.Type != "registered" || m.Seq != next || m.Epoch != epoch {
			t.Fatalf("URL resume: registered %s", m.Raw)
		}
		if err := readRun(u, key, epoch, resumeAt+1, next, false); err != nil {
			t.Fatalf("URL resume: %v", err)
		}
	})

	t.Run("sse resume on a third node", func(t *testing.T) {
		s := openSSE(t, sseHTTP1, sseURL(c.HTTP, key, ""), map[string]string{"Last-Event-ID": fmt.Sprintf("%s:%d", epoch, resumeAt)})
		for i := uint64(resumeAt + 1); i <= next; i++ {
			s.expectEvent(t, epoch, i, fmt.Sprint(i))
		}
		q := openSSE(t, sseHTTP1, sseURL(c.HTTP, key, fmt.Sprintf("&since=%d&epoch=%s", next-1, epoch)), nil)
		q.expectEvent(t, epoch, next, fmt.Sprint(next))
		fresh := openSSE(t, sseHTTP1, sseURL(c.HTTP, key, ""), nil)
		if pos := fresh.event(t); pos != (sseEvent{ID: fmt.Sprintf("%s:%d", epoch, next)}) {
			t.Fatalf("fresh stream's position %+v, want %s:%d", pos, epoch, next)
		}
		next++
		publishRange(t, b.Node, key, next, next)
		for _, st := range []*sseClient{s, q, fresh} {
			st.expectEvent(t, epoch, next, fmt.Sprint(next))
		}
		for i, f := range followers {
			if err := readRun(f, key, epoch, next, next, false); err != nil {
				t.Fatalf("follower %d: %v", i, err)
			}
		}
	})

	t.Run("long poll on a third node", func(t *testing.T) {
		got := PollOK(t, c.HTTP, pollQuery("", "", pollPos{key, resumeAt, epoch})).Keys[key]
		if got.Epoch != epoch || got.Seq != next || got.Resync {
			t.Fatalf("poll answer %+v, want epoch %s seq %d", got, epoch, next)
		}
		expectPollMessages(t, got, toSeqs(seqRange(resumeAt+1, int(next)))...)
		for i, m := range got.Messages {
			if string(m.Data) != fmt.Sprint(m.Seq) {
				t.Fatalf("message %d: %+v", i, m)
			}
		}
		// A poll held on C is woken by a publish on B.
		ch := HeldPoll(t, c.Node, pollClient, c.HTTP, pollQuery("20s", "", pollPos{key, int64(next), epoch}), 0)
		next++
		publishRange(t, b.Node, key, next, next)
		r := recvPoll(t, ch)
		expectPollMessages(t, r.Answer.Keys[key], next)
		// A position from another epoch is told to resync.
		got = PollOK(t, c.HTTP, pollQuery("", "", pollPos{key, 3, "gone-epoch"})).Keys[key]
		if !got.Resync || got.Epoch != epoch || got.Seq != next {
			t.Fatalf("poll from another epoch: %+v, want resync to %s:%d", got, epoch, next)
		}
		for i, f := range followers {
			if err := readRun(f, key, epoch, next, next, false); err != nil {
				t.Fatalf("follower %d: %v", i, err)
			}
		}
	})

	t.Run("socket.io on a third node", func(t *testing.T) {
		// C tracks the key already (the clients above registered there),
		// so the Socket.IO follower follows it from the register on.
		s := sioDial(t, c.Node, "/realtime/")
		s.Send(t, "40/realtime,")
		if got := sioNext(t, s); !strings.HasPrefix(got, `40/realtime,{"sid":`) {
			t.Fatalf("connect answer %q", got)
		}
		s.Send(t, `42/realtime,["register",{"key":"`+key+`"}]`)
		sioExpect(t, s, `42/realtime,["update",""]`)
		b.PublishOK(t, key, "", `"sio"`)
		sioExpect(t, s, `42/realtime,["update","sio"]`)
		b.PublishOK(t, key, "flags", `{"on":true}`)
		sioExpect(t, s, `42/realtime,["flags",{"on":true}]`)
	})

	t.Run("discovery lists every node", func(t *testing.T) {
		for _, n := range nodes {
			ns := waitListed(t, n.Node, a.ID, b.ID, c.ID)
			for _, l := range ns {
				i := slices.IndexFunc(nodes, func(cn *clusterNode) bool { return cn.ID == l.ID })
				if want := nodes[i]; l.Address != want.Address || l.Zone != want.Zone {
					t.Fatalf("%s lists %+v, want address %s zone %s", n.ID, l, want.Address, want.Zone)
				}
			}
			if !slices.IsSortedFunc(ns, func(x, y listedNode) int { return x.Connections - y.Connections }) {
				t.Fatalf("%s lists %+v: not least-loaded first", n.ID, ns)
			}
			self, adm := adminNodes(t, n.Node)
			if self != n.ID || len(adm) != 3 {
				t.Fatalf("admin nodes on %s: self %q, %d nodes", n.ID, self, len(adm))
			}
			s, raw := n.ClusterStats(t)
			if s.Node.ID != n.ID || s.Node.Address != n.Address || s.Node.Zone != n.Zone || s.Broker.State != "up" || s.Broker.Mode == "" {
				t.Fatalf("stats on %s: %s", n.ID, raw)
			}
		}
	})
}

func toSeqs(is []int) []uint64 {
	out := make([]uint64, len(is))
	for i, v := range is {
		out[i] = uint64(v)
	}
	return out
}

// TestClusterConcurrentPublishers: publishers on all three nodes to one key
// at once, followers on every node: every follower sees one total order,
// seq 1…N with no gap and no duplicate, in the epoch the publishers were
// answered; the answers' seqs are each seq once.
func TestClusterConcurrentPublishers(t *testing.T) {
	redis := redistest.Start(t)
	nodes := startCluster(t, 3, redis.URL())
	key := testKey(t, "k")
	const perNode, followersPerNode = 100, 3
	const total = perNode * 3

	followers := follow(t, key, followersPerNode, nodes...)

	answers := make([][]Published, len(nodes))
	pubErrs := make(chan error, len(nodes))
	var wg sync.WaitGroup
	start := time.Now()
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perNode {
				p, err := n.TryPublish(key, fmt.Sprintf(`{"node":%q,"n":%d}`, n.ID, j))
				if err != nil {
					pubErrs <- fmt.Errorf("publisher on %s, publish %d: %w", n.ID, j, err)
					return
				}
				answers[i] = append(answers[i], p)
			}
		}()
	}
	epoch := readTotalOrder(t, followers, key, total)
	wg.Wait()
	close(pubErrs)
	for err := range pubErrs {
		t.Fatal(err)
	}
	t.Logf("%d publishes from 3 nodes delivered to %d followers in %v", total, len(followers), time.Since(start))

	var seqs []int
	for i, as := range answers {
		for _, p := range as {
			if p.Epoch != epoch {
				t.Fatalf("publisher on %s answered epoch %s, followers saw %s", nodes[i].ID, p.Epoch, epoch)
			}
			seqs = append(seqs, int(p.Seq))
		}
		// One publisher's own messages are ordered as it sent them.
		if !slices.IsSortedFunc(as, func(x, y Published) int { return int(x.Seq) - int(y.Seq) }) {
			t.Fatalf("publisher on %s got seqs out of order", nodes[i].ID)
		}
	}
	slices.Sort(seqs)
	if !slices.Equal(seqs, seqRange(1, total)) {
		t.Fatalf("publish answers' seqs are not 1…%d once each: %v", total, seqs)
	}
	// Nothing after the last seq.
	for i, f := range followers {
		if e, ok := f.Next(50 * time.Millisecond); ok {
			t.Fatalf("follower %d got %v after seq %d", i, e, total)
		}
	}
}
