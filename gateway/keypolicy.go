package gateway

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
	"github.com/pushgateway/push_gateway/protocol/socketio"
)

// The key policy decides which SDK keys may be followed, for every register
// of every transport: the key's shape (pattern, length: a bad one is the
// client's mistake, 4400 / 400), an allow-list, and the toggle backend
// (keycheck.go); a key failing either of the last two is refused (4401 /
// 403). Each layer narrows: a key must pass all that are configured.
//
// WebSocket-borne registers (native, Socket.IO) run on netpoll workers, so
// they never wait for the backend: an answer known now (shape, allow-list,
// cache) is applied inline, otherwise the lookup's worker applies it when
// the backend answers. SSE and long poll run on their HTTP goroutine and
// wait for it, bounded by the check's timeout.

// KeyPolicyConfig is the `key_policy` block of the global options. The zero
// value (or a nil *KeyPolicyConfig) lets every valid key through.
type KeyPolicyConfig struct {
	Pattern   string          // a regexp the whole key must match; "" accepts any
	MaxLength int             // longest key in bytes; 0: hub.MaxKeyLen
	Allow     []string        // nil: no allow-list; else only these keys
	Check     *KeyCheckConfig // nil: no backend check
}

// Validate reports what is wrong with c.
func (c *KeyPolicyConfig) Validate() error {
	if c == nil {
		return nil
	}
	if _, err := compilePattern(c.Pattern); err != nil {
		return err
	}
	if c.MaxLength < 0 || c.MaxLength > hub.MaxKeyLen {
		return fmt.Errorf("%w: max_length %d: must be between 1 and %d", ErrKeyPolicy, c.MaxLength, hub.MaxKeyLen)
	}
	for _, k := range c.Allow {
		if hub.ValidKey(k) != nil {
			return fmt.Errorf("%w: allow: %q is not a valid sdk key", ErrKeyPolicy, k)
		}
	}
	if c.Check != nil {
		return c.Check.Validate()
	}
	return nil
}

// compilePattern compiles a key pattern anchored at both ends: a pattern
// says what a whole key looks like, never what it contains.
func compilePattern(p string) (*regexp.Regexp, error) {
	if p == "" {
		return nil, nil
	}
	re, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%w: pattern %q: %w", ErrKeyPolicy, p, err)
	}
	return re, nil
}

// KeyPolicyStats are the key policy's counters in Stats, kept across
// reloads.
type KeyPolicyStats struct {
	Checks          uint64 `json:"checks"`           // registers judged by a configured policy
	CacheHits       uint64 `json:"cache_hits"`       // backend answers taken from the cache
	Refused         uint64 `json:"refused"`          // registers refused: allow-list, backend, on_error deny
	BackendErrors   uint64 `json:"backend_errors"`   // failed backend lookups (error, timeout, bad status, overload)
	BackendRequests uint64 `json:"backend_requests"` // requests sent to the backend
	Invalid         uint64 `json:"invalid"`          // keys failing pattern or max_length
}

// keyPolicyCounters back KeyPolicyStats.
type keyPolicyCounters struct {
	checks, cacheHits, refused, backendErrors, backendRequests, invalid atomic.Uint64
}

// keyPolicy is a KeyPolicyConfig compiled. It never changes once built: a
// reload builds another.
type keyPolicy struct {
	cfg     KeyPolicyConfig
	pattern *regexp.Regexp
	maxLen  int
	allow   map[string]struct{} // nil: no allow-list
	check   *keyChecker         // nil: no backend check
	onError keyVerdict          // verdict of a backend error
}

// keyVerdict is the policy's decision about one key.
type keyVerdict uint8

const (
	verdictAllow   keyVerdict = iota
	verdictInvalid            // bad shape: 4400 / 400
	verdictRefused            // refused: 4401 / 403
)

// keyPolicyState is the Engine's key policy: the policy in force, its
// counters and the WebSocket registers waiting for the backend.
type keyPolicyState struct {
	cur     atomic.Pointer[keyPolicy] // nil: no policy
	counter keyPolicyCounters
	pending pendingFollows
}

// configureKeyPolicy installs cfg's policy; New and Configure call it. A
// reload whose check block is unchanged keeps the checker and its cache;
// a changed one drops the old checker, which finishes what it was asked
// (its waiters get the old policy's verdict) and lets its goroutines end.
// The new policy applies to registers from now on; keys followed already
// stay followed.
func (e *Engine) configureKeyPolicy(cfg *KeyPolicyConfig) {
	old := e.kp.cur.Load()
	var p *keyPolicy
	if cfg != nil {
		var err error
		if p, err = e.newKeyPolicy(*cfg, old); err != nil {
			// The module validates first: this is a programming error.
			e.logger.Error("key policy refused; keeping the previous one", zap.Error(err))
			return
		}
	}
	e.kp.cur.Store(p)
}

// newKeyPolicy compiles cfg, reusing old's checker when the check block is
// the same.
func (e *Engine) newKeyPolicy(cfg KeyPolicyConfig, old *keyPolicy) (*keyPolicy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Check != nil { // a copy: the caller's may change, ours is compared on reload
		c := *cfg.Check
		cfg.Check = &c
	}
	p := &keyPolicy{cfg: cfg, maxLen: cfg.MaxLength, onError: verdictAllow}
	p.pattern, _ = compilePattern(cfg.Pattern)
	if p.maxLen == 0 {
		p.maxLen = hub.MaxKeyLen
	}
	if cfg.Allow != nil {
		p.allow = make(map[string]struct{}, len(cfg.Allow))
		for _, k := range cfg.Allow {
			p.allow[k] = struct{}{}
		}
	}
	if cfg.Check != nil {
		if old != nil && old.check != nil && old.cfg.Check != nil && *old.cfg.Check == *cfg.Check {
			p.check = old.check
		} else {
			c, err := newKeyChecker(*cfg.Check, e.logger, &e.kp.counter)
			if err != nil {
				return nil, err
			}
			p.check = c
		}
		if p.check.cfg.OnError == KeyCheckDeny {
			p.onError = verdictRefused
		}
	}
	return p, nil
}

// stopKeyPolicy ends the backend check's requests and workers; Shutdown
// calls it.
func (e *Engine) stopKeyPolicy() {
	if p := e.kp.cur.Swap(nil); p != nil && p.check != nil {
		p.check.close()
	}
}

// KeyPolicyStats returns the key policy's counters (zero when no policy
// was ever configured).
func (e *Engine) KeyPolicyStats() KeyPolicyStats {
	c := &e.kp.counter
	return KeyPolicyStats{
		Checks:          c.checks.Load(),
		CacheHits:       c.cacheHits.Load(),
		Refused:         c.refused.Load(),
		BackendErrors:   c.backendErrors.Load(),
		BackendRequests: c.backendRequests.Load(),
		Invalid:         c.invalid.Load(),
	}
}

// judgeKey decides what it can about key without waiting: shape,
// allow-list and a cached backend answer. ask is true when only the
// backend can tell (p is the policy to ask it with).
func (e *Engine) judgeKey(key string) (v keyVerdict, p *keyPolicy, ask bool) {
	p = e.kp.cur.Load()
	if p == nil {
		return verdictAllow, nil, false
	}
	e.kp.counter.checks.Add(1)
	// A key the hub would refuse anyway never reaches the backend.
	if len(key) > p.maxLen || hub.ValidKey(key) != nil || (p.pattern != nil && !p.pattern.MatchString(key)) {
		e.kp.counter.invalid.Add(1)
		return verdictInvalid, p, false
	}
	if p.allow != nil {
		if _, ok := p.allow[key]; !ok {
			e.kp.counter.refused.Add(1)
			return verdictRefused, p, false
		}
	}
	if p.check == nil {
		return verdictAllow, p, false
	}
	if a, ok := p.check.cached(key); ok {
		return e.verdictOf(p, a), p, false
	}
	return verdictAllow, p, true
}

// verdictOf turns a backend answer into a verdict, counting refusals.
func (e *Engine) verdictOf(p *keyPolicy, a keyAnswer) keyVerdict {
	v := verdictAllow
	switch a {
	case answerRefused:
		v = verdictRefused
	case answerError:
		v = p.onError
	}
	if v == verdictRefused {
		e.kp.counter.refused.Add(1)
	}
	return v
}

// judgeLater asks the backend about key and calls done with the verdict:
// at once when the answer arrived meanwhile, else on a checker goroutine.
func (e *Engine) judgeLater(p *keyPolicy, key string, done func(keyVerdict)) {
	a, ok := p.check.lookup(key, func(a keyAnswer) { done(e.verdictOf(p, a)) })
	if ok {
		done(e.verdictOf(p, a))
	}
}

// judgeWait decides key, waiting for the backend if need be (HTTP
// handlers only).
func (e *Engine) judgeWait(ctx context.Context, key string) keyVerdict {
	v, p, ask := e.judgeKey(key)
	if !ask {
		return v
	}
	return e.verdictOf(p, p.check.wait(ctx, key))
}

// admitHTTP judges the keys of an SSE or long-poll request, asking the
// backend about several at once. A key failing the policy is answered
// (400 for a bad shape, 403 {"error":"key refused"}) and the error is
// returned; nil lets the request go on.
func (e *Engine) admitHTTP(w http.ResponseWriter, r *http.Request, keys ...string) error {
	if e.kp.cur.Load() == nil {
		return nil
	}
	verdicts := make([]keyVerdict, len(keys))
	if len(keys) == 1 {
		verdicts[0] = e.judgeWait(r.Context(), keys[0])
	} else {
		var wg sync.WaitGroup
		for i, k := range keys {
			wg.Go(func() { verdicts[i] = e.judgeWait(r.Context(), k) })
		}
		wg.Wait()
	}
	for i, v := range verdicts {
		switch v {
		case verdictInvalid:
			return writeError(w, http.StatusBadRequest, fmt.Sprintf("sdk_key %q does not match the key policy", pollClip(keys[i])))
		case verdictRefused:
			return writeError(w, http.StatusForbidden, "key refused")
		}
	}
	return nil
}

// admitPoll is admitHTTP for a long poll's keys.
func (e *Engine) admitPoll(w http.ResponseWriter, r *http.Request, keys []pollKey) error {
	if e.kp.cur.Load() == nil {
		return nil
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.key
	}
	return e.admitHTTP(w, r, names...)
}

// pendingFollows are WebSocket registers waiting for the backend, by
// subscription and key. An unregister (or a later register decided inline)
// removes the entry, so that the late answer does not follow a key the
// client gave up meanwhile; a newer register of the same key replaces it.
type pendingFollows struct {
	n    atomic.Int64 // len(m): the inline path locks only when some wait
	mu   sync.Mutex
	next uint64                   // guarded by mu
	m    map[pendingFollow]uint64 // token of the newest register; guarded by mu
}

type pendingFollow struct {
	sub *hub.Subscription
	key string
}

// add records a register of key waiting for the backend; the token tells
// take whether it is still the one to apply.
func (p *pendingFollows) add(sub *hub.Subscription, key string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[pendingFollow]uint64)
	}
	p.next++
	k := pendingFollow{sub, key}
	if _, ok := p.m[k]; !ok {
		p.n.Add(1)
	}
	p.m[k] = p.next
	return p.next
}

// take reports whether token is still the register to apply, and forgets it.
func (p *pendingFollows) take(sub *hub.Subscription, key string, token uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := pendingFollow{sub, key}
	if t, ok := p.m[k]; !ok || t != token {
		return false
	}
	delete(p.m, k)
	p.n.Add(-1)
	return true
}

// forget drops a waiting register of key, if any.
func (p *pendingFollows) forget(sub *hub.Subscription, key string) {
	if p.n.Load() == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := pendingFollow{sub, key}
	if _, ok := p.m[k]; ok {
		delete(p.m, k)
		p.n.Add(-1)
	}
}

// forgetPending is the unregister hook: a register of key still waiting
// for the backend is dropped.
func (e *Engine) forgetPending(sub *hub.Subscription, key string) { e.kp.pending.forget(sub, key) }

// followChecked is a native register behind the key policy: the verdict
// is applied inline when known, else by the lookup's goroutine.
func (s *wsSession) followChecked(key string, since uint64, epoch string, resume bool) {
	if s.route.e.kp.cur.Load() == nil { // no policy: no closure to allocate
		s.follow(key, since, epoch, resume)
		return
	}
	apply := func(v keyVerdict) {
		switch v {
		case verdictAllow:
			s.follow(key, since, epoch, resume)
		case verdictInvalid:
			s.fail(protocol.CloseMalformed, "bad_request", "sdk_key does not match the key policy", false)
		case verdictRefused:
			s.fail(protocol.CloseKeyRefused, "key_refused", "sdk_key refused", false)
		}
	}
	s.route.e.checkFollow(s.sub, key, apply)
}

// followChecked is a Socket.IO register behind the key policy. A refused
// key gets its namespace disconnected by the server first, which
// socket.io-client (and FeatureProbe's SDKs built on it) take for "io
// server disconnect" and do not reconnect from; then the connection closes
// with 4401, as a native one does.
func (s *sioSession) followChecked(n *sioNamespace, key string) {
	if s.e.kp.cur.Load() == nil {
		s.follow(n, key)
		return
	}
	apply := func(v keyVerdict) {
		switch v {
		case verdictAllow:
			s.follow(n, key)
		case verdictInvalid:
			s.fail(protocol.CloseMalformed, "bad_request", "sdk_key does not match the key policy", false)
		case verdictRefused:
			if !s.ended.Load() {
				s.sendPacket(socketio.Packet{Type: socketio.Disconnect, Namespace: n.name})
			}
			s.fail(protocol.CloseKeyRefused, "key_refused", "sdk_key refused", false)
		}
	}
	s.e.checkFollow(n.sub, key, apply)
}

// checkFollow judges key for sub and applies the verdict: inline when it
// is known now, else once the backend answered, unless the register was
// given up or superseded meanwhile.
func (e *Engine) checkFollow(sub *hub.Subscription, key string, apply func(keyVerdict)) {
	v, p, ask := e.judgeKey(key)
	if !ask {
		e.kp.pending.forget(sub, key) // an older register still waiting is superseded
		apply(v)
		return
	}
	token := e.kp.pending.add(sub, key)
	e.judgeLater(p, key, func(v keyVerdict) {
		if e.kp.pending.take(sub, key, token) {
			apply(v)
		}
	})
}
