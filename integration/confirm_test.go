package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// Confirmed is one entry of a publish answer with confirm.
type Confirmed struct {
	Published
	Acked   *int `json:"acked"`
	Written *int `json:"written"`
}

// confirmResult is a publish with confirm: its entries and how long the
// admin request took.
type confirmResult struct {
	status  int
	body    []byte
	entries []Confirmed
	took    time.Duration
	err     error
}

// publishConfirm posts body in the background (a publish with confirm
// holds its request) and returns where its result arrives.
func (n *Node) publishConfirm(body string) <-chan confirmResult {
	ch := make(chan confirmResult, 1)
	go func() {
		start := time.Now()
		var r confirmResult
		resp, err := adminClient.Post(n.Admin+"/push_gateway/publish", "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			r.err = err
			ch <- r
			return
		}
		defer resp.Body.Close()
		r.status = resp.StatusCode
		r.body, r.err = io.ReadAll(resp.Body)
		r.took = time.Since(start)
		if r.err == nil && r.status == http.StatusOK {
			var ans struct {
				Published []Confirmed `json:"published"`
			}
			r.err = json.Unmarshal(r.body, &ans)
			r.entries = ans.Published
		}
		ch <- r
	}()
	return ch
}

func recvConfirm(t testing.TB, ch <-chan confirmResult) confirmResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("publish with confirm: %d %s %v", r.status, r.body, r.err)
		}
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("publish with confirm did not answer")
	}
	return confirmResult{}
}

func expectCounts(t testing.TB, e Confirmed, acked, written int) {
	t.Helper()
	if e.Acked == nil || e.Written == nil || *e.Acked != acked || *e.Written != written || e.LocalReceivers != written {
		a, w := -1, -1
		if e.Acked != nil && e.Written != nil {
			a, w = *e.Acked, *e.Written
		}
		t.Fatalf("entry %+v: acked %d written %d, want %d and %d", e.Published, a, w, acked, written)
	}
}

func ack(t testing.TB, c *Client, key string, seq uint64) {
	t.Helper()
	c.Send(t, map[string]any{"type": "ack", "sdk_key": key, "seq": seq})
}

// TestPublishConfirm: a publish with confirm answers once the local
// followers acknowledged, or when its window is over, with the counts.
func TestPublishConfirm(t *testing.T) {
	n := startCaddy(t, caddyfile(nil, nil))

	followers := func(t *testing.T, key string, count int) []*Client {
		cs := make([]*Client, count)
		for i := range cs {
			cs[i] = Dial(t, n.WSURL(route))
			cs[i].Register(t, key)
		}
		return cs
	}

	t.Run("two of three ack", func(t *testing.T) {
		key := testKey(t, "k")
		cs := followers(t, key, 3)
		ch := n.publishConfirm(`{"sdk_key":` + quote(key) + `,"data":{"kill":true},"confirm":"1s"}`)
		for i, c := range cs {
			m := c.ExpectMessage(t, key, 1)
			if i < 2 {
				ack(t, c, key, m.Seq)
			}
		}
		r := recvConfirm(t, ch)
		if len(r.entries) != 1 {
			t.Fatalf("answer %s", r.body)
		}
		expectCounts(t, r.entries[0], 2, 3)
		if r.took < 900*time.Millisecond || r.took > 10*time.Second {
			t.Fatalf("answered after %v, want about the 1s window", r.took)
		}
		t.Logf("answer after %v", r.took)
	})

	t.Run("all ack", func(t *testing.T) {
		key, other := testKey(t, "k"), testKey(t, "other")
		cs := followers(t, key, 3)
		o := followers(t, other, 1)[0]
		ch := n.publishConfirm(`{"sdk_keys":[` + quote(key) + `,` + quote(other) + `],"confirm":"20s"}`)
		for _, c := range cs {
			ack(t, c, key, c.ExpectMessage(t, key, 1).Seq)
		}
		ack(t, o, other, o.ExpectMessage(t, other, 1).Seq)
		r := recvConfirm(t, ch)
		if len(r.entries) != 2 {
			t.Fatalf("answer %s", r.body)
		}
		expectCounts(t, r.entries[0], 3, 3)
		expectCounts(t, r.entries[1], 1, 1)
		if r.took > 10*time.Second {
			t.Fatalf("answered after %v, want soon after the acks", r.took)
		}
		t.Logf("answer after %v", r.took)
	})

	t.Run("an ack past the seq counts", func(t *testing.T) {
		key := testKey(t, "k")
		c := followers(t, key, 1)[0]
		n.PublishOK(t, key, "", `1`)
		c.ExpectMessage(t, key, 1)
		ch := n.publishConfirm(`{"sdk_key":` + quote(key) + `,"data":2,"confirm":"20s"}`)
		c.ExpectMessage(t, key, 2)
		ack(t, c, key, 7) // a client acks the newest it applied
		expectCounts(t, recvConfirm(t, ch).entries[0], 1, 1)
	})

	t.Run("no follower", func(t *testing.T) {
		r := recvConfirm(t, n.publishConfirm(`{"sdk_key":`+quote(testKey(t, "k"))+`,"confirm":"20s"}`))
		expectCounts(t, r.entries[0], 0, 0)
		if r.took > 10*time.Second {
			t.Fatalf("answered after %v", r.took)
		}
	})

	t.Run("without confirm the answer is unchanged", func(t *testing.T) {
		key := testKey(t, "k")
		status, ans := n.Publish(t, `{"sdk_key":`+quote(key)+`}`)
		entries, _ := ans["published"].([]any)
		if status != 200 || len(entries) != 1 {
			t.Fatalf("%d %v", status, ans)
		}
		if e := entries[0].(map[string]any); len(e) != 4 || e["acked"] != nil || e["written"] != nil {
			t.Fatalf("entry %v", e)
		}
	})

	t.Run("bad confirm", func(t *testing.T) {
		for _, c := range []string{`"soon"`, `"31s"`, `"0s"`, `2`} {
			status, body := n.AdminDo(t, http.MethodPost, "/push_gateway/publish", "application/json",
				bytes.NewReader([]byte(`{"sdk_key":"k","confirm":`+c+`}`)))
			expectAPIError(t, status, body, http.StatusBadRequest)
		}
	})

	t.Run("poll client acks by coming back", func(t *testing.T) {
		key := testKey(t, "k")
		p := n.PublishOK(t, key, "", `1`)
		cid := fmt.Sprintf("client-%d", time.Now().UnixNano())
		held := HeldPoll(t, n, pollClient, n.HTTP, pollQuery("20s", cid, pollPos{key, 1, p.Epoch}), 0)
		ch := n.publishConfirm(`{"sdk_key":` + quote(key) + `,"data":2,"confirm":"20s"}`)
		got := recvPoll(t, held).Answer.Keys[key]
		expectPollMessages(t, got, 2)
		// The next poll, past seq 2, is the acknowledgement.
		PollOK(t, n.HTTP, pollQuery("0s", cid, pollPos{key, int64(got.Seq), got.Epoch}))
		r := recvConfirm(t, ch)
		expectCounts(t, r.entries[0], 1, 1)
		if r.took > 10*time.Second {
			t.Fatalf("answered after %v", r.took)
		}
	})
}
