// Package hub is push_gateway's transport-free core: SDK keys, their
// sequence numbers, epochs and history, the followers of each key and the
// fan-out of published messages to them.
//
// # Model
//
// Every key has a seq (1, 2, 3, ... one per published message) and an epoch,
// an opaque string made when the key's state is created. The state, and with
// it the epoch, is created on the first Publish or Follow of a key and
// deleted when the key has neither history nor followers, or by DropKey; a
// key that comes back therefore gets a new epoch and starts again at seq 1,
// which tells resuming clients the truth (invariant I7): their since cannot
// be served and they get resync.
//
// History is bounded per key (WithHistorySize, WithHistoryTTL) and across
// the hub (WithHistoryMaxBytes, oldest message evicted first, invariant I6).
// Evicted history only narrows the window a since can be served from; a
// since outside the window gets a resync notice, never a silent gap.
//
// # Locking and ordering
//
// Keys are spread over a fixed number of shards, each with one mutex. Publish
// takes only its key's shard lock: it assigns the seq, appends the message to
// history and calls Follower.Deliver on every follower of the key before
// releasing the lock. Subscription.Follow adds the follower, sends the
// registered notice and the replay (or resync) under the same lock, so no
// published message can fall between the replay and the live stream
// (invariant I1), and every follower sees a key's messages in seq order
// (invariant I2). No code path holds two shard locks at once.
//
// Deliver and Notify must therefore not block (invariant I3): a follower whose
// bounded queue is full reports false, the hub stops delivering to it and
// calls Close(ReasonSlowConsumer) once, after releasing the lock.
//
// # Cluster mode
//
// With WithBroker, seqs, epochs and history live in a store shared by every
// gateway node (package broker/redis) and the hub mirrors the keys this node
// has followers for (broker.go, mirror.go). Publish asks the store for the
// seq; the message comes back to every tracking node through Sink.Apply and
// is fanned out from there, under the shard lock, exactly as on a single
// node. A Follow that arrives before the key's state does is answered when
// it arrives (Sink.Sync), under the same lock, so I1 holds across nodes. A
// message that does not follow the mirror's newest seq is held while the
// broker refills the gap from the store's history; when the store no longer
// has it, or its epoch changed, followers get resync (I7). The broker calls
// the Sink from its own goroutines.
//
// # Goroutines and safety
//
// A Hub owns exactly one goroutine, the sweeper started by New, which expires
// history older than the TTL and enforces the global byte cap; Close stops it
// and waits for it. Every method of Hub and Subscription is goroutine-safe.
// A Message is immutable once Publish has returned it to followers; its
// encodings (Message.Encoded) are built lazily, once per Format, and shared.
package hub
