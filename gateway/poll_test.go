package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

// pollTestEngine serves an Engine on an httptest server and returns its
// http:// URL.
func pollTestEngine(t testing.TB, set RouteSettings) (*Engine, string) {
	t.Helper()
	e, wsURL := testEngine(t, set)
	return e, "http" + strings.TrimPrefix(wsURL, "ws")
}

type pollMsg struct {
	Seq   uint64          `json:"seq"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	TS    int64           `json:"ts"`
}

type pollKeyAnswer struct {
	Epoch    string    `json:"epoch"`
	Seq      uint64    `json:"seq"`
	Messages []pollMsg `json:"messages"`
	Resync   bool      `json:"resync"`
}

type pollAnswerJSON struct {
	Keys map[string]pollKeyAnswer `json:"keys"`
}

// doRequest sends one request with header and returns the answer with its
// body read whole (and closed).
func doRequest(t testing.TB, ctx context.Context, method, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// doPoll runs one poll request and returns its status, its raw body and,
// for a 200, the decoded answer.
func doPoll(t testing.TB, ctx context.Context, base, query string) (int, []byte, pollAnswerJSON) {
	t.Helper()
	resp, body := doRequest(t, ctx, http.MethodGet, base+"?"+query, nil)
	var ans pollAnswerJSON
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatalf("answer %s: %v", body, err)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control %q, want no-store", cc)
		}
	}
	return resp.StatusCode, body, ans
}

func pollOK(t testing.TB, base, query string) pollAnswerJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, body, ans := doPoll(t, ctx, base, query)
	if status != http.StatusOK {
		t.Fatalf("poll %s: status %d %s", query, status, body)
	}
	return ans
}

// pollEventually waits until cond holds, failing after timeout.
func pollEventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func followers(e *Engine, key string) int {
	info, _, _ := e.hub.KeyInfo(key)
	return info.Followers
}

func publish(t testing.TB, e *Engine, key, data string) hub.Published {
	t.Helper()
	p, err := e.hub.Publish(key, "", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// heldPoll starts a poll in the background and waits until it is held.
func heldPoll(t testing.TB, e *Engine, base, query string) <-chan pollAnswerJSON {
	t.Helper()
	before := e.conns.Poll.Load()
	ch := make(chan pollAnswerJSON, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"?"+query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			close(ch)
			return
		}
		defer resp.Body.Close()
		var ans pollAnswerJSON
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ans) != nil {
			close(ch)
			return
		}
		ch <- ans
	}()
	pollEventually(t, 5*time.Second, "the poll to be held", func() bool { return e.conns.Poll.Load() > before })
	return ch
}

func recvAnswer(t testing.TB, ch <-chan pollAnswerJSON, timeout time.Duration) pollAnswerJSON {
	t.Helper()
	select {
	case ans, ok := <-ch:
		if !ok {
			t.Fatal("the held poll failed")
		}
		return ans
	case <-time.After(timeout):
		t.Fatal("the held poll was not answered")
	}
	return pollAnswerJSON{}
}

func TestParsePoll(t *testing.T) {
	tests := []struct {
		query   string
		wantErr string // "" for success
		want    pollRequest
	}{
		{query: "sdk_key=a", want: pollRequest{keys: []pollKey{{key: "a"}}, wait: DefaultPollWait}},
		{query: "sdk_key=a&since=4&epoch=E&wait=2s&cid=c1&_=123",
			want: pollRequest{keys: []pollKey{{"a", 4, "E"}}, wait: 2 * time.Second, cid: "c1"}},
		{query: "sdk_key=a&since.a=4&epoch.a=E", want: pollRequest{keys: []pollKey{{"a", 4, "E"}}, wait: DefaultPollWait}},
		{query: "sdk_key=a.b&sdk_key=c&since.a.b=1&epoch.a.b=X&since.c=2&wait=0s",
			want: pollRequest{keys: []pollKey{{"a.b", 1, "X"}, {"c", 2, ""}}}},
		{query: "sdk_key=a&wait=1h", want: pollRequest{keys: []pollKey{{key: "a"}}, wait: time.Minute}},

		{query: "", wantErr: "sdk_key is required"},
		{query: "sdk_key=", wantErr: "invalid sdk key"},
		{query: "sdk_key=a&sdk_key=a", wantErr: "given twice"},
		{query: "sdk_key=a&since=x", wantErr: "non-negative integer"},
		{query: "sdk_key=a&since=-1", wantErr: "non-negative integer"},
		{query: "sdk_key=a&since=1&since=2", wantErr: "given 2 times"},
		{query: "sdk_key=a&since.b=1", wantErr: `sdk key "b" is not requested`},
		{query: "sdk_key=a&epoch.b=E", wantErr: `sdk key "b" is not requested`},
		{query: "sdk_key=a&sdk_key=b&since=1", wantErr: "ambiguous"},
		{query: "sdk_key=a&since=1&since.a=1", wantErr: "given twice"},
		{query: "sdk_key=a&wait=soon", wantErr: "want a duration"},
		{query: "sdk_key=a&wait=-1s", wantErr: "want a duration"},
		{query: "sdk_key=a&cid=", wantErr: "cid"},
		{query: "sdk_key=a&sdk_key=b&sdk_key=c", wantErr: "at most 2"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parsePoll(q, 2, time.Minute)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, errBadPoll) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want errBadPoll with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPollBadRequests(t *testing.T) {
	_, base := pollTestEngine(t, RouteSettings{})
	for _, q := range []string{"", "sdk_key=a&since=x", "sdk_key=a&since.b=1", "sdk_key=a&wait=x"} {
		status, body, _ := doPoll(t, context.Background(), base, q)
		var e struct{ Error string }
		if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Fatalf("%q: %d %s, want 400 with a JSON error", q, status, body)
		}
	}
	resp, err := http.Post(base+"?sdk_key=a", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d, want 405", resp.StatusCode)
	}
}

func TestPollImmediate(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{})
	data := `{"a": 1 ,"b":[true, null]}`
	p1 := publish(t, e, "k", data)
	publish(t, e, "k", `"two"`)

	ans := pollOK(t, base, "sdk_key=k&wait=10s")
	got := ans.Keys["k"]
	if got.Epoch != p1.Epoch || got.Seq != 2 || got.Resync || len(got.Messages) != 2 {
		t.Fatalf("answer %+v", got)
	}
	if m := got.Messages[0]; m.Seq != 1 || m.Event != "update" || string(m.Data) != data || m.TS == 0 {
		t.Fatalf("message %+v, data want %s", m, data)
	}
	ans = pollOK(t, base, "sdk_key=k&wait=10s&since=1&epoch="+url.QueryEscape(p1.Epoch))
	if got := ans.Keys["k"]; len(got.Messages) != 1 || got.Messages[0].Seq != 2 || string(got.Messages[0].Data) != `"two"` {
		t.Fatalf("since 1: %+v", got)
	}

	// HEAD never holds.
	req, _ := http.NewRequest(http.MethodHead, base+"?sdk_key=k&since=2&epoch="+url.QueryEscape(p1.Epoch), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}
}

func TestPollHeldThenPublished(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{})
	p := publish(t, e, "k", `1`)
	ch := heldPoll(t, e, base, "sdk_key=k&wait=10s&since=1&epoch="+url.QueryEscape(p.Epoch))
	if n := followers(e, "k"); n != 1 {
		t.Fatalf("followers %d while held, want 1", n)
	}
	start := time.Now()
	publish(t, e, "k", `{"x":2}`)
	ans := recvAnswer(t, ch, 5*time.Second)
	if got := ans.Keys["k"]; got.Seq != 2 || len(got.Messages) != 1 || string(got.Messages[0].Data) != `{"x":2}` {
		t.Fatalf("answer %+v", got)
	}
	t.Logf("publish to answer: %v", time.Since(start))
	pollEventually(t, 5*time.Second, "the poll to be released", func() bool {
		return e.conns.Poll.Load() == 0 && followers(e, "k") == 0
	})
}

func TestPollWaitExpires(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{PollMaxWait: 150 * time.Millisecond})
	p := publish(t, e, "k", `1`)
	for _, wait := range []string{"100ms", "1h"} { // 1h: capped by PollMaxWait
		start := time.Now()
		raw := func() []byte {
			_, body, _ := doPoll(t, context.Background(), base, "sdk_key=k&since=1&epoch="+url.QueryEscape(p.Epoch)+"&wait="+wait)
			return body
		}()
		took := time.Since(start)
		want := `{"keys":{"k":{"epoch":` + quoteJSON(p.Epoch) + `,"seq":1,"messages":[],"resync":false}}}`
		if string(raw) != want {
			t.Fatalf("wait %s: %s, want %s", wait, raw, want)
		}
		if took < 90*time.Millisecond || took > 5*time.Second {
			t.Fatalf("wait %s answered after %v", wait, took)
		}
	}
	if n := e.conns.Poll.Load(); n != 0 {
		t.Fatalf("conns.Poll %d after expiry", n)
	}
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestPollSeveralKeys(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{})
	pa := publish(t, e, "a", `"a1"`)
	pb := publish(t, e, "b", `"b1"`)
	q := fmt.Sprintf("sdk_key=a&sdk_key=b&since.a=1&epoch.a=%s&since.b=1&epoch.b=%s&wait=10s",
		url.QueryEscape(pa.Epoch), url.QueryEscape(pb.Epoch))

	ch := heldPoll(t, e, base, q)
	publish(t, e, "b", `"b2"`)
	ans := recvAnswer(t, ch, 5*time.Second)
	if a := ans.Keys["a"]; a.Seq != 1 || len(a.Messages) != 0 || a.Resync {
		t.Fatalf("a: %+v", a)
	}
	if b := ans.Keys["b"]; b.Seq != 2 || len(b.Messages) != 1 || string(b.Messages[0].Data) != `"b2"` {
		t.Fatalf("b: %+v", b)
	}
	// Immediate for one key, the other listed with its position.
	ans = pollOK(t, base, strings.Replace(q, "since.a=1", "since.a=0", 1))
	if len(ans.Keys) != 2 || len(ans.Keys["a"].Messages) != 1 || len(ans.Keys["b"].Messages) != 1 {
		t.Fatalf("answer %+v", ans)
	}
}

func TestPollResync(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{})
	p := publish(t, e, "k", `1`)
	for _, q := range []string{
		"sdk_key=k&since=1&epoch=other",                       // another epoch
		"sdk_key=k&since=9&epoch=" + url.QueryEscape(p.Epoch), // beyond the newest
		"sdk_key=k&since=0&epoch=other",                       // nothing seen, but of another epoch
	} {
		got := pollOK(t, base, q+"&wait=10s").Keys["k"]
		if !got.Resync || got.Epoch != p.Epoch || got.Seq != 1 || len(got.Messages) != 0 {
			t.Fatalf("%s: %+v, want a resync to %s/1", q, got, p.Epoch)
		}
	}
	// A dropped key wakes its held polls with a resync to the new epoch.
	ch := heldPoll(t, e, base, "sdk_key=k&wait=10s&since=1&epoch="+url.QueryEscape(p.Epoch))
	e.hub.DropKey("k")
	got := recvAnswer(t, ch, 5*time.Second).Keys["k"]
	if !got.Resync || got.Epoch == p.Epoch {
		t.Fatalf("after drop: %+v", got)
	}
}

func TestPollClientGoneReleases(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{})
	const n = 5
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s?sdk_key=k%d&wait=30s", base, i%2), nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	pollEventually(t, 5*time.Second, "every poll to be held", func() bool { return e.conns.Poll.Load() == n })
	if st := e.Stats(); st.Connections.Poll != n || st.Connections.Total < n {
		t.Fatalf("stats %+v", st.Connections)
	}
	cancel()
	wg.Wait()
	pollEventually(t, 5*time.Second, "the polls to be released", func() bool {
		return e.conns.Poll.Load() == 0 && followers(e, "k0") == 0 && followers(e, "k1") == 0
	})
}

func TestPollShutdownAnswers503(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{})
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(base + "?sdk_key=k&wait=30s")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	pollEventually(t, 5*time.Second, "the poll to be held", func() bool { return e.conns.Poll.Load() == 1 })
	e.Shutdown()
	select {
	case status := <-done:
		if status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not release the held poll")
	}
}

// TestPollPublishBeforeHold publishes right between the read that found
// nothing and the hold: the message must still wake the poll.
func TestPollPublishBeforeHold(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{})
	p := publish(t, e, "k", `1`)
	var once sync.Once
	testHookPollHold = func() { once.Do(func() { publish(t, e, "k", `2`) }) }
	t.Cleanup(func() { testHookPollHold = nil })

	start := time.Now()
	got := pollOK(t, base, "sdk_key=k&wait=20s&since=1&epoch="+url.QueryEscape(p.Epoch)).Keys["k"]
	if len(got.Messages) != 1 || got.Messages[0].Seq != 2 {
		t.Fatalf("answer %+v", got)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("answered after %v: the wake-up was lost", took)
	}
}

// TestPollRace follows a key with chained polls while it is published to:
// every seq arrives exactly once, in order, and no poll sleeps through one.
func TestPollRace(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{})
	const total = 200
	epoch := publish(t, e, "k", `0`).Epoch
	go func() {
		for i := 1; i < total; i++ {
			if _, err := e.hub.Publish("k", "", []byte(fmt.Sprint(i))); err != nil {
				return
			}
			if i%16 == 0 {
				time.Sleep(time.Millisecond) // let polls be held in between
			}
		}
	}()
	var since uint64
	deadline := time.Now().Add(20 * time.Second)
	for since < total {
		if time.Now().After(deadline) {
			t.Fatalf("stuck at seq %d", since)
		}
		got := pollOK(t, base, fmt.Sprintf("sdk_key=k&since=%d&epoch=%s&wait=5s", since, url.QueryEscape(epoch))).Keys["k"]
		if got.Resync {
			t.Fatalf("resync at %d", since)
		}
		for _, m := range got.Messages {
			if m.Seq != since+1 || string(m.Data) != fmt.Sprint(since) {
				t.Fatalf("got seq %d data %s after %d", m.Seq, m.Data, since)
			}
			since = m.Seq
		}
	}
}

// TestPollAcksConfirm: a held poll with a cid is written the message; the
// client coming back past its seq acknowledges it.
func TestPollAcksConfirm(t *testing.T) {
	e, base := pollTestEngine(t, RouteSettings{})
	p := publish(t, e, "k", `1`)
	ch := heldPoll(t, e, base, "cid=c1&sdk_key=k&wait=10s&since=1&epoch="+url.QueryEscape(p.Epoch))
	p2, conf, err := e.hub.PublishConfirm("k", "", []byte(`2`))
	if err != nil {
		t.Fatal(err)
	}
	if p2.LocalReceivers != 1 {
		t.Fatalf("written to %d, want 1", p2.LocalReceivers)
	}
	recvAnswer(t, ch, 5*time.Second)
	type result struct{ acked, written int }
	res := make(chan result, 1)
	go func() {
		acked, written := conf.Wait(10 * time.Second)
		res <- result{acked, written}
	}()
	// Coming back in another epoch, short of the seq, or as another
	// client, is no ack.
	pollOK(t, base, "cid=c1&sdk_key=k&wait=0s&since=2&epoch=other")
	pollOK(t, base, "cid=c1&sdk_key=k&wait=0s&since=1&epoch="+url.QueryEscape(p.Epoch))
	pollOK(t, base, "cid=c2&sdk_key=k&wait=0s&since=2&epoch="+url.QueryEscape(p.Epoch))
	pollOK(t, base, "sdk_key=k&wait=0s&since=2&epoch="+url.QueryEscape(p.Epoch))
	select {
	case r := <-res:
		t.Fatalf("confirmed without the client's ack: %+v", r)
	default:
	}
	pollOK(t, base, "cid=c1&sdk_key=k&wait=0s&since=2&epoch="+url.QueryEscape(p.Epoch))
	select {
	case r := <-res:
		if r.acked != 1 || r.written != 1 {
			t.Fatalf("acked %d written %d, want 1 and 1", r.acked, r.written)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ack did not complete the confirmation")
	}
}

// BenchmarkPollAnswer measures building an answer of 10 messages.
func BenchmarkPollAnswer(b *testing.B) {
	e, err := New(Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Shutdown()
	for i := range 10 {
		e.hub.Publish("k", "", []byte(fmt.Sprintf(`{"flag":%d,"on":true}`, i)))
	}
	keys := []pollKey{{key: "k"}}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.pollAnswer(buf[:0], keys); err != nil {
			b.Fatal(err)
		}
	}
}
