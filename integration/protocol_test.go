package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// protoHistory is history_size on the protocol node: small, so that a since
// older than the history is cheap to provoke.
const protoHistory = 8

// startProtoNode starts the node the native-protocol tests share; each test
// uses its own keys.
func startProtoNode(t testing.TB) *Node {
	t.Helper()
	return startCaddy(t, caddyfile(
		[]string{fmt.Sprintf("history_size %d", protoHistory)},
		[]string{"heartbeat 1s", "idle_timeout 30s"},
	))
}

// keysURL is the client URL following keys, with since/epoch when since >= 0.
func keysURL(n *Node, keys []string, since int, epoch string) string {
	q := url.Values{}
	for _, k := range keys {
		q.Add("sdk_key", k)
	}
	if since >= 0 {
		q.Set("since", fmt.Sprint(since))
		q.Set("epoch", epoch)
	}
	return n.WSURL(route + "?" + q.Encode())
}

func fieldSet(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func expectFields(t testing.TB, m map[string]any, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := fieldSet(m); !slices.Equal(got, want) {
		t.Fatalf("fields %v, want %v (message %v)", got, want, m)
	}
}

func TestNativeProtocol(t *testing.T) {
	n := startProtoNode(t)

	t.Run("registered then message with exact fields", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Send(t, `{"type":"register","sdk_key":"`+key+`"}`)
		reg := c.ReadJSON(t, msgTimeout)
		expectFields(t, reg, "type", "sdk_key", "epoch", "seq")
		if reg["type"] != "registered" || reg["sdk_key"] != key || reg["seq"] != float64(0) {
			t.Fatalf("registered %v: want type registered, sdk_key %s, seq 0", reg, key)
		}
		epoch, _ := reg["epoch"].(string)
		if epoch == "" {
			t.Fatalf("registered without an epoch: %v", reg)
		}

		before := time.Now().UnixMilli()
		p := n.PublishOK(t, key, "", `{"b":[1,2,3],"s":"ü"}`)
		if p.Seq != 1 || p.Epoch != epoch || p.LocalReceivers != 1 || p.SDKKey != key {
			t.Fatalf("publish answered %+v, want seq 1, epoch %s, 1 local receiver", p, epoch)
		}
		m := c.ReadMsg(t, msgTimeout)
		after := time.Now().UnixMilli()
		var generic map[string]any
		if err := json.Unmarshal(m.Raw, &generic); err != nil {
			t.Fatal(err)
		}
		expectFields(t, generic, "type", "sdk_key", "epoch", "seq", "event", "data", "ts")
		if m.Type != "message" || m.SDKKey != key || m.Epoch != epoch || m.Seq != 1 || m.Event != "update" {
			t.Fatalf("message %s: want message of %s, epoch %s, seq 1, event update", m.Raw, key, epoch)
		}
		if string(m.Data) != `{"b":[1,2,3],"s":"ü"}` {
			t.Fatalf("data %q, want the published bytes", m.Data)
		}
		if m.TS < before-2000 || m.TS > after+2000 {
			t.Fatalf("ts %d not near publish time [%d, %d]", m.TS, before, after)
		}
	})

	t.Run("data is kept byte for byte", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		tests := []struct {
			name, data string
		}{
			{name: "object", data: `{"b":[1,2,3],"s":"ü"}`},
			{name: "whitespace and escapes", data: "{ \"b\" : [1, 2,\n 3], \"s\":\"\\u00fc\" }"},
			{name: "html characters", data: `{"h":"<a href=\"x\">&amp;</a>"}`},
			{name: "string", data: `"a string"`},
			{name: "empty string", data: `""`},
			{name: "number", data: `-12.5e3`},
			{name: "bool", data: `true`},
			{name: "array", data: `[]`},
		}
		var seq uint64
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				seq++
				n.PublishOK(t, key, "", tc.data)
				m := c.ExpectMessage(t, key, seq)
				if string(m.Data) != tc.data {
					t.Fatalf("data %q, want %q", m.Data, tc.data)
				}
			})
		}
	})

	t.Run("event names are carried", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		n.PublishOK(t, key, "flags_changed", `1`)
		if m := c.ExpectMessage(t, key, 1); m.Event != "flags_changed" {
			t.Fatalf("event %q, want flags_changed", m.Event)
		}
	})

	t.Run("seq is per key and starts at 1", func(t *testing.T) {
		a, b := testKey(t, "a"), testKey(t, "b")
		c := Dial(t, n.WSURL(route))
		c.Register(t, a)
		c.Register(t, b)
		plan := []struct {
			key string
			seq uint64
		}{{a, 1}, {a, 2}, {b, 1}, {a, 3}, {b, 2}, {b, 3}, {a, 4}}
		for i, p := range plan {
			got := n.PublishOK(t, p.key, "", fmt.Sprint(i))
			if got.Seq != p.seq {
				t.Fatalf("publish %d to %s: seq %d, want %d", i, p.key, got.Seq, p.seq)
			}
		}
		for i, p := range plan {
			m := c.ExpectMessage(t, p.key, p.seq)
			if string(m.Data) != fmt.Sprint(i) {
				t.Fatalf("message %d data %s", i, m.Data)
			}
		}
	})

	t.Run("register by URL with several keys", func(t *testing.T) {
		keys := []string{testKey(t, "a"), testKey(t, "b"), testKey(t, "c")}
		n.PublishOK(t, keys[1], "", `"before"`)
		c := Dial(t, keysURL(n, keys, -1, ""))
		got := map[string]uint64{}
		for range keys {
			m := c.ReadMsg(t, msgTimeout)
			if m.Type != "registered" || m.Epoch == "" {
				t.Fatalf("want registered, got %s", m.Raw)
			}
			got[m.SDKKey] = m.Seq
		}
		want := map[string]uint64{keys[0]: 0, keys[1]: 1, keys[2]: 0}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("registered seqs %v, want %v", got, want)
		}
		for _, k := range keys {
			n.PublishOK(t, k, "", `"live"`)
		}
		c.ExpectMessage(t, keys[0], 1)
		c.ExpectMessage(t, keys[1], 2)
		c.ExpectMessage(t, keys[2], 1)
	})

	t.Run("register by URL and by message on one connection", func(t *testing.T) {
		a, b := testKey(t, "a"), testKey(t, "b")
		c := Dial(t, keysURL(n, []string{a}, -1, ""))
		if m := c.ReadMsg(t, msgTimeout); m.Type != "registered" || m.SDKKey != a {
			t.Fatalf("want registered %s, got %s", a, m.Raw)
		}
		c.Register(t, b)
		n.PublishOK(t, b, "", `1`)
		n.PublishOK(t, a, "", `2`)
		c.ExpectMessage(t, b, 1)
		c.ExpectMessage(t, a, 1)
	})

	t.Run("fragmented register", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		msg := []byte(`{"type":"register","sdk_key":"` + key + `"}`)
		if err := c.WriteFrame(false, opText, msg[:10], true); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteFrame(true, opPing, []byte("between"), true); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteFrame(true, opCont, msg[10:], true); err != nil {
			t.Fatal(err)
		}
		if m := c.ReadMsg(t, msgTimeout); m.Type != "registered" || m.SDKKey != key {
			t.Fatalf("want registered %s, got %s", key, m.Raw)
		}
	})

	t.Run("unregister stops delivery", func(t *testing.T) {
		a, b := testKey(t, "a"), testKey(t, "b")
		c := Dial(t, n.WSURL(route))
		c.Register(t, a)
		c.Register(t, b)
		c.Send(t, map[string]any{"type": "unregister", "sdk_key": a})
		// The gateway handles one connection's messages in order: once the
		// pong is here, the unregister is done.
		c.Send(t, `{"type":"ping"}`)
		if m := c.ReadMsg(t, msgTimeout); m.Type != "pong" {
			t.Fatalf("want pong, got %s", m.Raw)
		}
		if p := n.PublishOK(t, a, "", `"not for you"`); p.LocalReceivers != 0 {
			t.Fatalf("publish to an unregistered key reached %d local receivers", p.LocalReceivers)
		}
		n.PublishOK(t, b, "", `"for you"`)
		c.ExpectMessage(t, b, 1)
		c.ExpectQuiet(t, 300*time.Millisecond)
	})

	t.Run("ping message answered with pong", func(t *testing.T) {
		c := Dial(t, n.WSURL(route))
		for i := 0; i < 3; i++ {
			c.Send(t, `{"type":"ping"}`)
			m := c.ReadJSON(t, msgTimeout)
			expectFields(t, m, "type")
			if m["type"] != "pong" {
				t.Fatalf("want pong, got %v", m)
			}
		}
	})

	t.Run("ping frame answered with pong frame", func(t *testing.T) {
		c := Dial(t, n.WSURL(route))
		if err := c.WriteFrame(true, opPing, []byte("are you there"), true); err != nil {
			t.Fatal(err)
		}
		eventually(t, msgTimeout, func() (bool, string) {
			return c.Pongs() >= 1, "no pong frame"
		})
		if got := c.LastPong(); got != "are you there" {
			t.Fatalf("pong payload %q, want the ping's", got)
		}
	})

	t.Run("client close answered with 1000", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		if err := c.WriteFrame(true, opClose, []byte{0x03, 0xE8}, true); err != nil {
			t.Fatal(err)
		}
		c.ExpectClose(t, 1000, msgTimeout)
		eventually(t, msgTimeout, func() (bool, string) {
			status, ki, b := n.Key(t, key)
			return status == http.StatusNotFound || ki.Followers == 0, fmt.Sprintf("key after the close: %d %s", status, b)
		})
	})

	t.Run("ack is accepted", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		n.PublishOK(t, key, "", `1`)
		c.ExpectMessage(t, key, 1)
		c.Send(t, map[string]any{"type": "ack", "sdk_key": key, "seq": 1})
		c.Send(t, `{"type":"ping"}`)
		if m := c.ReadMsg(t, msgTimeout); m.Type != "pong" {
			t.Fatalf("want pong after ack, got %s", m.Raw)
		}
	})

	resumeTests := []struct {
		name      string
		published int    // messages published before the client comes back
		since     int    // the client's since
		badEpoch  bool   // the client brings another epoch
		byURL     bool   // since/epoch on the URL instead of a register message
		replay    []int  // seqs expected after registered
		resync    bool   // expect resync instead of a replay
		wantFirst string // type after registered when replay is empty and no resync: "" means live
	}{
		{name: "replay after since", published: 5, since: 2, replay: []int{3, 4, 5}},
		{name: "replay after since by URL", published: 5, since: 2, byURL: true, replay: []int{3, 4, 5}},
		{name: "since 0 replays all", published: 3, since: 0, replay: []int{1, 2, 3}},
		{name: "since newest replays nothing", published: 4, since: 4},
		{name: "replay of exactly the history", published: 20, since: 20 - protoHistory, replay: seqRange(20-protoHistory+1, 20)},
		{name: "since older than history", published: 20, since: 2, resync: true},
		{name: "since just before history", published: 20, since: 20 - protoHistory - 1, resync: true},
		{name: "since from another epoch", published: 3, since: 1, badEpoch: true, resync: true},
		{name: "since from another epoch by URL", published: 3, since: 1, badEpoch: true, byURL: true, resync: true},
		// A client with nothing from another epoch may have missed all of
		// that epoch's messages: it cannot be trusted either.
		{name: "since 0 from another epoch", published: 3, since: 0, badEpoch: true, resync: true},
	}
	for _, tc := range resumeTests {
		t.Run("resume/"+tc.name, func(t *testing.T) {
			key := testKey(t, "k")
			var epoch string
			for i := 1; i <= tc.published; i++ {
				epoch = n.PublishOK(t, key, "", fmt.Sprint(i)).Epoch
			}
			sentEpoch := epoch
			if tc.badEpoch {
				sentEpoch = "not-" + epoch
			}
			var c *Client
			if tc.byURL {
				c = Dial(t, keysURL(n, []string{key}, tc.since, sentEpoch))
			} else {
				c = Dial(t, n.WSURL(route))
				c.Send(t, map[string]any{"type": "register", "sdk_key": key, "since": tc.since, "epoch": sentEpoch})
			}
			reg := c.ReadMsg(t, msgTimeout)
			if reg.Type != "registered" || reg.SDKKey != key || reg.Epoch != epoch || reg.Seq != uint64(tc.published) {
				t.Fatalf("first message %s: want registered %s epoch %s seq %d", reg.Raw, key, epoch, tc.published)
			}
			if tc.resync {
				rs := c.ReadJSON(t, msgTimeout)
				if rs["type"] != "resync" {
					t.Fatalf("since %d from epoch %q (key's epoch %s): want resync after registered, got %v", tc.since, sentEpoch, epoch, rs)
				}
				expectFields(t, rs, "type", "sdk_key", "epoch", "seq")
				if rs["type"] != "resync" || rs["sdk_key"] != key || rs["epoch"] != epoch || rs["seq"] != float64(tc.published) {
					t.Fatalf("want resync %s epoch %s seq %d, got %v", key, epoch, tc.published, rs)
				}
			}
			for _, s := range tc.replay {
				m := c.ExpectMessage(t, key, uint64(s))
				if string(m.Data) != fmt.Sprint(s) || m.Epoch != epoch {
					t.Fatalf("replayed %s, want data %d epoch %s", m.Raw, s, epoch)
				}
			}
			// Live messages follow, once.
			next := uint64(tc.published + 1)
			n.PublishOK(t, key, "", `"live"`)
			c.ExpectMessage(t, key, next)
			c.ExpectQuiet(t, 200*time.Millisecond)
		})
	}

	t.Run("resume while publishing keeps order", func(t *testing.T) {
		key := testKey(t, "k")
		var epoch string
		for i := 1; i <= 3; i++ {
			epoch = n.PublishOK(t, key, "", fmt.Sprint(i)).Epoch
		}
		const total = 60
		var wg sync.WaitGroup
		var pubErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 4; i <= total && pubErr == nil; i++ {
				_, pubErr = n.TryPublish(key, fmt.Sprint(i))
			}
		}()
		defer func() {
			wg.Wait()
			if pubErr != nil {
				t.Errorf("publisher: %v", pubErr)
			}
		}()
		c := Dial(t, n.WSURL(route))
		c.Send(t, map[string]any{"type": "register", "sdk_key": key, "since": 2, "epoch": epoch})
		reg := c.ReadMsg(t, msgTimeout)
		if reg.Type != "registered" || reg.SDKKey != key {
			t.Fatalf("first message %s, want registered", reg.Raw)
		}
		// With history_size 8 and a racing publisher, the gateway either
		// replays from 3 or says resync; after that every seq comes once, in
		// order, without a gap.
		next := uint64(3)
		first := c.ReadMsg(t, msgTimeout)
		switch first.Type {
		case "resync":
			if first.Seq != reg.Seq {
				t.Fatalf("resync seq %d, registered said %d", first.Seq, reg.Seq)
			}
			next = first.Seq + 1
		case "message":
			if first.Seq != 3 {
				t.Fatalf("first replayed seq %d, want 3", first.Seq)
			}
			next = 4
		default:
			t.Fatalf("after registered: %s", first.Raw)
		}
		for next <= total {
			c.ExpectMessage(t, key, next)
			next++
		}
	})
}

func seqRange(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestHeartbeatAndIdle runs on a node with a 200ms heartbeat and a 1s idle
// timeout.
func TestHeartbeatAndIdle(t *testing.T) {
	n := startCaddy(t, caddyfile(nil, []string{"heartbeat 200ms", "idle_timeout 1s"}))

	t.Run("gateway pings every heartbeat", func(t *testing.T) {
		c := Dial(t, n.WSURL(route))
		start := time.Now()
		eventually(t, 10*time.Second, func() (bool, string) {
			return c.Pings() >= 5, fmt.Sprintf("%d pings", c.Pings())
		})
		// Five pings at 200ms take about a second; the bound only rules out
		// a heartbeat left at its 25s default.
		if el := time.Since(start); el > 8*time.Second {
			t.Fatalf("5 pings took %v with heartbeat 200ms", el)
		}
	})

	t.Run("silent client closed with 4408", func(t *testing.T) {
		key := testKey(t, "k")
		c := DialWith(t, n.WSURL(route), DialOpts{NoAutoPong: true})
		c.Register(t, key)
		lastSent := time.Now()
		c.ExpectClose(t, 4408, 15*time.Second)
		if el := time.Since(lastSent); el < 500*time.Millisecond {
			t.Fatalf("closed as idle %v after the last message, idle_timeout is 1s", el)
		}
	})

	t.Run("client answering pings stays open", func(t *testing.T) {
		key := testKey(t, "k")
		c := Dial(t, n.WSURL(route))
		c.Register(t, key)
		// Three idle timeouts of proving that nothing happens.
		c.ExpectQuiet(t, 3*time.Second)
		if c.Pings() < 3 {
			t.Fatalf("only %d pings in 3s", c.Pings())
		}
		n.PublishOK(t, key, "", `"still here"`)
		c.ExpectMessage(t, key, 1)
	})

	t.Run("client sending ping messages stays open", func(t *testing.T) {
		key := testKey(t, "k")
		c := DialWith(t, n.WSURL(route), DialOpts{NoAutoPong: true})
		c.Register(t, key)
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			c.Send(t, `{"type":"ping"}`)
			// The pong is the pacing: one application ping per round trip,
			// at most every 300ms, well inside the 1s idle timeout.
			if m := c.ReadMsg(t, msgTimeout); m.Type != "pong" {
				t.Fatalf("want pong, got %s", m.Raw)
			}
			c.ExpectQuiet(t, 300*time.Millisecond)
		}
		n.PublishOK(t, key, "", `"still here"`)
		c.ExpectMessage(t, key, 1)
	})
}
