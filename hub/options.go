package hub

import "time"

// config is one immutable snapshot of a Hub's settings. Configure swaps in a
// new snapshot; readers load it once per operation.
type config struct {
	historySize    int           // messages kept per key; 0: none
	historyTTL     time.Duration // 0: no age limit
	maxBytes       int64         // global history cap; 0: none
	maxKeysPerConn int           // 0: unlimited
	maxFollowers   int           // local followers per key; 0: unlimited
	now            func() time.Time
	sweepInterval  time.Duration // read by New only
	broker         Broker        // read by New only; nil: single node
}

func defaultConfig() config {
	return config{
		historySize:    DefaultHistorySize,
		historyTTL:     DefaultHistoryTTL,
		maxBytes:       DefaultHistoryMaxBytes,
		maxKeysPerConn: DefaultMaxKeysPerConn,
		now:            time.Now,
		sweepInterval:  DefaultSweepInterval,
	}
}

// DefaultSweepInterval is how often the sweeper expires old history.
const DefaultSweepInterval = time.Second

// WithHistorySize sets how many messages are kept per key. 0 keeps none
// (every resume with a since behind the newest seq gets resync); negative
// values count as 0. Shrinking it in Configure trims live history at once.
func WithHistorySize(n int) Option {
	return func(c *config) { c.historySize = max(n, 0) }
}

// WithHistoryTTL sets how long a message is kept. 0 (or negative) means no
// age limit. Expiry runs on the sweeper's tick, so a message may outlive the
// TTL by up to one sweep interval.
func WithHistoryTTL(d time.Duration) Option {
	return func(c *config) { c.historyTTL = max(d, 0) }
}

// WithHistoryMaxBytes caps the bytes of history held by the whole hub
// (key, event and data of each held message plus a fixed per-message
// overhead). Over the cap the oldest messages are evicted first, whatever
// their key. 0 (or negative) means no cap.
func WithHistoryMaxBytes(n int64) Option {
	return func(c *config) { c.maxBytes = max(n, 0) }
}

// WithMaxKeysPerConn bounds the keys one Subscription may follow; Follow
// beyond it returns ErrTooManyKeys. Subscription.SetMaxKeys overrides it per
// subscription. 0 (or negative) means unlimited.
func WithMaxKeysPerConn(n int) Option {
	return func(c *config) { c.maxKeysPerConn = max(n, 0) }
}

// WithMaxFollowersPerKey bounds the local followers of one key: Follow by a
// subscription not yet following the key returns ErrTooManyFollowers once
// the key has n. Followers already there stay when Configure lowers it.
// 0 (or negative) means unlimited.
func WithMaxFollowersPerKey(n int) Option {
	return func(c *config) { c.maxFollowers = max(n, 0) }
}

// WithClock replaces time.Now, for tests. The clock stamps Message.TS and
// decides TTL expiry.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithSweepInterval sets how often the sweeper runs (default 1s). Only New
// honours it; Configure cannot change the interval of a running sweeper.
// A negative value disables the sweeper (tests drive expiry themselves).
func WithSweepInterval(d time.Duration) Option {
	return func(c *config) { c.sweepInterval = d }
}

// WithBroker puts the hub in cluster mode: seqs, epochs and history live in
// the store behind b, shared with other nodes, and the hub mirrors the keys
// it has followers for (see broker.go). Only New honours it: a running hub
// cannot change its broker. New calls b.Start with the hub.
func WithBroker(b Broker) Option {
	return func(c *config) { c.broker = b }
}
