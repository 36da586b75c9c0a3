package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// PollAnswer is a long-poll answer.
type PollAnswer struct {
	Keys map[string]PollKey `json:"keys"`
}

// PollKey is one key of a long-poll answer.
type PollKey struct {
	Epoch    string        `json:"epoch"`
	Seq      uint64        `json:"seq"`
	Messages []PollMessage `json:"messages"`
	Resync   bool          `json:"resync"`
}

// PollMessage is one message of a long-poll answer.
type PollMessage struct {
	Seq   uint64          `json:"seq"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	TS    int64           `json:"ts"`
}

// PollResult is one poll request's outcome.
type PollResult struct {
	Status int
	Proto  string
	Body   []byte
	Answer PollAnswer // for a 200
	Err    error      // transport error, or an undecodable 200
}

// pollQuery builds a poll query: one key uses since/epoch, several use
// since.K/epoch.K. A negative since leaves the position out.
type pollPos struct {
	key   string
	since int64
	epoch string
}

func pollQuery(wait, cid string, pos ...pollPos) string {
	q := url.Values{}
	for _, p := range pos {
		q.Add("sdk_key", p.key)
	}
	for _, p := range pos {
		if p.since < 0 {
			continue
		}
		suffix := ""
		if len(pos) > 1 {
			suffix = "." + p.key
		}
		q.Set("since"+suffix, strconv.FormatInt(p.since, 10))
		q.Set("epoch"+suffix, p.epoch)
	}
	if wait != "" {
		q.Set("wait", wait)
	}
	if cid != "" {
		q.Set("cid", cid)
	}
	return q.Encode()
}

var pollClient = &http.Client{Timeout: 90 * time.Second}

// Poll runs one poll request against base (the site's URL) and never
// fails the test itself, so that it can run in goroutines.
func Poll(ctx context.Context, client *http.Client, base, query string) PollResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+route+"?"+query, nil)
	if err != nil {
		return PollResult{Err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return PollResult{Err: err}
	}
	defer resp.Body.Close()
	r := PollResult{Status: resp.StatusCode, Proto: resp.Proto}
	if r.Body, err = io.ReadAll(resp.Body); err != nil {
		r.Err = err
		return r
	}
	if r.Status == http.StatusOK {
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			r.Err = fmt.Errorf("Cache-Control %q, want no-store", cc)
		} else if err := json.Unmarshal(r.Body, &r.Answer); err != nil {
			r.Err = fmt.Errorf("answer %s: %w", truncate(r.Body, 300), err)
		}
	}
	return r
}

// PollOK polls and fails the test unless the answer is a 200.
func PollOK(t testing.TB, base, query string) PollAnswer {
	t.Helper()
	r := Poll(context.Background(), pollClient, base, query)
	if r.Err != nil || r.Status != http.StatusOK {
		t.Fatalf("poll %s: %d %s %v", query, r.Status, truncate(r.Body, 300), r.Err)
	}
	return r.Answer
}

// HeldPoll starts a poll in the background and waits until the gateway
// holds it (connections.poll rose above before).
func HeldPoll(t testing.TB, n *Node, client *http.Client, base, query string, before int64) <-chan PollResult {
	t.Helper()
	ch := make(chan PollResult, 1)
	go func() { ch <- Poll(context.Background(), client, base, query) }()
	eventually(t, msgTimeout, func() (bool, string) {
		s := n.Stats(t)
		return s.Connections.Poll > before, fmt.Sprintf("connections.poll %d, want > %d", s.Connections.Poll, before)
	})
	return ch
}

func recvPoll(t testing.TB, ch <-chan PollResult) PollResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.Err != nil || r.Status != http.StatusOK {
			t.Fatalf("held poll: %d %s %v", r.Status, truncate(r.Body, 300), r.Err)
		}
		return r
	case <-time.After(msgTimeout):
		t.Fatal("held poll not answered")
	}
	return PollResult{}
}

func expectPollMessages(t testing.TB, k PollKey, wantSeqs ...uint64) {
	t.Helper()
	if len(k.Messages) != len(wantSeqs) {
		t.Fatalf("messages %+v, want seqs %v", k.Messages, wantSeqs)
	}
	for i, m := range k.Messages {
		if m.Seq != wantSeqs[i] || m.Event == "" || m.TS == 0 {
			t.Fatalf("message %d: %+v, want seq %d", i, m, wantSeqs[i])
		}
	}
}

func waitPollConns(t testing.TB, n *Node, want int64) {
	t.Helper()
	eventually(t, msgTimeout, func() (bool, string) {
		s := n.Stats(t)
		return s.Connections.Poll == want, fmt.Sprintf("connections.poll %d, want %d", s.Connections.Poll, want)
	})
}

func TestPoll(t *testing.T) {
	n := startCaddy(t, caddyfile(nil, []string{"poll_max_wait 2s"}))
	base := n.HTTP

	t.Run("immediate", func(t *testing.T) {
		key := testKey(t, "k")
		data := `{"flag" : [1, 2.50, "\u00e9"], "on":true }`
		p := n.PublishOK(t, key, "", data)
		n.PublishOK(t, key, "kill", `"two"`)
		start := time.Now()
		got := PollOK(t, base, pollQuery("20s", "", pollPos{key, -1, ""})).Keys[key]
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("answered after %v", took)
		}
		if got.Epoch != p.Epoch || got.Seq != 2 || got.Resync {
			t.Fatalf("answer %+v", got)
		}
		expectPollMessages(t, got, 1, 2)
		if m := got.Messages[0]; string(m.Data) != data || m.Event != "update" {
			t.Fatalf("message %+v, want data %s byte for byte", m, data)
		}
		if m := got.Messages[1]; string(m.Data) != `"two"` || m.Event != "kill" {
			t.Fatalf("message %+v", m)
		}
	})

	t.Run("held and woken", func(t *testing.T) {
		key := testKey(t, "k")
		p := n.PublishOK(t, key, "", `1`)
		ch := HeldPoll(t, n, pollClient, base, pollQuery("20s", "", pollPos{key, 1, p.Epoch}), 0)
		start := time.Now()
		n.PublishOK(t, key, "", `{"x":2}`)
		r := recvPoll(t, ch)
		latency := time.Since(start)
		got := r.Answer.Keys[key]
		expectPollMessages(t, got, 2)
		if string(got.Messages[0].Data) != `{"x":2}` {
			t.Fatalf("data %s", got.Messages[0].Data)
		}
		t.Logf("publish request start to poll answer: %v", latency)
		if latency > 2*time.Second {
			t.Fatalf("woken after %v", latency)
		}
		waitPollConns(t, n, 0)
	})

	t.Run("wait expires", func(t *testing.T) {
		key := testKey(t, "k")
		p := n.PublishOK(t, key, "", `1`)
		for _, tc := range []struct {
			wait     string
			min, max time.Duration
		}{
			{"300ms", 250 * time.Millisecond, 5 * time.Second},
			{"1h", 1900 * time.Millisecond, 10 * time.Second}, // capped by poll_max_wait 2s
		} {
			start := time.Now()
			r := Poll(context.Background(), pollClient, base, pollQuery(tc.wait, "", pollPos{key, 1, p.Epoch}))
			took := time.Since(start)
			want := `{"keys":{` + quote(key) + `:{"epoch":` + quote(p.Epoch) + `,"seq":1,"messages":[],"resync":false}}}`
			if r.Err != nil || r.Status != 200 || string(r.Body) != want {
				t.Fatalf("wait %s: %d %s %v, want %s", tc.wait, r.Status, r.Body, r.Err, want)
			}
			if took < tc.min || took > tc.max {
				t.Fatalf("wait %s answered after %v, want %v..%v", tc.wait, took, tc.min, tc.max)
			}
		}
	})

	t.Run("several keys", func(t *testing.T) {
		a, b := testKey(t, "a"), testKey(t, "b")
		pa := n.PublishOK(t, a, "", `"a1"`)
		pb := n.PublishOK(t, b, "", `"b1"`)
		q := pollQuery("20s", "", pollPos{a, 1, pa.Epoch}, pollPos{b, 1, pb.Epoch})
		ch := HeldPoll(t, n, pollClient, base, q, 0)
		n.PublishOK(t, b, "", `"b2"`)
		got := recvPoll(t, ch).Answer
		if len(got.Keys) != 2 || got.Keys[a].Seq != 1 || len(got.Keys[a].Messages) != 0 {
			t.Fatalf("answer %+v", got)
		}
		expectPollMessages(t, got.Keys[b], 2)
		// Both behind: both answered at once.
		got = PollOK(t, base, pollQuery("20s", "", pollPos{a, 0, pa.Epoch}, pollPos{b, 0, pb.Epoch}))
		expectPollMessages(t, got.Keys[a], 1)
		expectPollMessages(t, got.Keys[b], 1, 2)
	})

	t.Run("resume and resync", func(t *testing.T) {
		key := testKey(t, "k")
		var p Published
		for i := range 5 {
			p = n.PublishOK(t, key, "", strconv.Itoa(i))
		}
		expectPollMessages(t, PollOK(t, base, pollQuery("20s", "", pollPos{key, 3, p.Epoch})).Keys[key], 4, 5)
		for _, pos := range []pollPos{
			{key, 3, "another-epoch"},
			{key, 9, p.Epoch}, // beyond the newest
		} {
			got := PollOK(t, base, pollQuery("20s", "", pos)).Keys[key]
			if !got.Resync || got.Epoch != p.Epoch || got.Seq != 5 || len(got.Messages) != 0 {
				t.Fatalf("since %d epoch %s: %+v, want a resync to %s/5", pos.since, pos.epoch, got, p.Epoch)
			}
		}
		// A dropped key wakes a held poll with a resync to its new epoch.
		ch := HeldPoll(t, n, pollClient, base, pollQuery("20s", "", pollPos{key, 5, p.Epoch}), 0)
		if status, b := n.AdminDo(t, http.MethodDelete, "/push_gateway/keys/"+key, "", nil); status != 200 {
			t.Fatalf("drop: %d %s", status, b)
		}
		got := recvPoll(t, ch).Answer.Keys[key]
		if !got.Resync || got.Epoch == p.Epoch {
			t.Fatalf("after drop: %+v", got)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, q := range []string{"", "sdk_key=a&since=x", "sdk_key=a&since.b=1", "sdk_key=a&wait=later"} {
			r := Poll(context.Background(), pollClient, base, q)
			var e struct{ Error string }
			if r.Err != nil || r.Status != 400 || json.Unmarshal(r.Body, &e) != nil || e.Error == "" {
				t.Fatalf("%q: %d %s %v, want 400 with a JSON error", q, r.Status, r.Body, r.Err)
			}
		}
	})

	t.Run("client disconnect releases", func(t *testing.T) {
		key := testKey(t, "k")
		const count = 4
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range count {
			wg.Go(func() { Poll(ctx, pollClient, base, pollQuery("20s", "", pollPos{key, -1, ""})) })
		}
		waitPollConns(t, n, count)
		if _, info, _ := n.Key(t, key); info.Followers != count {
			t.Fatalf("followers %d while held, want %d", info.Followers, count)
		}
		cancel()
		wg.Wait()
		waitPollConns(t, n, 0)
		eventually(t, msgTimeout, func() (bool, string) {
			status, info, _ := n.Key(t, key)
			return status == 404 || info.Followers == 0, fmt.Sprintf("key %d, followers %d", status, info.Followers)
		})
	})
}

// TestPollH2 long-polls over HTTP/2 on a `tls internal` site: held and
// woken, and a cancelled stream releases the hold.
func TestPollH2(t *testing.T) {
	n := startTLSNode(t)
	base := fmt.Sprintf("https://127.0.0.1:%d", n.HTTPSPort)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	key := testKey(t, "k")
	p := n.PublishOK(t, key, "", `1`)
	ch := HeldPoll(t, n, client, base, pollQuery("20s", "", pollPos{key, 1, p.Epoch}), 0)
	n.PublishOK(t, key, "", `2`)
	r := recvPoll(t, ch)
	if r.Proto != "HTTP/2.0" {
		t.Fatalf("poll went over %s, want HTTP/2", r.Proto)
	}
	expectPollMessages(t, r.Answer.Keys[key], 2)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Poll(ctx, client, base, pollQuery("20s", "", pollPos{key, 2, p.Epoch}))
	}()
	waitPollConns(t, n, 1)
	cancel() // RST_STREAM: the connection stays, the hold ends
	<-done
	waitPollConns(t, n, 0)
}

// TestPollCost holds many polls at once and reports the goroutines and the
// resident memory each costs the gateway, over HTTP/1.1 (a connection per
// poll) and HTTP/2 (streams of one connection).
func TestPollCost(t *testing.T) {
	skipShort(t)
	tests := []struct {
		name  string
		count int
		h2    bool
	}{
		{name: "http1", count: 1000},
		{name: "h2", count: 200}, // within one connection's concurrent streams
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				n      *Node
				base   string
				client *http.Client
			)
			if tc.h2 {
				n = startTLSNode(t)
				base = fmt.Sprintf("https://127.0.0.1:%d", n.HTTPSPort)
				tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
				t.Cleanup(tr.CloseIdleConnections)
				client = &http.Client{Transport: tr}
			} else {
				n = startCaddy(t, caddyfile(nil, nil))
				base = n.HTTP
				tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: tc.count}
				t.Cleanup(tr.CloseIdleConnections)
				client = &http.Client{Transport: tr}
			}
			key := testKey(t, "k")
			PollOK(t, base, pollQuery("0s", "", pollPos{key, -1, ""})) // warm up pools
			base0, rss0 := n.Stats(t), n.rssKiB(t)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for i := range tc.count {
				wg.Go(func() {
					Poll(ctx, client, base, pollQuery("60s", "", pollPos{fmt.Sprintf("%s-%d", key, i%50), -1, ""}))
				})
			}
			eventually(t, 60*time.Second, func() (bool, string) {
				s := n.Stats(t)
				return s.Connections.Poll == int64(tc.count), fmt.Sprintf("connections.poll %d, want %d", s.Connections.Poll, tc.count)
			})
			held, rss := n.Stats(t), n.rssKiB(t)
			t.Logf("%d held %s polls: goroutines %d -> %d (%.2f per poll), RSS %d -> %d KiB (%.1f KiB per poll)",
				tc.count, tc.name, base0.Goroutines, held.Goroutines,
				float64(held.Goroutines-base0.Goroutines)/float64(tc.count),
				rss0, rss, float64(rss-rss0)/float64(tc.count))
			cancel()
			wg.Wait()
			eventually(t, 60*time.Second, func() (bool, string) {
				s := n.Stats(t)
				return s.Connections.Poll == 0, fmt.Sprintf("connections.poll %d after cancelling", s.Connections.Poll)
			})
		})
	}
}

// rssKiB reads the caddy process's resident set size.
func (n *Node) rssKiB(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("reading caddy's status: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return v
		}
	}
	t.Fatal("no VmRSS in caddy's status")
	return 0
}
