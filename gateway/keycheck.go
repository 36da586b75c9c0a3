package gateway

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// The key policy's backend check: the gateway asks the toggle backend
// whether an SDK key may be followed (GET <url>?sdk_key=K), remembers the
// answer for a while, and never asks twice at once for the same key.
//
// A checker owns no goroutine while idle. A lookup that misses the cache
// queues one call per key (later askers of the same key wait on it); up to
// MaxConcurrent worker goroutines are started on demand to serve the queue
// and end when it is empty; the last one closes the idle connections. A
// checker replaced by a reload is simply dropped: its workers finish what
// they were asked (bounded by the timeout) and end. Waiters are called on the worker, so a netpoll
// worker never waits for the backend (I5).

// Defaults of KeyCheckConfig.
const (
	DefaultKeyCheckTTL           = time.Minute
	DefaultKeyCheckNegativeTTL   = 10 * time.Second
	DefaultKeyCheckTimeout       = 2 * time.Second
	DefaultKeyCheckMaxConcurrent = 16
	DefaultKeyCheckCacheSize     = 100_000
)

const (
	// keyCheckErrorTTL is how long a backend error is remembered for a key:
	// during an outage a key costs the backend at most one request per
	// period, and a reconnect storm is answered from the cache (on_error).
	keyCheckErrorTTL = time.Second
	// keyCheckMaxPending bounds the distinct keys waiting for the backend;
	// past it a lookup fails at once (on_error) instead of queueing
	// without bound (I6).
	keyCheckMaxPending = 4096
	// keyCheckBodyLimit bounds what is read of an answer's body (read
	// only so that the connection can be reused).
	keyCheckBodyLimit = 4 << 10
	// keyCheckIdleConns bounds how long a connection to the backend idles
	// between two lookups of a busy period; the last worker to end closes
	// the idle ones anyway.
	keyCheckIdleConns = 30 * time.Second
)

// OnError values: what the backend check decides when the backend cannot.
const (
	KeyCheckAllow = "allow"
	KeyCheckDeny  = "deny"
)

// KeyCheckConfig configures the backend check. Zero fields take the
// defaults above; OnError defaults to allow (a backend outage must not lock
// every client out of the toggles they already know).
type KeyCheckConfig struct {
	URL           string        // GET <URL>?sdk_key=K: 2xx allowed, 401/403/404 refused
	TTL           time.Duration // how long an allowed answer is cached
	NegativeTTL   time.Duration // how long a refused answer is cached
	Timeout       time.Duration // bound on one backend request
	OnError       string        // KeyCheckAllow or KeyCheckDeny
	MaxConcurrent int           // backend requests at once
	CacheSize     int           // answers kept (least recently used evicted)
}

// Sentinel errors of the key policy's configuration.
var (
	// ErrKeyPolicy wraps every error of a KeyPolicyConfig.
	ErrKeyPolicy = errors.New("key policy")
)

// withDefaults returns c with its zero fields set to their defaults.
func (c KeyCheckConfig) withDefaults() KeyCheckConfig {
	if c.TTL <= 0 {
		c.TTL = DefaultKeyCheckTTL
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = DefaultKeyCheckNegativeTTL
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultKeyCheckTimeout
	}
	if c.OnError == "" {
		c.OnError = KeyCheckAllow
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultKeyCheckMaxConcurrent
	}
	if c.CacheSize <= 0 {
		c.CacheSize = DefaultKeyCheckCacheSize
	}
	return c
}

// Validate reports what is wrong with c, defaults aside.
func (c KeyCheckConfig) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return fmt.Errorf("%w: check needs a URL", ErrKeyPolicy)
	case err != nil:
		return fmt.Errorf("%w: check URL %q: %w", ErrKeyPolicy, c.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: check URL %q: want an http:// or https:// URL", ErrKeyPolicy, c.URL)
	case u.Host == "":
		return fmt.Errorf("%w: check URL %q has no host", ErrKeyPolicy, c.URL)
	case u.Fragment != "":
		return fmt.Errorf("%w: check URL %q: a fragment is never sent", ErrKeyPolicy, c.URL)
	case c.TTL < 0 || c.NegativeTTL < 0 || c.Timeout < 0:
		return fmt.Errorf("%w: check durations must be positive", ErrKeyPolicy)
	case c.OnError != "" && c.OnError != KeyCheckAllow && c.OnError != KeyCheckDeny:
		return fmt.Errorf("%w: on_error %q: want %s or %s", ErrKeyPolicy, c.OnError, KeyCheckAllow, KeyCheckDeny)
	case c.MaxConcurrent < 0 || c.CacheSize < 0:
		return fmt.Errorf("%w: max_concurrent and cache_size must be positive", ErrKeyPolicy)
	}
	return nil
}

// keyAnswer is what the backend check knows about a key.
type keyAnswer uint8

const (
	answerAllowed keyAnswer = iota + 1
	answerRefused
	answerError // backend error, timeout or overload: on_error decides
)

// keyCall is one backend request in flight (or queued) for a key, with
// everyone waiting for its answer, in the order they asked.
type keyCall struct {
	key     string
	waiters []func(keyAnswer) // guarded by keyChecker.mu
}

// cacheEntry is a remembered answer.
type cacheEntry struct {
	key     string
	answer  keyAnswer
	expires time.Time
}

// keyChecker asks the backend about keys. It is goroutine-safe.
type keyChecker struct {
	cfg     KeyCheckConfig // defaults filled in
	base    *url.URL
	client  *http.Client
	tr      *http.Transport
	logger  *zap.Logger
	counter *keyPolicyCounters
	now     func() time.Time // the clock, replaced in tests

	ctx    context.Context // cancelled by close: requests in flight end
	cancel context.CancelFunc
	wg     sync.WaitGroup // the workers

	mu       sync.Mutex
	cache    map[string]*list.Element // of *cacheEntry; guarded by mu
	lru      list.List                // front: most recently used; guarded by mu
	inflight map[string]*keyCall      // queued or asked; guarded by mu
	queue    []*keyCall               // not yet asked; guarded by mu
	workers  int                      // running; guarded by mu
	closed   bool                     // no new lookups; guarded by mu

	down atomic.Bool // the last backend request failed: logged once per change
}

// newKeyChecker returns a checker for cfg (validated by the caller).
func newKeyChecker(cfg KeyCheckConfig, logger *zap.Logger, counter *keyPolicyCounters) (*keyChecker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	base, _ := url.Parse(cfg.URL)
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: cfg.MaxConcurrent,
		MaxConnsPerHost:     cfg.MaxConcurrent,
		IdleConnTimeout:     keyCheckIdleConns,
		TLSHandshakeTimeout: cfg.Timeout,
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &keyChecker{
		cfg:  cfg,
		base: base,
		tr:   tr,
		client: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// A redirect is an answer we do not understand: a backend error.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		logger:   logger,
		counter:  counter,
		now:      time.Now,
		ctx:      ctx,
		cancel:   cancel,
		cache:    make(map[string]*list.Element),
		inflight: make(map[string]*keyCall),
	}, nil
}

// cached returns the remembered answer for key, if any and still fresh.
func (c *keyChecker) cached(key string) (keyAnswer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cachedLocked(key)
}

// cachedLocked is cached with c.mu held.
func (c *keyChecker) cachedLocked(key string) (keyAnswer, bool) {
	el, ok := c.cache[key]
	if !ok {
		return 0, false
	}
	ent := el.Value.(*cacheEntry)
	if !c.now().Before(ent.expires) {
		c.lru.Remove(el)
		delete(c.cache, key)
		return 0, false
	}
	c.lru.MoveToFront(el)
	c.counter.cacheHits.Add(1)
	return ent.answer, true
}

// rememberLocked caches answer for key, evicting the least recently used
// entry when full. c.mu must be held.
func (c *keyChecker) rememberLocked(key string, answer keyAnswer) {
	ttl := keyCheckErrorTTL
	switch answer {
	case answerAllowed:
		ttl = c.cfg.TTL
	case answerRefused:
		ttl = c.cfg.NegativeTTL
	}
	exp := c.now().Add(ttl)
	if el, ok := c.cache[key]; ok {
		ent := el.Value.(*cacheEntry)
		ent.answer, ent.expires = answer, exp
		c.lru.MoveToFront(el)
		return
	}
	for len(c.cache) >= c.cfg.CacheSize {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.cache, old.Value.(*cacheEntry).key)
	}
	c.cache[key] = c.lru.PushFront(&cacheEntry{key: key, answer: answer, expires: exp})
}

// lookup returns the answer for key when it is known now (cached, or an
// error when the checker is closed or overloaded): ok is true and done is
// never called. Otherwise ok is false and done is called exactly once,
// later, on a checker goroutine; askers of the same key are called in the
// order they asked. done must not block for long: it runs on a worker.
func (c *keyChecker) lookup(key string, done func(keyAnswer)) (answer keyAnswer, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.cachedLocked(key); ok {
		return a, true
	}
	if c.closed {
		return answerError, true
	}
	if call := c.inflight[key]; call != nil {
		call.waiters = append(call.waiters, done)
		return 0, false
	}
	if len(c.inflight) >= keyCheckMaxPending {
		c.counter.backendErrors.Add(1)
		return answerError, true
	}
	call := &keyCall{key: key, waiters: []func(keyAnswer){done}}
	c.inflight[key] = call
	c.queue = append(c.queue, call)
	if c.workers < c.cfg.MaxConcurrent {
		c.workers++
		c.wg.Add(1)
		go c.work()
	}
	return 0, false
}

// wait is lookup for a caller that may block (an HTTP handler): it waits
// for the answer, at most about twice the backend timeout (a request may
// queue behind others) or until ctx ends; either gives answerError.
func (c *keyChecker) wait(ctx context.Context, key string) keyAnswer {
	ch := make(chan keyAnswer, 1)
	if a, ok := c.lookup(key, func(a keyAnswer) { ch <- a }); ok {
		return a
	}
	t := time.NewTimer(2 * c.cfg.Timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		return a
	case <-t.C:
	case <-ctx.Done():
	}
	return answerError
}

// work serves the queue until it is empty, then ends.
func (c *keyChecker) work() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.workers--
			last := c.workers == 0
			c.mu.Unlock()
			if last {
				// Nothing left to ask: an idle checker holds no
				// connection (nor its goroutines) to the backend. A
				// storm keeps the workers busy, and reuses connections.
				c.tr.CloseIdleConnections()
			}
			return
		}
		call := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()

		answer := c.ask(call.key)

		c.mu.Lock()
		c.rememberLocked(call.key, answer)
		delete(c.inflight, call.key)
		waiters := call.waiters
		call.waiters = nil
		c.mu.Unlock()
		for _, done := range waiters {
			done(answer)
		}
	}
}

// ask sends one request to the backend and reads its answer.
func (c *keyChecker) ask(key string) keyAnswer {
	c.counter.backendRequests.Add(1)
	u := *c.base
	q := u.Query()
	q.Set("sdk_key", key)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return c.failed(fmt.Errorf("building request: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "push_gateway key check")
	resp, err := c.client.Do(req)
	if err != nil {
		if c.ctx.Err() != nil {
			return answerError // closing: not the backend's fault
		}
		return c.failed(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, keyCheckBodyLimit))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		c.recovered()
		return answerAllowed
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden,
		resp.StatusCode == http.StatusNotFound:
		c.recovered()
		return answerRefused
	}
	return c.failed(fmt.Errorf("unexpected status %s", resp.Status))
}

// failed counts a backend error and logs it when the backend was up until
// now: a down backend is logged once, not once per key.
func (c *keyChecker) failed(err error) keyAnswer {
	c.counter.backendErrors.Add(1)
	if !c.down.Swap(true) {
		c.logger.Warn("key check backend failing; applying on_error",
			zap.String("url", c.cfg.URL), zap.String("on_error", c.cfg.OnError), zap.Error(err))
	}
	return answerError
}

// recovered logs the backend's return after a failure.
func (c *keyChecker) recovered() {
	if c.down.Swap(false) {
		c.logger.Info("key check backend answering again", zap.String("url", c.cfg.URL))
	}
}

// close refuses new lookups, cancels the requests in flight (their
// waiters get answerError), waits for the workers and closes the idle
// connections.
func (c *keyChecker) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.tr.CloseIdleConnections()
}
