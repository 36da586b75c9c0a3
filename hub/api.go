package hub

import (
	"errors"
	"time"
)

// This file is the hub's public surface. The implementation lives in hub.go
// (Hub), shard.go (key states), history.go (rings, TTL, global cap),
// subscription.go (Follow and friends), message.go (Message, Format, key
// rules) and options.go.

// Sentinel errors.
var (
	// ErrClosed is returned by operations on a closed Hub or Subscription.
	ErrClosed = errors.New("hub: closed")
	// ErrTooManyKeys is returned by Follow when the subscription already
	// follows the configured maximum number of keys.
	ErrTooManyKeys = errors.New("hub: too many keys on one connection")
	// ErrTooManyFollowers is returned by Follow when the key already has
	// the configured maximum number of local followers.
	ErrTooManyFollowers = errors.New("hub: too many followers of one key")
	// ErrBadKey is returned for an empty SDK key, one longer than MaxKeyLen
	// bytes, or one holding control characters.
	ErrBadKey = errors.New("hub: invalid sdk key")
	// ErrBadEvent is returned by Publish for an event name that is empty after
	// defaulting, longer than MaxEventLen, or holds control characters.
	ErrBadEvent = errors.New("hub: invalid event name")
)

const (
	// MaxKeyLen bounds an SDK key's length in bytes.
	MaxKeyLen = 256
	// MaxEventLen bounds an event name's length in bytes.
	MaxEventLen = 128
	// DefaultEvent is the event name of a publish that names none.
	DefaultEvent = "update"
)

// Reason tells a Follower why the hub closes it. Transports map reasons to
// their own close codes (native WebSocket: 4429, 4401).
type Reason uint8

const (
	// ReasonSlowConsumer: the follower's queue was full when a message had
	// to be queued (invariant I3).
	ReasonSlowConsumer Reason = iota + 1
	// ReasonKeyDropped: an operator dropped a key the follower follows.
	ReasonKeyDropped
	// ReasonShutdown: the hub is shutting down.
	ReasonShutdown
)

// NoticeKind says what a Notice announces.
type NoticeKind uint8

const (
	// NoticeRegistered: the key is followed; Seq is the key's newest seq.
	NoticeRegistered NoticeKind = iota + 1
	// NoticeResync: history cannot cover the since given; Seq is the
	// key's newest seq, from which live messages continue.
	NoticeResync
)

// Notice is a per-follower control message: registered or resync.
type Notice struct {
	Kind  NoticeKind
	Key   string
	Epoch string
	Seq   uint64
}

// Follower is a connection as the hub sees it. Implementations belong to the
// transports (netpoll WebSockets, SSE, ...).
//
// Deliver and Notify are called with a hub shard lock held, in the order the
// follower must write them; they must not block and must not call back into
// the hub. They return false when the follower's bounded queue is full: the
// hub then counts a drop and, after releasing its lock, calls
// Close(ReasonSlowConsumer) once.
//
// Close is called without hub locks held; it must not block either (it
// schedules the close). The transport calls Subscription.Close when the
// connection is gone.
type Follower interface {
	Deliver(m *Message) bool
	Notify(n Notice) bool
	Close(r Reason)
}

// Published is the outcome of one Publish.
type Published struct {
	Key            string `json:"sdk_key"`
	Epoch          string `json:"epoch"`
	Seq            uint64 `json:"seq"`
	LocalReceivers int    `json:"local_receivers"`
}

// KeyInfo describes one key.
type KeyInfo struct {
	Key       string `json:"sdk_key"`
	Epoch     string `json:"epoch"`
	Seq       uint64 `json:"seq"`
	History   int    `json:"history"`
	Followers int    `json:"followers"`
}

// Stats are the hub's counters, read without stopping publishers.
type Stats struct {
	Keys               int    `json:"keys"`
	Published          uint64 `json:"published"`
	Delivered          uint64 `json:"delivered"`
	Dropped            uint64 `json:"dropped"`
	SlowConsumerCloses uint64 `json:"slow_consumer_closes"`
	Registers          uint64 `json:"registers"` // successful Follow calls (register requests)
	HistoryMessages    int64  `json:"history_messages"`
	HistoryBytes       int64  `json:"history_bytes"`
	HistoryEvicted     uint64 `json:"history_evicted"` // by TTL or the global cap, not by history_size
}

// Option configures a Hub in New or Configure.
type Option func(*config)

// Defaults.
const (
	DefaultHistorySize     = 256
	DefaultHistoryTTL      = 10 * time.Minute
	DefaultHistoryMaxBytes = 256 << 20
	DefaultMaxKeysPerConn  = 64
)
