package gateway

import (
	"context"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
)

// Limits are the process-wide admission limits (the global `limits`
// block). A reload applies new values to new admissions at once;
// connections already above a lowered cap stay.
type Limits struct {
	// MaxConnections caps the node's connections, all transports together.
	// 0 derives it from the open-files limit (DefaultMaxConnections); a
	// negative value means unlimited.
	MaxConnections int
	// MaxConnectionsPerIP caps one client IP's connections; 0: unlimited.
	MaxConnectionsPerIP int
	// MaxFollowersPerKey caps one SDK key's local followers; 0: unlimited.
	MaxFollowersPerKey int
	// UpgradeRate paces new connections; zero: unlimited.
	UpgradeRate Rate
	// PublishRate paces the admin publish route; zero: unlimited.
	PublishRate Rate
	// ClientIP names the client of r for MaxConnectionsPerIP (the module
	// passes Caddy's client_ip, which honours trusted_proxies). nil, or an
	// empty answer, takes the TCP peer's address.
	ClientIP func(r *http.Request) string
}

// Rate is a token bucket: PerSecond tokens a second, at most Burst held.
type Rate struct {
	PerSecond float64
	Burst     int // 0: one second's worth, at least 1
}

// Refusals counts the requests refused by each limit, as Stats shows them
// under "refused".
type Refusals struct {
	MaxConnections uint64 `json:"max_connections"`
	PerIP          uint64 `json:"per_ip"`
	PerKey         uint64 `json:"per_key"`
	UpgradeRate    uint64 `json:"upgrade_rate"`
	PublishRate    uint64 `json:"publish_rate"`
}

// ByReason returns the counters by their JSON names, for metrics labels.
func (r Refusals) ByReason() map[string]uint64 {
	return map[string]uint64{
		"max_connections": r.MaxConnections,
		"per_ip":          r.PerIP,
		"per_key":         r.PerKey,
		"upgrade_rate":    r.UpgradeRate,
		"publish_rate":    r.PublishRate,
	}
}

// refusal indexes limiter.refused.
type refusal int

const (
	refusedMaxConns refusal = iota
	refusedPerIP
	refusedPerKey
	refusedUpgradeRate
	refusedPublishRate
	numRefusals
)

var refusalNames = [numRefusals]string{"max_connections", "per_ip", "per_key", "upgrade_rate", "publish_rate"}

const (
	// maxRetryAfter caps the Retry-After a refused client is told.
	maxRetryAfter = 60 * time.Second
	// capRetryAfter is the base Retry-After of a refusal by a cap (node,
	// IP, key): nobody knows when a slot frees, so a few seconds, jittered.
	capRetryAfter = 2 * time.Second
	// refusalLogEvery bounds the warnings about refusals: one per reason
	// per period, however many clients a storm brings.
	refusalLogEvery = 10 * time.Second
)

// limiter is the Engine's admission state. Counting is always on, limit or
// not, so that a reload which sets a limit applies it to the connections
// already there.
type limiter struct {
	cfg atomic.Pointer[limitsConfig]

	active atomic.Int64 // admitted connections not yet released

	mu    sync.Mutex
	perIP map[netip.Addr]int32 // live admitted connections by client IP; guarded by mu

	upgrades, publishes bucket

	refused [numRefusals]atomic.Uint64
	logged  [numRefusals]atomic.Int64 // unix nanos of the last warning per reason
}

// limitsConfig is one resolved snapshot of Limits.
type limitsConfig struct {
	maxConns int64 // 0: unlimited
	perIP    int32 // 0: unlimited
	perKey   int   // 0: unlimited
	clientIP func(*http.Request) string
}

// DefaultMaxConnections is MaxConnections' default: the open-files limit
// less a headroom of max(256, 10%), so that clients can never take the last
// descriptors the admin API, publishes, Redis and Caddy's own listeners
// need (and connections still in their TLS or HTTP handshake, which are not
// counted yet). Go raises the soft limit to the hard one at start, so this
// is the hard limit's share. 0 means no limit is known (unlimited).
func DefaultMaxConnections() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 || lim.Cur > math.MaxInt32 {
		return 0
	}
	n := int(lim.Cur)
	headroom := max(256, n/10)
	if n <= 2*headroom {
		return max(n/2, 1)
	}
	return n - headroom
}

// setLimits applies l: New and Configure call it.
func (e *Engine) setLimits(l Limits) {
	c := &limitsConfig{perKey: max(l.MaxFollowersPerKey, 0), clientIP: l.ClientIP}
	switch {
	case l.MaxConnections > 0:
		c.maxConns = int64(l.MaxConnections)
	case l.MaxConnections == 0:
		c.maxConns = int64(DefaultMaxConnections())
	}
	c.perIP = int32(min(max(l.MaxConnectionsPerIP, 0), math.MaxInt32))
	e.lim.cfg.Store(c)
	e.lim.upgrades.set(l.UpgradeRate)
	e.lim.publishes.set(l.PublishRate)
	e.hub.Configure(hub.WithMaxFollowersPerKey(c.perKey))
	e.logger.Info("admission limits",
		zap.Int64("max_connections", c.maxConns), zap.Int32("max_connections_per_ip", c.perIP),
		zap.Int("max_followers_per_key", c.perKey),
		zap.Float64("upgrade_rate", l.UpgradeRate.PerSecond), zap.Float64("publish_rate", l.PublishRate.PerSecond))
}

// Refusals returns how many requests each limit refused since start.
func (e *Engine) Refusals() Refusals {
	r := &e.lim.refused
	return Refusals{
		MaxConnections: r[refusedMaxConns].Load(),
		PerIP:          r[refusedPerIP].Load(),
		PerKey:         r[refusedPerKey].Load(),
		UpgradeRate:    r[refusedUpgradeRate].Load(),
		PublishRate:    r[refusedPublishRate].Load(),
	}
}

// AllowPublish takes a token of publish_rate for one publish request. When
// there is none it counts the refusal and returns false and how long the
// publisher should wait (whole seconds, at least one, jittered).
func (e *Engine) AllowPublish() (retryAfter time.Duration, ok bool) {
	ok, wait := e.lim.publishes.take(time.Now())
	if ok {
		return 0, true
	}
	e.countRefusal(refusedPublishRate)
	return limitsRetryAfter(wait), false
}

// admissionKey is the request context key of a request's *admission.
type admissionKey struct{}

// admission is one admitted connection's share of the limits. The request
// holds it until ServeHTTP returns; a transport whose connection outlives
// the request (hijacked WebSocket or SSE, a Socket.IO session) keeps it
// and releases it when the connection ends. The counts go back when both
// holders let go, exactly once.
//
// A connection keeps it for its whole life, so it is packed into 32 bytes
// (a size class; a netip.Addr field would make it 48): the client IP is
// held as its 16 bytes and a family, which is all clientAddr's answers (no
// zone, IPv4 unmapped) need.
type admission struct {
	l     *limiter
	ip16  [16]byte // the counted client IP in 16-byte form; see addr
	holds atomic.Uint32
	ipFam uint8 // 0: no IP (not counted in l.perIP), 4 or 6
}

// setAddr records ip, valid or not, which clientAddr returned.
func (a *admission) setAddr(ip netip.Addr) {
	switch {
	case ip.Is4():
		a.ipFam = 4
	case ip.Is6():
		a.ipFam = 6
	default:
		a.ipFam = 0
		return
	}
	a.ip16 = ip.As16()
}

// addr is the IP setAddr recorded; invalid when none.
func (a *admission) addr() netip.Addr {
	switch a.ipFam {
	case 4:
		return netip.AddrFrom16(a.ip16).Unmap()
	case 6:
		return netip.AddrFrom16(a.ip16)
	}
	return netip.Addr{}
}

const (
	holdRequest uint32 = 1 << iota
	holdConn
)

// admit applies the limits to a request about to open a connection. It
// answers a refused request itself (429 or 503, JSON, with Retry-After)
// and returns false; otherwise it returns the request carrying its
// admission, which leaveAdmission releases when ServeHTTP is done.
//
// Every request to the client endpoint counts (WebSocket and Socket.IO
// upgrades, SSE streams, long polls, Socket.IO polling handshakes), except
// requests continuing a Socket.IO session (?sid=), which was admitted when
// it opened. A long poll counts as a new connection on purpose: it
// subscribes and replays like a reconnect, and clients refused a WebSocket
// must not get round the pace by falling back to polling.
//
// The checks run cheapest and most specific first: key, client IP, node,
// then the upgrade rate, so that a request refused by a cap takes no token.
func (e *Engine) admit(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	q := r.URL.Query()
	if q.Has("EIO") && q.Has("sid") {
		return r, true
	}
	l := &e.lim
	cfg := l.cfg.Load()
	if cfg.perKey > 0 && !q.Has("EIO") && !isWebSocket(r) {
		// SSE and long polls must answer with a status before they follow;
		// WebSocket and Socket.IO registers are refused by the hub (4429).
		for _, k := range q["sdk_key"] {
			if e.hub.FollowersFull(k) {
				e.refuseLimit(w, r, refusedPerKey, http.StatusTooManyRequests, limitsCapRetryAfter(),
					"sdk_key "+strconv.Quote(k)+" has max_followers_per_key followers on this node")
				return nil, false
			}
		}
	}
	a := &admission{l: l}
	if ip := clientAddr(r, cfg.clientIP); ip.IsValid() {
		a.setAddr(ip)
		l.mu.Lock()
		n := l.perIP[ip]
		if cfg.perIP > 0 && n >= cfg.perIP {
			l.mu.Unlock()
			e.refuseLimit(w, r, refusedPerIP, http.StatusTooManyRequests, limitsCapRetryAfter(),
				"too many connections from "+ip.String()+": max_connections_per_ip is "+strconv.Itoa(int(cfg.perIP)))
			return nil, false
		}
		if l.perIP == nil {
			l.perIP = make(map[netip.Addr]int32)
		}
		l.perIP[ip] = n + 1
		l.mu.Unlock()
	}
	if n := l.active.Add(1); cfg.maxConns > 0 && n > cfg.maxConns {
		a.free()
		e.refuseLimit(w, r, refusedMaxConns, http.StatusServiceUnavailable, limitsCapRetryAfter(),
			"the gateway is full: max_connections is "+strconv.FormatInt(cfg.maxConns, 10)+"; retry later or on another node")
		return nil, false
	}
	if ok, wait := l.upgrades.take(time.Now()); !ok {
		a.free()
		e.refuseLimit(w, r, refusedUpgradeRate, http.StatusServiceUnavailable, limitsRetryAfter(wait),
			"too many new connections: over upgrade_rate; retry after Retry-After")
		return nil, false
	}
	a.holds.Store(holdRequest)
	return r.WithContext(context.WithValue(r.Context(), admissionKey{}, a)), true
}

// leaveAdmission gives back the request's hold on its admission: ServeHTTP defers
// it after admit.
func leaveAdmission(r *http.Request) {
	if a := admissionOf(r); a != nil {
		a.drop(holdRequest)
	}
}

// keepAdmission hands r's admission to the connection that outlives the request,
// which must call release when it ends; it returns nil (a no-op release)
// for a request admit let through uncounted.
func keepAdmission(r *http.Request) *admission {
	a := admissionOf(r)
	if a != nil {
		a.holds.Or(holdConn)
	}
	return a
}

// release gives back a kept admission: the connection ended. It is safe on
// nil and more than once.
func (a *admission) release() {
	if a != nil {
		a.drop(holdConn)
	}
}

func admissionOf(r *http.Request) *admission {
	a, _ := r.Context().Value(admissionKey{}).(*admission)
	return a
}

// drop clears hold; the last holder to go frees the counts.
func (a *admission) drop(hold uint32) {
	old := a.holds.And(^hold)
	if old&hold != 0 && old&^hold == 0 {
		a.free()
	}
}

// free takes the admission out of the counts.
func (a *admission) free() {
	l := a.l
	l.active.Add(-1)
	ip := a.addr()
	if !ip.IsValid() {
		return
	}
	l.mu.Lock()
	if n := l.perIP[ip] - 1; n > 0 {
		l.perIP[ip] = n
	} else {
		delete(l.perIP, ip)
	}
	l.mu.Unlock()
}

// clientAddr is the client's IP: clientIP's answer, else the TCP peer.
func clientAddr(r *http.Request, clientIP func(*http.Request) string) netip.Addr {
	s := ""
	if clientIP != nil {
		s = clientIP(r)
	}
	if s == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return netip.Addr{}
		}
		s = host
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap().WithZone("")
}

// refuseLimit counts a refusal and answers it: JSON {"error"}, Retry-After, and
// over HTTP/1.1 Connection: close, so that a refused client gives its
// descriptor back at once.
func (e *Engine) refuseLimit(w http.ResponseWriter, r *http.Request, why refusal, status int, retryAfter time.Duration, msg string) {
	e.countRefusal(why)
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	if r.ProtoMajor == 1 {
		h.Set("Connection", "close")
	}
	_ = writeError(w, status, msg)
}

// countRefusal counts a refusal and warns about it at most once per
// refusalLogEvery and reason.
func (e *Engine) countRefusal(why refusal) {
	n := e.lim.refused[why].Add(1)
	now := time.Now().UnixNano()
	last := e.lim.logged[why].Load()
	if now-last < int64(refusalLogEvery) || !e.lim.logged[why].CompareAndSwap(last, now) {
		return
	}
	e.logger.Warn("refusing clients over a limit", zap.String("limit", refusalNames[why]), zap.Uint64("refused_total", n))
}

// keyFull ends a WebSocket-borne session whose register found the key at
// max_followers_per_key: 4429 (native clients get the error message first).
func (e *Engine) keyFull(s ender) {
	e.countRefusal(refusedPerKey)
	s.fail(protocol.CloseOverLimit, "too_many_followers", "this key has max_followers_per_key followers on this node", false)
}

// limitsCapRetryAfter is the Retry-After of a refusal by a cap: capRetryAfter plus up
// to 100% jitter.
func limitsCapRetryAfter() time.Duration {
	return limitsRetryAfter(capRetryAfter + rand.N(capRetryAfter))
}

// limitsRetryAfter rounds wait, plus up to 20% jitter so that clients refused
// together do not all come back in the same second, up to whole seconds:
// at least one, at most maxRetryAfter.
func limitsRetryAfter(wait time.Duration) time.Duration {
	if wait > 0 {
		wait += rand.N(wait/5 + 1)
	}
	s := (wait + time.Second - 1) / time.Second * time.Second
	return min(max(s, time.Second), maxRetryAfter)
}

// bucket is a token bucket. A refused taker is promised the next token not
// already promised to a taker refused before, so that a storm comes back
// spread at the bucket's pace instead of all at the first refill. Promises
// reserve nothing: a promised client may find the token taken and be
// refused again, with a later promise.
type bucket struct {
	mu       sync.Mutex
	rate     float64 // tokens per second; 0: unlimited
	burst    float64
	tokens   float64
	last     time.Time // when tokens was last brought up to date
	promised time.Time // the latest promise made to a refused taker
}

// set configures the bucket; an unchanged rate keeps its state, a changed
// one starts full (a reload is no reason to refuse).
func (b *bucket) set(r Rate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	burst := float64(r.Burst)
	if burst <= 0 {
		burst = max(1, math.Ceil(r.PerSecond))
	}
	if r.PerSecond <= 0 {
		b.rate, b.burst = 0, 0
		return
	}
	if b.rate == r.PerSecond && b.burst == burst {
		return
	}
	b.rate, b.burst, b.tokens = r.PerSecond, burst, burst
	b.last, b.promised = time.Time{}, time.Time{}
}

// take takes a token at now. Without one it returns false and how long
// the taker should wait.
func (b *bucket) take(now time.Time) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rate <= 0 {
		return true, 0
	}
	if !b.last.IsZero() {
		if dt := now.Sub(b.last).Seconds(); dt > 0 {
			b.tokens = min(b.burst, b.tokens+dt*b.rate)
		}
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	per := time.Duration(float64(time.Second) / b.rate)
	at := now.Add(time.Duration((1 - b.tokens) * float64(time.Second) / b.rate))
	if next := b.promised.Add(per); next.After(at) {
		at = next
	}
	if limit := now.Add(maxRetryAfter); at.After(limit) {
		at = limit
	}
	b.promised = at
	return false, at.Sub(now)
}
