package redis

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/hub"
)

// DefaultPrefix starts every Redis key and channel name the broker uses.
const DefaultPrefix = "pg"

// metaGrace is how much longer a key's meta hash (epoch, seq) lives than
// its history: a meta that ran out means a new epoch, and clients resync
// rather than miss messages, but while the history lives the meta must.
const metaGrace = 24 * time.Hour

// ErrBadPrefix is returned by New for a key prefix holding { or }, which
// would move the hash tag every key's slot depends on.
var ErrBadPrefix = errors.New("redis broker: key prefix must not contain { or }")

// Options configure a Broker.
type Options struct {
	URL         string        // see ParseURL
	HistorySize int           // messages kept per key in the shared history; 0 keeps none
	HistoryTTL  time.Duration // age limit of held messages; 0: none
	Prefix      string        // key prefix; "" means DefaultPrefix
	Logger      *zap.Logger   // nil: no logs
}

// Status is the broker's state for stats.
type Status struct {
	Mode        string `json:"mode"`  // single, sentinel or cluster
	URL         string `json:"url"`   // password redacted
	State       string `json:"state"` // up or down
	LastError   string `json:"last_error,omitempty"`
	TrackedKeys int    `json:"tracked_keys"`
	Reconnects  uint64 `json:"reconnects"`  // pub/sub connections re-established
	Publishes   uint64 `json:"publishes"`   // messages stored by this node
	RoundTrips  uint64 `json:"round_trips"` // commands and pipelines sent (pub/sub excluded)
}

// States Status reports.
const (
	StateUp   = "up"
	StateDown = "down"
)

// limits are the history bounds a Caddy reload may change.
type limits struct {
	size int
	ttl  time.Duration
}

// Broker shares keys between gateway nodes through Redis. It implements
// hub.Broker and hub.Registry; see the package documentation.
type Broker struct {
	mode   string
	url    string // redacted
	prefix string
	log    *zap.Logger
	client goredis.UniversalClient
	limits atomic.Pointer[limits]

	recvTimeout time.Duration // receiveTimeout; tests shorten it before Start

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the control and receive goroutines
	closed sync.Once
	sink   hub.Sink // set by Start, before the goroutines run

	psMu sync.Mutex // guards ps; held while subscribing so a reset loses no channel
	ps   *goredis.PubSub

	qmu   sync.Mutex
	queue []op          // Track, Untrack, Refill and resubscriptions, in call order
	wake  chan struct{} // a buffered nudge for the control goroutine

	pmu       sync.Mutex
	pending   []*publishCall // publishes waiting for a pipeline (pipeline.go)
	pipelines int            // pipelines on the way

	kmu  sync.Mutex
	keys map[string]*keyState // tracked keys

	publishes, roundTrips, reconnects atomic.Uint64

	smu     sync.Mutex
	up      bool
	lastErr string
}

// keyState is what the broker knows of a tracked key: what it last handed
// to the sink, from which a reconnection syncs.
type keyState struct {
	handed bool
	epoch  string
	seq    uint64
}

// New parses opts.URL and creates the client. It does not wait for Redis:
// a node may start during an outage, and the broker keeps trying in the
// background once started.
func New(opts Options) (*Broker, error) {
	copts, mode, err := ParseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("%w: %q", ErrBadPrefix, prefix)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	} else {
		goredis.SetLogger(goredisLog{log})
	}
	b := &Broker{
		mode:   mode,
		url:    Redact(opts.URL),
		prefix: prefix,
		log:    log,
		client: goredis.NewUniversalClient(copts),
		wake:   make(chan struct{}, 1),

		recvTimeout: receiveTimeout,
		keys:        make(map[string]*keyState),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.client.AddHook(countHook{b})
	b.Configure(opts.HistorySize, opts.HistoryTTL)
	return b, nil
}

// Configure changes the history bounds (a Caddy reload). They apply to
// later publishes and syncs; keys nobody writes to keep theirs until then.
func (b *Broker) Configure(historySize int, ttl time.Duration) {
	b.limits.Store(&limits{size: max(historySize, 0), ttl: max(ttl, 0)})
}

// Start hands the broker the hub and starts its goroutines.
func (b *Broker) Start(s hub.Sink) {
	b.sink = s
	b.ps = b.client.Subscribe(b.ctx) // no channel yet: no connection either
	b.wg.Add(2)
	go b.control()
	go b.receive()
}

// Close stops the goroutines and closes the clients. It is idempotent.
func (b *Broker) Close() error {
	var err error
	b.closed.Do(func() {
		b.cancel()
		b.closePubSub() // unblocks Receive
		b.wg.Wait()
		b.closePubSub() // one resetPubSub made meanwhile
		err = b.client.Close()
	})
	return err
}

func (b *Broker) closePubSub() {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	if b.ps != nil {
		_ = b.ps.Close() // ErrClosed the second time
	}
}

// Status reports the broker's state.
func (b *Broker) Status() Status {
	b.kmu.Lock()
	tracked := len(b.keys)
	b.kmu.Unlock()
	b.smu.Lock()
	state, lastErr := StateDown, b.lastErr
	if b.up {
		state = StateUp
	}
	b.smu.Unlock()
	return Status{
		Mode:        b.mode,
		URL:         b.url,
		State:       state,
		LastError:   lastErr,
		TrackedKeys: tracked,
		Reconnects:  b.reconnects.Load(),
		Publishes:   b.publishes.Load(),
		RoundTrips:  b.roundTrips.Load(),
	}
}

// observe records the outcome of talking to Redis: any answer means up,
// a failure to get one (or an answer saying the store cannot serve) down.
// A caller giving up (context canceled) says neither.
func (b *Broker) observe(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	down := unreachable(err)
	b.smu.Lock()
	was := b.up
	b.up = !down
	if down {
		b.lastErr = err.Error()
	}
	b.smu.Unlock()
	switch {
	case was && down:
		b.log.Warn("redis broker down", zap.String("url", b.url), zap.Error(err))
	case !was && !down:
		b.log.Info("redis broker up", zap.String("url", b.url))
	}
}

// unreachable reports whether err means Redis could not be reached or
// cannot serve now, as opposed to a reply to a bad command.
func unreachable(err error) bool {
	if err == nil || errors.Is(err, goredis.Nil) {
		return false
	}
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return true // no reply: dial, I/O, timeout, pool or closed client
	}
	for _, p := range []string{"CLUSTERDOWN", "LOADING", "MASTERDOWN", "TRYAGAIN", "READONLY", "NOREPLICAS", "BUSY"} {
		if strings.HasPrefix(rerr.Error(), p) {
			return true
		}
	}
	return false
}

// unavailable wraps a failed Redis call for the hub: the admin answers 503.
func unavailable(what string, err error) error {
	return fmt.Errorf("redis broker: %s: %w: %w", what, hub.ErrUnavailable, err)
}

// newEpoch returns a candidate epoch: 8 random base32 characters (40 bits)
// and "-r", telling it from a single node's epochs in logs.
func newEpoch() string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:])) + "-r"
}

// Redis names for a key K: the meta hash {e, s}, the history stream and the
// pub/sub channel share the hash tag {k:K}, so a key's script runs on one
// slot; "k:" keeps the tag non-empty when K starts with "}" and apart from
// the registry's {nodes}. A fixed text around K keeps the mapping one to one.
func (b *Broker) metaKey(key string) string   { return b.prefix + ":{k:" + key + "}:m" }
func (b *Broker) streamKey(key string) string { return b.prefix + ":{k:" + key + "}:h" }
func (b *Broker) channel(key string) string   { return b.prefix + ":{k:" + key + "}" }

// keyOf returns the key a channel carries.
func (b *Broker) keyOf(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, b.prefix+":{k:")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}")
}

func (b *Broker) keysOf(key string) []string {
	return []string{b.metaKey(key), b.streamKey(key)}
}

// ttlArgs returns the history size and the stream's and meta's time to live
// in ms (0: none) for a script.
func (b *Broker) ttlArgs() (size int, ttl, metaTTL int64) {
	l := b.limits.Load()
	if l.ttl > 0 {
		ttl = max(l.ttl.Milliseconds(), 1)
		metaTTL = ttl + metaGrace.Milliseconds()
	}
	return l.size, ttl, metaTTL
}

var (
	_ hub.Broker   = (*Broker)(nil)
	_ hub.Registry = (*Broker)(nil)
)
