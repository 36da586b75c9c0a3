package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fakeBackend is a toggle backend's key check endpoint: it answers each
// key with the status set for it (default 200) and counts requests. While
// gate is non-nil, requests wait for it to close.
type fakeBackend struct {
	srv *httptest.Server

	mu       sync.Mutex
	statuses map[string]int         // guarded by mu
	requests map[string]int         // guarded by mu
	gate     chan struct{}          // guarded by mu
	delay    func(key string) error // guarded by mu; unused when nil
	total    atomic.Int64
	inside   atomic.Int64 // requests being served
}

func newFakeBackend(t testing.TB) *fakeBackend {
	t.Helper()
	b := &fakeBackend{statuses: map[string]int{}, requests: map[string]int{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.inside.Add(1)
		defer b.inside.Add(-1)
		key := r.URL.Query().Get("sdk_key")
		b.total.Add(1)
		b.mu.Lock()
		b.requests[key]++
		status, ok := b.statuses[key]
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
		w.WriteHeader(status)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *fakeBackend) set(key string, status int) {
	b.mu.Lock()
	b.statuses[key] = status
	b.mu.Unlock()
}

func (b *fakeBackend) hold() chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gate = make(chan struct{})
	return b.gate
}

func (b *fakeBackend) release(gate chan struct{}) {
	b.mu.Lock()
	b.gate = nil
	b.mu.Unlock()
	close(gate)
}

func (b *fakeBackend) count(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests[key]
}

// testChecker returns a checker on cfg with the URL filled in, closed at
// the end of the test.
func testChecker(t testing.TB, cfg KeyCheckConfig, logger *zap.Logger) (*keyChecker, *keyPolicyCounters) {
	t.Helper()
	if logger == nil {
		logger = zap.NewNop()
	}
	var counter keyPolicyCounters
	c, err := newKeyChecker(cfg, logger, &counter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c, &counter
}

func TestKeyCheckAnswers(t *testing.T) {
	b := newFakeBackend(t)
	tests := []struct {
		name   string
		status int
		want   keyAnswer
	}{
		{name: "ok", status: http.StatusOK, want: answerAllowed},
		{name: "no content", status: http.StatusNoContent, want: answerAllowed},
		{name: "unauthorized", status: http.StatusUnauthorized, want: answerRefused},
		{name: "forbidden", status: http.StatusForbidden, want: answerRefused},
		{name: "not found", status: http.StatusNotFound, want: answerRefused},
		{name: "server error", status: http.StatusInternalServerError, want: answerError},
		{name: "redirect", status: http.StatusFound, want: answerError},
		{name: "too many requests", status: http.StatusTooManyRequests, want: answerError},
	}
	c, _ := testChecker(t, KeyCheckConfig{URL: b.srv.URL + "/check?x=1"}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "k-" + tt.name
			b.set(key, tt.status)
			if got := c.wait(context.Background(), key); got != tt.want {
				t.Fatalf("answer %d, want %d", got, tt.want)
			}
		})
	}
}

func TestKeyCheckTimeoutIsAnError(t *testing.T) {
	b := newFakeBackend(t)
	gate := b.hold()
	defer b.release(gate)
	c, counter := testChecker(t, KeyCheckConfig{URL: b.srv.URL, Timeout: 50 * time.Millisecond}, nil)
	if got := c.wait(context.Background(), "slow"); got != answerError {
		t.Fatalf("answer %d, want an error", got)
	}
	if counter.backendErrors.Load() != 1 {
		t.Fatalf("backend_errors %d, want 1", counter.backendErrors.Load())
	}
}

func TestKeyCheckCacheTTL(t *testing.T) {
	b := newFakeBackend(t)
	b.set("refused", http.StatusForbidden)
	b.set("broken", http.StatusBadGateway)
	tests := []struct {
		name string
		key  string
		ttl  time.Duration // how long the answer is remembered
	}{
		{name: "positive", key: "allowed", ttl: time.Minute},
		{name: "negative", key: "refused", ttl: 5 * time.Second},
		{name: "error", key: "broken", ttl: keyCheckErrorTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, counter := testChecker(t, KeyCheckConfig{URL: b.srv.URL, TTL: time.Minute, NegativeTTL: 5 * time.Second}, nil)
			now := time.Unix(1_000_000, 0)
			c.now = func() time.Time { return now }
			first := c.wait(context.Background(), tt.key)
			now = now.Add(tt.ttl - time.Millisecond)
			if a, ok := c.cached(tt.key); !ok || a != first {
				t.Fatalf("before the TTL: cached %d %v, want %d", a, ok, first)
			}
			if counter.cacheHits.Load() != 1 {
				t.Fatalf("cache_hits %d, want 1", counter.cacheHits.Load())
			}
			now = now.Add(time.Millisecond)
			if _, ok := c.cached(tt.key); ok {
				t.Fatal("still cached once the TTL passed")
			}
			before := b.count(tt.key)
			c.wait(context.Background(), tt.key)
			if b.count(tt.key) != before+1 {
				t.Fatalf("backend asked %d times after expiry, want %d", b.count(tt.key), before+1)
			}
		})
	}
}

func TestKeyCheckCacheIsBounded(t *testing.T) {
	b := newFakeBackend(t)
	c, _ := testChecker(t, KeyCheckConfig{URL: b.srv.URL, CacheSize: 3}, nil)
	for _, k := range []string{"a", "b", "c"} {
		c.wait(context.Background(), k)
	}
	c.cached("a") // a is now the most recently used: b goes first
	c.wait(context.Background(), "d")
	c.mu.Lock()
	n := len(c.cache)
	c.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d cached answers, want 3", n)
	}
	for _, tt := range []struct {
		key  string
		want bool
	}{{"a", true}, {"b", false}, {"c", true}, {"d", true}} {
		if _, ok := c.cached(tt.key); ok != tt.want {
			t.Errorf("%s cached: %v, want %v", tt.key, ok, tt.want)
		}
	}
}

func TestKeyCheckCoalesces(t *testing.T) {
	const askers = 100
	b := newFakeBackend(t)
	gate := b.hold()
	c, _ := testChecker(t, KeyCheckConfig{URL: b.srv.URL}, nil)
	answers := make(chan keyAnswer, askers)
	for range askers {
		go func() { answers <- c.wait(context.Background(), "shared") }()
	}
	waitFor(t, "every asker waiting on one call", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		call := c.inflight["shared"]
		return call != nil && len(call.waiters) == askers
	})
	b.release(gate)
	for range askers {
		if a := <-answers; a != answerAllowed {
			t.Fatalf("answer %d, want allowed", a)
		}
	}
	if n := b.count("shared"); n != 1 {
		t.Fatalf("backend asked %d times, want 1", n)
	}
}

func TestKeyCheckBoundsConcurrency(t *testing.T) {
	b := newFakeBackend(t)
	gate := b.hold()
	c, _ := testChecker(t, KeyCheckConfig{URL: b.srv.URL, MaxConcurrent: 2}, nil)
	var done sync.WaitGroup
	for i := range 6 {
		done.Go(func() { c.wait(context.Background(), string(rune('a'+i))) })
	}
	// Two asked, four queued: never more at the backend at once.
	waitFor(t, "two requests at the backend and four queued", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return b.inside.Load() == 2 && c.workers == 2 && len(c.queue) == 4
	})
	b.release(gate)
	done.Wait()
	waitFor(t, "the workers to end", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.workers == 0
	})
}

func TestKeyCheckLogsOncePerStateChange(t *testing.T) {
	b := newFakeBackend(t)
	core, logs := observer.New(zapcore.InfoLevel)
	c, _ := testChecker(t, KeyCheckConfig{URL: b.srv.URL}, zap.New(core))
	for i := range 5 {
		key := string(rune('a' + i))
		b.set(key, http.StatusServiceUnavailable)
		c.wait(context.Background(), key)
	}
	c.wait(context.Background(), "up")
	b.set("down-again", http.StatusInternalServerError)
	c.wait(context.Background(), "down-again")
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Message)
	}
	want := []string{
		"key check backend failing; applying on_error",
		"key check backend answering again",
		"key check backend failing; applying on_error",
	}
	if len(got) != len(want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logged %q, want %q", got, want)
		}
	}
}

func TestKeyCheckCloseEndsLookups(t *testing.T) {
	b := newFakeBackend(t)
	gate := b.hold()
	defer b.release(gate)
	var counter keyPolicyCounters
	c, err := newKeyChecker(KeyCheckConfig{URL: b.srv.URL, Timeout: time.Minute}, zap.NewNop(), &counter)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan keyAnswer, 1)
	if _, ok := c.lookup("k", func(a keyAnswer) { got <- a }); ok {
		t.Fatal("answered before asking the backend")
	}
	waitFor(t, "the request at the backend", func() bool { return b.inside.Load() == 1 })
	c.close()
	if a := <-got; a != answerError {
		t.Fatalf("answer %d after close, want an error", a)
	}
	if a, ok := c.lookup("other", func(keyAnswer) { t.Error("called after close") }); !ok || a != answerError {
		t.Fatalf("lookup after close: %d %v, want an error at once", a, ok)
	}
}
