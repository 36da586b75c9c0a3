package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Key policy tests: pattern and allow-list, the backend check against a
// real HTTP backend in this process, the backend down with on_error allow
// and deny, coalescing, and the answers of every transport.

// kpBackend is a toggle backend's key check endpoint: GET ?sdk_key=K
// answers the status set for K (default 200) and counts requests. While
// held, requests wait for release.
type kpBackend struct {
	srv *httptest.Server

	mu       sync.Mutex
	status   map[string]int // guarded by mu
	requests map[string]int // guarded by mu
	gate     chan struct{}  // guarded by mu; nil: answer at once
}

func newKPBackend(t testing.TB) *kpBackend {
	t.Helper()
	b := &kpBackend{status: map[string]int{}, requests: map[string]int{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("sdk_key")
		b.mu.Lock()
		b.requests[key]++
		status, ok := b.status[key]
		gate := b.gate
		b.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if !ok {
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"sdk_key":%q}`, key)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *kpBackend) refuse(key string, status int) {
	b.mu.Lock()
	b.status[key] = status
	b.mu.Unlock()
}

func (b *kpBackend) count(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests[key]
}

func (b *kpBackend) hold() {
	b.mu.Lock()
	b.gate = make(chan struct{})
	b.mu.Unlock()
}

func (b *kpBackend) release() {
	b.mu.Lock()
	gate := b.gate
	b.gate = nil
	b.mu.Unlock()
	if gate != nil {
		close(gate)
	}
}

// kpStats is the key_policy part of GET /push_gateway/stats.
type kpStats struct {
	KeyPolicy struct {
		Checks          uint64 `json:"checks"`
		CacheHits       uint64 `json:"cache_hits"`
		Refused         uint64 `json:"refused"`
		BackendErrors   uint64 `json:"backend_errors"`
		BackendRequests uint64 `json:"backend_requests"`
		Invalid         uint64 `json:"invalid"`
	} `json:"key_policy"`
}

func (n *Node) keyPolicyStats(t testing.TB) kpStats {
	t.Helper()
	var s kpStats
	n.statsInto(t, &s)
	return s
}

// kpPolicy is the global options' key_policy block, one line per option.
func kpPolicy(lines ...string) string {
	return "key_policy {\n\t\t\t" + strings.Join(lines, "\n\t\t\t") + "\n\t\t}"
}

// expectRefusal reads the error message and the close code a register
// refused by the key policy gets.
func expectRefusal(t testing.TB, c *Client, code int, errCode string) {
	t.Helper()
	before := c.ExpectClose(t, code, msgTimeout)
	if len(before) == 0 || before[len(before)-1].Type != "error" {
		t.Fatalf("close %d without an error message before it (last: %s)", code, lastRaw(before))
	}
	var m struct{ Code string }
	_ = json.Unmarshal(before[len(before)-1].Raw, &m)
	if m.Code != errCode {
		t.Fatalf("error %s, want code %q", before[len(before)-1].Raw, errCode)
	}
}

// kpHTTP sends an SSE (sse true) or long-poll GET and returns the status
// and body of an answer that is not a stream.
func kpHTTP(t testing.TB, n *Node, query string, sse bool) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.HTTP+route+"?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sse {
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if sse && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "" // a stream: do not read it to its end
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

func TestKeyPolicyPatternAndAllowList(t *testing.T) {
	good := testKey(t, "allowed")
	later := testKey(t, "later")
	policy := func(allow ...string) string {
		return caddyfile([]string{kpPolicy(`pattern "Test[A-Za-z0-9_.-]+"`, "max_length 120", "allow "+strings.Join(allow, " "))},
			[]string{"transports websocket sse poll"})
	}
	n := startCaddy(t, policy(good))

	bystander := Dial(t, n.WSURL(route))
	bystander.Register(t, good)
	var seq uint64
	publishToBystander := func(t testing.TB) {
		t.Helper()
		seq++
		n.PublishOK(t, good, "update", `{"n":1}`)
		bystander.ExpectMessage(t, good, seq)
	}

	tests := []struct {
		name    string
		url     string // query on the route
		message string // a register message; "" for none
		code    int
		errCode string
	}{
		{name: "register, bad pattern", message: "bad key", code: 4400, errCode: "bad_request"},
		{name: "register, anchored pattern", message: "xTestabc", code: 4400, errCode: "bad_request"},
		{name: "register, too long", message: "Test" + strings.Repeat("x", 117), code: 4400, errCode: "bad_request"},
		{name: "register, not allowed", message: later, code: 4401, errCode: "key_refused"},
		{name: "URL key, bad pattern", url: "?sdk_key=nope", code: 4400, errCode: "bad_request"},
		{name: "URL key, not allowed", url: "?sdk_key=" + later, code: 4401, errCode: "key_refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Dial(t, n.WSURL(route+tt.url))
			if tt.message != "" {
				c.Send(t, map[string]any{"type": "register", "sdk_key": tt.message})
			}
			expectRefusal(t, c, tt.code, tt.errCode)
			publishToBystander(t)
		})
	}

	httpTests := []struct {
		name   string
		query  string
		sse    bool
		status int
		body   string
	}{
		{name: "sse, bad pattern", query: "sdk_key=nope", sse: true, status: 400, body: "does not match the key policy"},
		{name: "sse, not allowed", query: "sdk_key=" + later, sse: true, status: 403, body: `{"error":"key refused"}`},
		{name: "sse, allowed", query: "sdk_key=" + good, sse: true, status: 200},
		{name: "poll, bad pattern", query: "sdk_key=" + good + "&sdk_key=nope&wait=0s", status: 400, body: "does not match the key policy"},
		{name: "poll, not allowed", query: "sdk_key=" + good + "&sdk_key=" + later + "&wait=0s", status: 403, body: `{"error":"key refused"}`},
		{name: "poll, allowed", query: "sdk_key=" + good + "&wait=0s", status: 200, body: `"keys":{"` + good},
	}
	for _, tt := range httpTests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := kpHTTP(t, n, tt.query, tt.sse)
			if status != tt.status || !strings.Contains(body, tt.body) {
				t.Fatalf("answer %d %q, want %d with %q", status, body, tt.status, tt.body)
			}
		})
	}

	// A reload applies the new allow-list to new registers; the bystander
	// keeps its connection.
	n.Reload(t, policy(good, later))
	eventually(t, msgTimeout, func() (bool, string) {
		c := Dial(t, n.WSURL(route))
		defer c.Close()
		c.Send(t, map[string]any{"type": "register", "sdk_key": later})
		m, err := c.NextMsg(msgTimeout)
		return err == nil && m.Type == "registered", fmt.Sprintf("register after reload: %s %v", m.Raw, err)
	})
	publishToBystander(t)

	st := n.keyPolicyStats(t)
	if st.KeyPolicy.Invalid < 4 || st.KeyPolicy.Refused < 3 {
		t.Fatalf("stats %+v: want at least 4 invalid and 3 refused", st.KeyPolicy)
	}
}

func TestKeyPolicyBackend(t *testing.T) {
	b := newKPBackend(t)
	n := startCaddy(t, caddyfile(
		[]string{kpPolicy("check "+b.srv.URL+"/api/sdk-key-check {", "\tttl 1m", "\tnegative_ttl 1m", "\ttimeout 5s", "}")},
		[]string{"transports websocket sse poll socketio"}))

	allowed := testKey(t, "allowed")
	refused := testKey(t, "refused")
	b.refuse(refused, http.StatusForbidden)

	t.Run("allowed", func(t *testing.T) {
		c := Dial(t, n.WSURL(route))
		c.Register(t, allowed)
		p := n.PublishOK(t, allowed, "update", `1`)
		c.ExpectMessage(t, allowed, p.Seq)
	})

	t.Run("refused, then from the cache", func(t *testing.T) {
		for range 3 {
			c := Dial(t, n.WSURL(route))
			c.Send(t, map[string]any{"type": "register", "sdk_key": refused})
			expectRefusal(t, c, 4401, "key_refused")
		}
		if got := b.count(refused); got != 1 {
			t.Fatalf("backend asked %d times about the refused key, want 1 (cached)", got)
		}
	})

	t.Run("statuses", func(t *testing.T) {
		for _, status := range []int{http.StatusUnauthorized, http.StatusNotFound} {
			key := testKey(t, fmt.Sprint(status))
			b.refuse(key, status)
			c := Dial(t, n.WSURL(route+"?sdk_key="+key))
			expectRefusal(t, c, 4401, "key_refused")
		}
	})

	t.Run("sse and poll", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			query  string
			sse    bool
			status int
		}{
			{"sse allowed", "sdk_key=" + allowed, true, 200},
			{"sse refused", "sdk_key=" + refused, true, 403},
			{"poll allowed", "sdk_key=" + allowed + "&wait=0s", false, 200},
			{"poll refused", "sdk_key=" + allowed + "&sdk_key=" + refused + "&wait=0s", false, 403},
		} {
			status, body := kpHTTP(t, n, tt.query, tt.sse)
			if status != tt.status || (status == 403 && strings.TrimSpace(body) != `{"error":"key refused"}`) {
				t.Fatalf("%s: %d %q, want %d", tt.name, status, body, tt.status)
			}
		}
	})

	t.Run("socket.io refused", func(t *testing.T) {
		c := sioDial(t, n, "/realtime/")
		c.Send(t, "40/realtime,")
		if got := sioNext(t, c); !strings.HasPrefix(got, `40/realtime,{"sid":`) {
			t.Fatalf("connect answer %q", got)
		}
		c.Send(t, `42/realtime,["register",{"key":"`+refused+`"}]`)
		// The namespace is disconnected by the server (socket.io-client
		// does not reconnect from that), then the connection closes 4401.
		sioExpect(t, c, "41/realtime,")
		expectSIOClose(t, c, 4401)
	})

	t.Run("socket.io allowed", func(t *testing.T) {
		c := sioDial(t, n, "/realtime/")
		c.Send(t, "40/realtime,")
		sioNext(t, c)
		c.Send(t, `42/realtime,["register",{"sdk_key":"`+allowed+`"}]`)
		sioExpect(t, c, `42/realtime,["update",""]`)
	})

	t.Run("coalescing", func(t *testing.T) {
		const clients = 100
		key := testKey(t, "storm")
		before := n.keyPolicyStats(t).KeyPolicy.Checks
		b.hold()
		defer b.release()
		cs := make([]*Client, clients)
		for i := range cs {
			cs[i] = Dial(t, n.WSURL(route))
		}
		for _, c := range cs {
			c.Send(t, map[string]any{"type": "register", "sdk_key": key})
		}
		// Every register reached the policy while the one request waits.
		eventually(t, msgTimeout, func() (bool, string) {
			got := n.keyPolicyStats(t).KeyPolicy.Checks - before
			return got == clients, fmt.Sprintf("%d of %d registers checked", got, clients)
		})
		b.release()
		for _, c := range cs {
			if m := c.ReadMsg(t, msgTimeout); m.Type != "registered" || m.SDKKey != key {
				t.Fatalf("want registered for %s, got %s", key, m.Raw)
			}
		}
		if got := b.count(key); got != 1 {
			t.Fatalf("the backend saw %d requests for %d clients registering one key at once, want 1", got, clients)
		}
		p := n.PublishOK(t, key, "update", `2`)
		if p.LocalReceivers != clients {
			t.Fatalf("local_receivers %d, want %d", p.LocalReceivers, clients)
		}
	})

	st := n.keyPolicyStats(t).KeyPolicy
	if st.CacheHits == 0 || st.Refused < 5 || st.BackendErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestKeyPolicyBackendDown(t *testing.T) {
	// A port nothing listens on: every request is refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/check"
	ln.Close()

	tests := []struct {
		name    string
		onError string
		code    int // 0: registered
	}{
		{name: "on_error allow", onError: "allow"},
		{name: "on_error deny", onError: "deny", code: 4401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startCaddy(t, caddyfile(
				[]string{kpPolicy("check "+down+" {", "\ttimeout 1s", "\ton_error "+tt.onError, "}")}, nil))
			for i := range 3 {
				key := testKey(t, fmt.Sprint(i))
				c := Dial(t, n.WSURL(route))
				if tt.code == 0 {
					c.Register(t, key)
				} else {
					c.Send(t, map[string]any{"type": "register", "sdk_key": key})
					expectRefusal(t, c, tt.code, "key_refused")
				}
				status, _ := kpHTTP(t, n, "sdk_key="+key+"&wait=0s", false)
				if want := map[int]int{0: 200, 4401: 403}[tt.code]; status != want {
					t.Fatalf("poll: %d, want %d", status, want)
				}
			}
			if st := n.keyPolicyStats(t).KeyPolicy; st.BackendErrors < 3 {
				t.Fatalf("stats %+v: want at least 3 backend errors", st)
			}
			// Logged once per state change, not once per key.
			eventually(t, msgTimeout, func() (bool, string) {
				logs := n.LogTail(400)
				return strings.Count(logs, "key check backend failing") == 1, "log:\n" + logs
			})
		})
	}
}
