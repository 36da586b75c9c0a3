package hub

import (
	"context"
	"errors"
	"time"
)

// This file is the hub's side of cluster mode. With a Broker (WithBroker),
// seqs, epochs and history live in a store shared by every gateway node
// (broker/redis), and the hub keeps a mirror of the keys this node has
// followers for:
//
//   - Publish asks the broker to assign the next seq and append the message
//     to the shared history; the broker fans it out to every node tracking
//     the key, this one included, and the message reaches local followers
//     through Sink.Apply like anybody else's. Publish answers once its
//     message has been applied here (or the key is not followed here).
//   - A key gets a mirror when it gets its first local follower: the hub
//     calls Broker.Track, the broker subscribes to the key's messages and
//     then reads the key's state (Sink.Sync). Followers that register
//     meanwhile get registered, replay or resync when the state arrives,
//     under the shard lock, so I1 holds as in single-node mode.
//   - A message that does not follow the mirror's newest seq (lost by the
//     broker's transport, or a new epoch) makes the hub ask for a refill
//     (Broker.Refill): the broker answers with the entries after the
//     mirror's seq, or with a new epoch, and followers get the missing
//     messages in order, or resync. They never see a gap.
//   - A mirror nobody has followed for emptyKeyGrace is dropped and the key
//     untracked.

// ErrUnavailable wraps a broker's failure to reach its store: the publish
// or read was not done, and the caller may retry (admin: 503).
var ErrUnavailable = errors.New("hub: broker unavailable")

// Entry is one message as the shared store holds it.
type Entry struct {
	Key   string
	Epoch string
	Seq   uint64
	Event string
	Data  []byte
	TS    int64 // publish time, Unix milliseconds (the store's clock)
}

// Snapshot is a key's state in the shared store.
type Snapshot struct {
	Epoch string
	Seq   uint64 // newest seq; 0 before the first publish
	// History holds contiguous entries ending at Seq, oldest first: the
	// entries after the seq asked for, or the whole held history (at most
	// the history size) when the store's epoch is not the one asked for.
	// It may start later than asked when the store no longer holds them.
	History []Entry
	// Held is how many messages the store holds for the key (for KeyInfo).
	Held int
}

// Broker shares keys between gateway nodes. Implementations must be
// goroutine-safe. Track, Untrack and Refill are called with a hub shard
// lock held: they must not block and must not call back into the hub; the
// broker answers later through the Sink, from its own goroutines. Calls for
// one key reach the broker in the order the hub made them.
type Broker interface {
	// Start hands the broker the hub to deliver to. New calls it once,
	// before any other method.
	Start(s Sink)
	// Publish assigns key's next seq in the shared store (creating the
	// key's epoch when it has none), appends the message to the shared
	// history and hands it to every node tracking key. It returns the
	// stored entry. An error wrapping ErrUnavailable means nothing was
	// stored.
	Publish(ctx context.Context, key, event string, data []byte) (Entry, error)
	// Track starts delivering key's messages to Sink.Apply and then calls
	// Sink.Sync with the key's whole held history (creating the key's epoch
	// when it has none). While the store is unreachable the broker keeps
	// trying; Sync comes when it can.
	Track(key string)
	// Untrack stops delivering key's messages.
	Untrack(key string)
	// Refill asks for Sink.Sync of a tracked key with the entries after
	// seq when the store's epoch is epoch (else the whole held history).
	Refill(key, epoch string, seq uint64)
	// State reads key's state without tracking it: History holds nothing,
	// Held says how many messages the store holds. ok is false when the
	// store has no state for key.
	State(ctx context.Context, key string) (s Snapshot, ok bool, err error)
	// Drop deletes key's state from the store and tells every node
	// (Sink.Drop), this one included. It returns the state as it was.
	Drop(ctx context.Context, key string) (s Snapshot, ok bool, err error)
}

// Sink is how a broker reaches the hub. The hub's methods of the same names
// implement it.
type Sink interface {
	// Apply hands over one message of a tracked key, in the store's order.
	Apply(e Entry)
	// Sync hands over a tracked key's state (after Track, Refill, or a
	// reconnection to the store that may have lost messages).
	Sync(key string, s Snapshot)
	// Drop says that key's state in epoch was dropped from the store: its
	// followers here are closed with ReasonKeyDropped and its mirror
	// forgotten — unless the mirror is newer than the drop (not synced
	// yet, or synced to another epoch): a client that came back at once
	// must not lose the state it just made.
	Drop(key, epoch string)
}

// syncTimeout bounds how long Read waits for a key's first Sync: a long
// poll on an untracked key while the store is down answers ErrUnavailable
// rather than hanging.
const syncTimeout = 5 * time.Second

// publishApplyTimeout bounds how long Publish waits for its own message to
// come back through the broker before answering with no local receivers
// (and asking for a refill, in case the message was lost on the way).
const publishApplyTimeout = 2 * time.Second

// brokerTimeout bounds one call into the broker made by the hub itself
// (KeyInfo, DropKey): the admin API must answer even when the store hangs.
const brokerTimeout = 5 * time.Second

// Node is one gateway node as the node registry lists it, for clients that
// pick a gateway (seed 003's ip-config) and for operators.
type Node struct {
	ID          string `json:"id"`
	Address     string `json:"address,omitempty"` // public base URL clients connect to, e.g. wss://gw1.example.com/realtime
	Zone        string `json:"zone,omitempty"`
	Connections int    `json:"connections"`
	Started     int64  `json:"started"` // Unix ms
	Updated     int64  `json:"updated"` // Unix ms of the latest announcement
}

// Registry lists live nodes. A broker that shares keys between nodes also
// implements it; in single-node mode the gateway lists only itself.
type Registry interface {
	// Announce records n with a time to live: a node that stops
	// announcing (killed) leaves the list when it runs out.
	Announce(ctx context.Context, n Node, ttl time.Duration) error
	// Leave removes the node with id at once (a graceful stop).
	Leave(ctx context.Context, id string) error
	// Nodes lists the live nodes, least connections first.
	Nodes(ctx context.Context) ([]Node, error)
}
