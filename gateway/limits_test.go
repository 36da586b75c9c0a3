package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/pushgateway/push_gateway/protocol"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at       time.Duration
		ok       bool
		wait     time.Duration // when refused
		tolerant bool          // wait compared within 1ms
	}
	tests := []struct {
		name  string
		rate  Rate
		steps []step
	}{
		{name: "unlimited", rate: Rate{}, steps: []step{{ok: true}, {ok: true}, {ok: true}}},
		{
			name: "burst then refill",
			rate: Rate{PerSecond: 10, Burst: 3},
			steps: []step{
				{ok: true}, {ok: true}, {ok: true},
				{ok: false, wait: 100 * time.Millisecond}, // the next token
				{ok: false, wait: 200 * time.Millisecond}, // the one after: promised spread
				{ok: false, wait: 300 * time.Millisecond},
				{at: 100 * time.Millisecond, ok: true},
				{at: 100 * time.Millisecond, ok: false, wait: 300 * time.Millisecond, tolerant: true},
				{at: time.Second, ok: true}, // refilled to the burst, not beyond
				{at: time.Second, ok: true},
				{at: time.Second, ok: true},
				{at: time.Second, ok: false, wait: 100 * time.Millisecond, tolerant: true},
			},
		},
		{
			name: "default burst is one second",
			rate: Rate{PerSecond: 2},
			steps: []step{
				{ok: true}, {ok: true},
				{ok: false, wait: 500 * time.Millisecond},
			},
		},
		{
			name: "slow rate, burst 1, promise capped",
			rate: Rate{PerSecond: 1.0 / 60, Burst: 1},
			steps: []step{
				{ok: true},
				{ok: false, wait: maxRetryAfter},
				{ok: false, wait: maxRetryAfter},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bucket
			b.set(tt.rate)
			for i, s := range tt.steps {
				ok, wait := b.take(at(s.at))
				if ok != s.ok {
					t.Fatalf("step %d at %s: ok %v, want %v", i, s.at, ok, s.ok)
				}
				if ok {
					continue
				}
				diff := wait - s.wait
				if diff < 0 {
					diff = -diff
				}
				if (s.tolerant && diff > time.Millisecond) || (!s.tolerant && diff > time.Microsecond) {
					t.Fatalf("step %d at %s: wait %s, want %s", i, s.at, wait, s.wait)
				}
			}
		})
	}
}

func TestBucketSet(t *testing.T) {
	var b bucket
	now := time.Unix(1000, 0)
	b.set(Rate{PerSecond: 1, Burst: 1})
	if ok, _ := b.take(now); !ok {
		t.Fatal("a full bucket refused")
	}
	b.set(Rate{PerSecond: 1, Burst: 1}) // a reload with the same rate keeps the state
	if ok, _ := b.take(now); ok {
		t.Fatal("an unchanged rate refilled the bucket")
	}
	b.set(Rate{PerSecond: 5, Burst: 2}) // a new rate starts full
	for i := range 2 {
		if ok, _ := b.take(now); !ok {
			t.Fatalf("take %d after a new rate refused", i)
		}
	}
	b.set(Rate{}) // off
	if ok, _ := b.take(now); !ok {
		t.Fatal("an unlimited bucket refused")
	}
}

func TestLimitsRetryAfter(t *testing.T) {
	tests := []struct {
		name     string
		wait     time.Duration
		min, max time.Duration
	}{
		{name: "nothing to wait is a second", wait: 0, min: time.Second, max: time.Second},
		{name: "sub-second rounds up", wait: 10 * time.Millisecond, min: time.Second, max: time.Second},
		{name: "jitter stays within 20%", wait: 5 * time.Second, min: 5 * time.Second, max: 6 * time.Second},
		{name: "capped", wait: time.Hour, min: maxRetryAfter, max: maxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				got := limitsRetryAfter(tt.wait)
				if got < tt.min || got > tt.max || got%time.Second != 0 {
					t.Fatalf("limitsRetryAfter(%s) = %s, want whole seconds in [%s, %s]", tt.wait, got, tt.min, tt.max)
				}
			}
		})
	}
	for range 200 {
		if got := limitsCapRetryAfter(); got < capRetryAfter || got > 2*capRetryAfter+time.Second {
			t.Fatalf("limitsCapRetryAfter() = %s", got)
		}
	}
}

func TestDefaultMaxConnections(t *testing.T) {
	n := DefaultMaxConnections()
	if n <= 0 {
		t.Skip("no open-files limit known")
	}
	// Go raised the soft limit to the hard one; the default leaves at
	// least 256 descriptors and 10% of them.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	lim := rl.Cur
	if want := int(lim) - max(256, int(lim)/10); int(lim) > 512 && n != want {
		t.Fatalf("DefaultMaxConnections() = %d with a limit of %d, want %d", n, lim, want)
	}
}

// limitsEngine is an Engine with limits l, for admission tests that need
// no server.
func limitsEngine(t testing.TB, l Limits) *Engine {
	t.Helper()
	e, err := New(Config{Limits: l}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// admitFrom runs admit for a GET from remote ("ip:port") with query q.
func admitFrom(e *Engine, remote, q string) (*http.Request, *httptest.ResponseRecorder, bool) {
	r := httptest.NewRequest(http.MethodGet, "/realtime?"+q, nil)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	r2, ok := e.admit(w, r)
	return r2, w, ok
}

func TestAdmitCounts(t *testing.T) {
	e := limitsEngine(t, Limits{MaxConnections: 3, MaxConnectionsPerIP: 2})
	type step struct {
		do      string // "admit", "leave", "keep", "release"
		remote  string
		slot    int // which admitted request leave/keep/release acts on
		status  int // admit: 0 admitted, else the refusal's status
		active  int64
		perIP   int32 // count of remote's IP after the step
		refused Refusals
	}
	steps := []step{
		{do: "admit", remote: "10.0.0.1:1", active: 1, perIP: 1},
		{do: "admit", remote: "10.0.0.1:2", active: 2, perIP: 2},
		{do: "admit", remote: "10.0.0.1:3", status: 429, active: 2, perIP: 2, refused: Refusals{PerIP: 1}},
		{do: "admit", remote: "10.0.0.2:1", active: 3, perIP: 1, refused: Refusals{PerIP: 1}},
		{do: "admit", remote: "10.0.0.3:1", status: 503, active: 3, perIP: 0, refused: Refusals{PerIP: 1, MaxConnections: 1}},
		// slot 0 becomes a kept connection: the request's end does not free it
		{do: "keep", slot: 0, remote: "10.0.0.1:1", active: 3, perIP: 2, refused: Refusals{PerIP: 1, MaxConnections: 1}},
		{do: "leave", slot: 0, remote: "10.0.0.1:1", active: 3, perIP: 2, refused: Refusals{PerIP: 1, MaxConnections: 1}},
		{do: "release", slot: 0, remote: "10.0.0.1:1", active: 2, perIP: 1, refused: Refusals{PerIP: 1, MaxConnections: 1}},
		{do: "release", slot: 0, remote: "10.0.0.1:1", active: 2, perIP: 1, refused: Refusals{PerIP: 1, MaxConnections: 1}}, // twice: no effect
		{do: "leave", slot: 0, remote: "10.0.0.1:1", active: 2, perIP: 1, refused: Refusals{PerIP: 1, MaxConnections: 1}},
		// slot 1 is a request-only connection (a long poll): leave frees it
		{do: "leave", slot: 1, remote: "10.0.0.1:2", active: 1, perIP: 0, refused: Refusals{PerIP: 1, MaxConnections: 1}},
		{do: "admit", remote: "10.0.0.3:1", active: 2, perIP: 1, refused: Refusals{PerIP: 1, MaxConnections: 1}},
	}
	var slots []*http.Request
	for i, s := range steps {
		switch s.do {
		case "admit":
			r, w, ok := admitFrom(e, s.remote, "sdk_key=k")
			if ok != (s.status == 0) {
				t.Fatalf("step %d: admitted %v, want status %d", i, ok, s.status)
			}
			if ok {
				slots = append(slots, r)
				break
			}
			if w.Code != s.status {
				t.Fatalf("step %d: status %d, want %d", i, w.Code, s.status)
			}
			ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Fatalf("step %d: Retry-After %q", i, w.Header().Get("Retry-After"))
			}
			if w.Header().Get("Connection") != "close" {
				t.Fatalf("step %d: no Connection: close", i)
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] == "" {
				t.Fatalf("step %d: body %q", i, w.Body.String())
			}
		case "keep":
			if keepAdmission(slots[s.slot]) == nil {
				t.Fatalf("step %d: no admission to keep", i)
			}
		case "leave":
			leaveAdmission(slots[s.slot])
		case "release":
			admissionOf(slots[s.slot]).release()
		}
		if got := e.lim.active.Load(); got != s.active {
			t.Fatalf("step %d (%s): active %d, want %d", i, s.do, got, s.active)
		}
		e.lim.mu.Lock()
		got := e.lim.perIP[clientAddr(&http.Request{RemoteAddr: s.remote}, nil)]
		e.lim.mu.Unlock()
		if got != s.perIP {
			t.Fatalf("step %d (%s): per-IP count %d, want %d", i, s.do, got, s.perIP)
		}
		if got := e.Refusals(); got != s.refused {
			t.Fatalf("step %d (%s): refusals %+v, want %+v", i, s.do, got, s.refused)
		}
	}
}

func TestAdmitSkipsSocketIOContinuations(t *testing.T) {
	e := limitsEngine(t, Limits{MaxConnections: 1})
	if _, _, ok := admitFrom(e, "10.0.0.1:1", "sdk_key=a"); !ok {
		t.Fatal("first refused")
	}
	r, _, ok := admitFrom(e, "10.0.0.1:2", "EIO=4&transport=polling&sid=abc")
	if !ok || admissionOf(r) != nil {
		t.Fatalf("a request continuing a Socket.IO session was counted (ok %v)", ok)
	}
	if _, w, ok := admitFrom(e, "10.0.0.1:3", "EIO=4&transport=polling"); ok || w.Code != 503 {
		t.Fatalf("a new Socket.IO session over the cap: ok %v, status %d", ok, w.Code)
	}
}

func TestAdmitClientIP(t *testing.T) {
	// Behind a trusted proxy, the module's ClientIP names the client.
	e := limitsEngine(t, Limits{MaxConnectionsPerIP: 1, ClientIP: func(r *http.Request) string {
		return r.Header.Get("X-Test-Client")
	}})
	admit := func(client string) bool {
		r := httptest.NewRequest(http.MethodGet, "/realtime?sdk_key=k", nil)
		r.RemoteAddr = "192.0.2.1:5000" // the proxy
		r.Header.Set("X-Test-Client", client)
		_, ok := e.admit(httptest.NewRecorder(), r)
		return ok
	}
	if !admit("203.0.113.7") || !admit("203.0.113.8") {
		t.Fatal("two clients behind one proxy were refused")
	}
	if admit("203.0.113.7") {
		t.Fatal("a client's second connection was admitted")
	}
	// An empty answer falls back to the TCP peer, which has none yet.
	if !admit("") {
		t.Fatal("fallback to the TCP peer refused")
	}
}

func TestUpgradeRateRefusal(t *testing.T) {
	e := limitsEngine(t, Limits{UpgradeRate: Rate{PerSecond: 1, Burst: 2}})
	for i := range 2 {
		r, _, ok := admitFrom(e, "10.0.0.1:1", "sdk_key=k")
		if !ok {
			t.Fatalf("connection %d within the burst refused", i)
		}
		leaveAdmission(r)
	}
	_, w, ok := admitFrom(e, "10.0.0.1:1", "sdk_key=k")
	if ok || w.Code != http.StatusServiceUnavailable {
		t.Fatalf("over the rate: admitted %v, status %d", ok, w.Code)
	}
	if ra, _ := strconv.Atoi(w.Header().Get("Retry-After")); ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q, want 1 or 2", w.Header().Get("Retry-After"))
	}
	if got := e.Refusals(); got != (Refusals{UpgradeRate: 1}) || e.lim.active.Load() != 0 {
		t.Fatalf("refusals %+v, active %d", got, e.lim.active.Load())
	}
}

func TestPublishRate(t *testing.T) {
	e := limitsEngine(t, Limits{PublishRate: Rate{PerSecond: 1, Burst: 1}})
	if _, ok := e.AllowPublish(); !ok {
		t.Fatal("first publish refused")
	}
	ra, ok := e.AllowPublish()
	if ok || ra < time.Second || ra%time.Second != 0 {
		t.Fatalf("second publish: ok %v, retry after %s", ok, ra)
	}
	if got := e.Refusals().PublishRate; got != 1 {
		t.Fatalf("publish_rate refusals %d, want 1", got)
	}
	e.Configure(Config{}) // a reload without the limit lifts it
	for range 10 {
		if _, ok := e.AllowPublish(); !ok {
			t.Fatal("refused after the limit was removed")
		}
	}
}

// limitsServer serves an Engine with limits l and returns its ws:// URL.
func limitsServer(t testing.TB, l Limits) (*Engine, string) {
	t.Helper()
	e := limitsEngine(t, l)
	route := e.Route("test")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = e.ServeHTTP(w, r, route)
	}))
	t.Cleanup(srv.Close)
	return e, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestMaxConnectionsWebSocket(t *testing.T) {
	e, url := limitsServer(t, Limits{MaxConnections: 2})
	c1 := dialWS(t, url+"?sdk_key=a")
	c1.expect("registered")
	c2 := dialWS(t, url+"?sdk_key=a")
	c2.expect("registered")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, _, err := ws.Dial(ctx, url+"?sdk_key=a")
	var se ws.StatusError
	if !asStatus(err, &se) || int(se) != http.StatusServiceUnavailable {
		t.Fatalf("third dial: %v, want 503", err)
	}
	// A closed connection gives its slot back (OnClose), exactly once.
	c1.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.lim.active.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("active %d after a close, want 1", e.lim.active.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	c3 := dialWS(t, url+"?sdk_key=a")
	c3.expect("registered")
	if got := e.Refusals().MaxConnections; got != 1 {
		t.Fatalf("max_connections refusals %d, want 1", got)
	}
}

func asStatus(err error, se *ws.StatusError) bool {
	s, ok := err.(ws.StatusError)
	if ok {
		*se = s
	}
	return ok
}

func TestMaxFollowersPerKeyWebSocket(t *testing.T) {
	e, url := limitsServer(t, Limits{MaxFollowersPerKey: 1})
	c1 := dialWS(t, url+"?sdk_key=k")
	c1.expect("registered")
	c2 := dialWS(t, url)
	c2.send(`{"type":"register","sdk_key":"k"}`)
	m := c2.expect("error")
	if m["code"] != "too_many_followers" {
		t.Fatalf("error %v, want too_many_followers", m)
	}
	c2.expectClose(ws.StatusCode(protocol.CloseOverLimit))
	if got := e.Refusals().PerKey; got != 1 {
		t.Fatalf("per_key refusals %d, want 1", got)
	}
	// SSE and polls are refused before they answer: 429 JSON.
	httpURL := "http" + strings.TrimPrefix(url, "ws")
	for _, accept := range []string{"text/event-stream", ""} {
		req, _ := http.NewRequest(http.MethodGet, httpURL+"?sdk_key=k&wait=1s", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("Accept %q: status %d, want 429", accept, resp.StatusCode)
		}
	}
	if got := e.Refusals().PerKey; got != 3 {
		t.Fatalf("per_key refusals %d, want 3", got)
	}
}

func TestMaxFollowersPerKeySocketIO(t *testing.T) {
	e, url := limitsServer(t, Limits{MaxFollowersPerKey: 1})
	e.Route("test").Set(RouteSettings{Transports: []string{TransportWebSocket, TransportSocketIO}})
	a := dialSIO(t, url, "/realtime/")
	a.send(`42/realtime,["register",{"key":"K"}]`)
	a.expect(`42/realtime,["update",""]`)
	b := dialSIO(t, url, "/realtime/")
	b.send(`42/realtime,["register",{"key":"K"}]`)
	b.expectClose(ws.StatusCode(protocol.CloseOverLimit))
	if got := e.Refusals().PerKey; got != 1 {
		t.Fatalf("per_key refusals %d, want 1", got)
	}
	// The Socket.IO session gave its admission back when it ended.
	deadline := time.Now().Add(5 * time.Second)
	for e.lim.active.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("active %d after the refused session ended, want 1", e.lim.active.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAdmissionOfSocketIOPollingSession(t *testing.T) {
	e, url := limitsServer(t, Limits{MaxConnections: 1})
	e.Route("test").Set(RouteSettings{Transports: []string{TransportWebSocket, TransportSocketIO}})
	base := "http" + strings.TrimPrefix(url, "ws") + "/realtime/?EIO=4&transport=polling"
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}
	status, open := get(base)
	if status != http.StatusOK || !strings.HasPrefix(open, "0{") {
		t.Fatalf("open: %d %q", status, open)
	}
	var o struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(open[1:]), &o); err != nil {
		t.Fatal(err)
	}
	// The session holds its admission between requests; its own requests
	// are not counted again, a new session is refused.
	if got := e.lim.active.Load(); got != 1 {
		t.Fatalf("active %d with one polling session, want 1", got)
	}
	if status, _ := get(base); status != http.StatusServiceUnavailable {
		t.Fatalf("a second session over max_connections: %d", status)
	}
	resp, err := http.Post(base+"&sid="+o.SID, "text/plain", strings.NewReader("1")) // Engine.IO close
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.lim.active.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("active %d after the session closed, want 0", e.lim.active.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
