package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAdminPublish(t *testing.T) {
	n := startCaddy(t, caddyfile(nil, nil))

	t.Run("single key", func(t *testing.T) {
		key := testKey(t, "k")
		c1 := Dial(t, n.WSURL(route))
		c1.Register(t, key)
		c2 := Dial(t, n.WSURL(route))
		c2.Register(t, key)
		status, ans := n.Publish(t, map[string]any{"sdk_key": key, "event": "update", "data": map[string]any{"x": 1}})
		if status != http.StatusOK {
			t.Fatalf("status %d %v", status, ans)
		}
		ps := decodePublished(t, ans)
		if len(ps) != 1 || ps[0].SDKKey != key || ps[0].Seq != 1 || ps[0].Epoch == "" || ps[0].LocalReceivers != 2 {
			t.Fatalf("published %+v, want one entry for %s, seq 1, an epoch, 2 local receivers", ps, key)
		}
		entry := ans["published"].([]any)[0].(map[string]any)
		expectFields(t, entry, "sdk_key", "epoch", "seq", "local_receivers")
		c1.ExpectMessage(t, key, 1)
		c2.ExpectMessage(t, key, 1)
	})

	t.Run("event defaults to update", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		if status, ans := n.Publish(t, `{"sdk_key":"`+key+`","data":""}`); status != http.StatusOK {
			t.Fatalf("status %d %v", status, ans)
		}
		if m := c.ExpectMessage(t, key, 1); m.Event != "update" || string(m.Data) != `""` {
			t.Fatalf("message %s, want event update and data \"\"", m.Raw)
		}
	})

	t.Run("sdk_keys", func(t *testing.T) {
		a, b := testKey(t, "a"), testKey(t, "b")
		n.PublishOK(t, b, "", `0`) // b is one ahead: seqs are per key
		c := Dial(t, n.WSURL(route))
		c.Register(t, a)
		c.Register(t, b)
		status, ans := n.Publish(t, map[string]any{"sdk_keys": []string{a, b}, "data": "x"})
		if status != http.StatusOK {
			t.Fatalf("status %d %v", status, ans)
		}
		ps := decodePublished(t, ans)
		if len(ps) != 2 || ps[0].SDKKey != a || ps[0].Seq != 1 || ps[1].SDKKey != b || ps[1].Seq != 2 ||
			ps[0].LocalReceivers != 1 || ps[1].LocalReceivers != 1 {
			t.Fatalf("published %+v, want %s seq 1 and %s seq 2, one receiver each", ps, a, b)
		}
		got := map[string]uint64{}
		for range 2 {
			m := c.ReadMsg(t, msgTimeout)
			if m.Type != "message" || string(m.Data) != `"x"` {
				t.Fatalf("want the published message, got %s", m.Raw)
			}
			got[m.SDKKey] = m.Seq
		}
		if got[a] != 1 || got[b] != 2 {
			t.Fatalf("delivered %v", got)
		}
	})

	t.Run("array", func(t *testing.T) {
		a, b := testKey(t, "a"), testKey(t, "b")
		c := Dial(t, n.WSURL(route))
		c.Register(t, a)
		c.Register(t, b)
		body := `[{"sdk_key":"` + a + `","data":1},{"sdk_key":"` + a + `","event":"e2","data":2},{"sdk_keys":["` + b + `"],"data":3}]`
		status, ans := n.Publish(t, body)
		if status != http.StatusOK {
			t.Fatalf("status %d %v", status, ans)
		}
		ps := decodePublished(t, ans)
		if len(ps) != 3 || ps[0].SDKKey != a || ps[0].Seq != 1 || ps[1].SDKKey != a || ps[1].Seq != 2 || ps[2].SDKKey != b || ps[2].Seq != 1 {
			t.Fatalf("published %+v", ps)
		}
		if m := c.ExpectMessage(t, a, 1); string(m.Data) != "1" {
			t.Fatalf("got %s", m.Raw)
		}
		if m := c.ExpectMessage(t, a, 2); string(m.Data) != "2" || m.Event != "e2" {
			t.Fatalf("got %s", m.Raw)
		}
		if m := c.ExpectMessage(t, b, 1); string(m.Data) != "3" {
			t.Fatalf("got %s", m.Raw)
		}
	})

	badBodies := []struct {
		name, body string
	}{
		{name: "not JSON", body: `sdk_key=k&data=1`},
		{name: "truncated JSON", body: `{"sdk_key":"k","data":`},
		{name: "bad data JSON", body: `{"sdk_key":"k","data":{"a":}}`},
		{name: "trailing garbage", body: `{"sdk_key":"k","data":1} x`},
		{name: "empty body", body: ``},
		{name: "missing sdk_key", body: `{"data":1}`},
		{name: "empty sdk_key", body: `{"sdk_key":"","data":1}`},
		{name: "empty sdk_keys", body: `{"sdk_keys":[],"data":1}`},
		{name: "unknown field", body: `{"sdk_key":"k","data":1,"colour":"blue"}`},
		{name: "empty array", body: `[]`},
		{name: "sdk_key not a string", body: `{"sdk_key":42,"data":1}`},
		{name: "sdk_keys not an array", body: `{"sdk_keys":"k","data":1}`},
		{name: "sdk_keys with a number", body: `{"sdk_keys":["k",1],"data":1}`},
		{name: "event not a string", body: `{"sdk_key":"k","event":5,"data":1}`},
		{name: "sdk_key with a control character", body: `{"sdk_key":"a\nb","data":1}`},
		{name: "sdk_key too long", body: `{"sdk_key":"` + strings.Repeat("k", 300) + `","data":1}`},
		{name: "array with one bad entry", body: `[{"sdk_key":"k","data":1},{"data":2}]`},
		{name: "a number", body: `7`},
	}
	for _, tc := range badBodies {
		t.Run("bad body/"+tc.name, func(t *testing.T) {
			before := n.Stats(t).Published
			status, b := n.AdminDo(t, http.MethodPost, "/push_gateway/publish", "application/json", strings.NewReader(tc.body))
			expectAPIError(t, status, b, http.StatusBadRequest)
			if after := n.Stats(t).Published; after != before {
				t.Fatalf("a refused publish changed published from %d to %d", before, after)
			}
		})
	}

	t.Run("body over 1 MiB without Content-Length", func(t *testing.T) {
		// An io.Reader of unknown length makes the client send chunked: the
		// limit must hold on the bytes read.
		body := `{"sdk_key":"k","data":"` + strings.Repeat("x", 1<<20) + `"}`
		req, err := http.NewRequest(http.MethodPost, n.Admin+"/push_gateway/publish", io.MultiReader(strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if req.ContentLength != 0 {
			t.Fatalf("request would carry Content-Length %d", req.ContentLength)
		}
		resp, err := adminClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		expectAPIError(t, resp.StatusCode, b, http.StatusRequestEntityTooLarge)
	})

	t.Run("body over 1 MiB with Content-Length", func(t *testing.T) {
		body := `{"sdk_key":"k","data":"` + strings.Repeat("x", 1<<20) + `"}`
		status, b := n.AdminDo(t, http.MethodPost, "/push_gateway/publish", "application/json", bytes.NewReader([]byte(body)))
		expectAPIError(t, status, b, http.StatusRequestEntityTooLarge)
	})

	t.Run("body just under 1 MiB is accepted", func(t *testing.T) {
		key := testKey(t, "k")
		head := `{"sdk_key":"` + key + `","data":"`
		body := head + strings.Repeat("x", 1<<20-len(head)-2-64) + `"}`
		status, b := n.AdminDo(t, http.MethodPost, "/push_gateway/publish", "application/json", strings.NewReader(body))
		if status != http.StatusOK {
			t.Fatalf("publish of %d bytes: %d %s", len(body), status, b)
		}
	})

	t.Run("GET on publish is 405", func(t *testing.T) {
		status, b := n.AdminDo(t, http.MethodGet, "/push_gateway/publish", "", nil)
		expectAPIError(t, status, b, http.StatusMethodNotAllowed)
	})

	t.Run("process alive after bad bodies", func(t *testing.T) {
		if n.Exited() {
			t.Fatal("caddy exited")
		}
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		n.PublishOK(t, key, "", `1`)
		c.ExpectMessage(t, key, 1)
	})
}

func TestAdminInspect(t *testing.T) {
	n := startCaddy(t, caddyfile(nil, nil))

	t.Run("stats fields", func(t *testing.T) {
		status, b := n.AdminDo(t, http.MethodGet, "/push_gateway/stats", "", nil)
		if status != http.StatusOK {
			t.Fatalf("status %d %s", status, b)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"connections", "keys", "published", "delivered", "dropped", "slow_consumer_closes", "goroutines"} {
			if _, ok := m[f].(map[string]any); !ok {
				if _, ok := m[f].(float64); !ok {
					t.Errorf("stats lack %q: %s", f, b)
				}
			}
		}
		conns, _ := m["connections"].(map[string]any)
		for _, f := range []string{"total", "websocket", "sse", "poll", "socketio"} {
			if _, ok := conns[f].(float64); !ok {
				t.Errorf("stats.connections lack %q: %s", f, b)
			}
		}
		if g, _ := m["goroutines"].(float64); g <= 0 {
			t.Errorf("goroutines %v", m["goroutines"])
		}
	})

	t.Run("stats count connections and messages", func(t *testing.T) {
		key := testKey(t, "k")
		before := n.Stats(t)
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		eventually(t, msgTimeout, func() (bool, string) {
			s := n.Stats(t)
			return s.Connections.WebSocket == before.Connections.WebSocket+1 && s.Connections.Total == before.Connections.Total+1,
				"connections did not grow by one"
		})
		n.PublishOK(t, key, "", `1`)
		c.ExpectMessage(t, key, 1)
		eventually(t, msgTimeout, func() (bool, string) {
			s := n.Stats(t)
			return s.Published >= before.Published+1 && s.Delivered >= before.Delivered+1, "published/delivered not counted"
		})
		c.Close()
		eventually(t, msgTimeout, func() (bool, string) {
			s := n.Stats(t)
			return s.Connections.WebSocket == before.Connections.WebSocket, "closed connection still counted"
		})
	})

	t.Run("key info", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		var epoch string
		for range 3 {
			epoch = n.PublishOK(t, key, "", `1`).Epoch
		}
		status, ki, b := n.Key(t, key)
		if status != http.StatusOK {
			t.Fatalf("status %d %s", status, b)
		}
		want := KeyInfo{SDKKey: key, Epoch: epoch, Seq: 3, History: 3, Followers: 1}
		if ki != want {
			t.Fatalf("key info %+v, want %+v", ki, want)
		}
	})

	t.Run("key with followers only", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		status, ki, b := n.Key(t, key)
		if status != http.StatusOK || ki.Followers != 1 || ki.Seq != 0 {
			t.Fatalf("key info %d %s, want 200 with 1 follower, seq 0", status, b)
		}
	})

	t.Run("unknown key is 404", func(t *testing.T) {
		status, _, b := n.Key(t, testKey(t, "nobody"))
		expectAPIError(t, status, b, http.StatusNotFound)
	})

	t.Run("delete key", func(t *testing.T) {
		key, other := testKey(t, "k"), testKey(t, "other")
		var oldEpoch string
		for range 2 {
			oldEpoch = n.PublishOK(t, key, "", `1`).Epoch
		}
		f1 := Dial(t, n.WSURL(route))
		f1.Register(t, key)
		f2 := Dial(t, n.WSURL(route))
		f2.Register(t, key)
		f2.Register(t, other)
		bystander := Dial(t, n.WSURL(route))
		bystander.Register(t, other)

		status, b := n.AdminDo(t, http.MethodDelete, "/push_gateway/keys/"+key, "", nil)
		if status != http.StatusOK {
			t.Fatalf("DELETE: %d %s", status, b)
		}
		f1.ExpectClose(t, 4401, msgTimeout)
		f2.ExpectClose(t, 4401, msgTimeout)

		// Others are untouched.
		n.PublishOK(t, other, "", `"ok"`)
		bystander.ExpectMessage(t, other, 1)

		// The history is gone: the key is unknown until used again, and its
		// epoch is new.
		if status, _, b := n.Key(t, key); status != http.StatusNotFound {
			t.Fatalf("key after DELETE: %d %s, want 404", status, b)
		}
		p := n.PublishOK(t, key, "", `"after"`)
		if p.Epoch == oldEpoch {
			t.Fatalf("epoch %s unchanged after DELETE", p.Epoch)
		}
		// A client resuming from the old epoch is told to resync.
		c := Dial(t, n.WSURL(route))
		c.Send(t, map[string]any{"type": "register", "sdk_key": key, "since": 1, "epoch": oldEpoch})
		if m := c.ReadMsg(t, msgTimeout); m.Type != "registered" || m.Epoch != p.Epoch || m.Seq != p.Seq {
			t.Fatalf("want registered epoch %s seq %d, got %s", p.Epoch, p.Seq, m.Raw)
		}
		if m := c.ReadMsg(t, msgTimeout); m.Type != "resync" || m.Epoch != p.Epoch {
			t.Fatalf("want resync in epoch %s, got %s", p.Epoch, m.Raw)
		}
	})

	t.Run("delete unknown key is 404", func(t *testing.T) {
		status, b := n.AdminDo(t, http.MethodDelete, "/push_gateway/keys/"+testKey(t, "nobody"), "", nil)
		expectAPIError(t, status, b, http.StatusNotFound)
	})

	t.Run("unknown route is 404", func(t *testing.T) {
		status, b := n.AdminDo(t, http.MethodGet, "/push_gateway/nothing_here", "", nil)
		expectAPIError(t, status, b, http.StatusNotFound)
	})

	t.Run("POST on stats is 405", func(t *testing.T) {
		status, b := n.AdminDo(t, http.MethodPost, "/push_gateway/stats", "application/json", strings.NewReader("{}"))
		expectAPIError(t, status, b, http.StatusMethodNotAllowed)
	})
}

func decodePublished(t testing.TB, ans map[string]any) []Published {
	t.Helper()
	b, _ := json.Marshal(ans)
	var out struct {
		Published []Published `json:"published"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("publish answer %s: %v", b, err)
	}
	return out.Published
}

// expectAPIError checks an admin error answer: the status and a JSON body
// {"error":"..."} with a message.
func expectAPIError(t testing.TB, status int, body []byte, want int) {
	t.Helper()
	if status != want {
		t.Fatalf("status %d (%s), want %d", status, truncate(body, 300), want)
	}
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not JSON", truncate(body, 300))
	}
	if msg, _ := e["error"].(string); msg == "" {
		t.Fatalf("error body %s has no \"error\" message", truncate(body, 300))
	}
}
