// Package redis is the cluster-mode broker: it keeps every SDK key's
// epoch, seq and history in Redis and fans messages out to the gateway
// nodes that follow the key. It implements hub.Broker and hub.Registry on
// go-redis v9, against a single Redis, a Sentinel-watched master or a Redis
// Cluster (ParseURL). It needs Redis 6.2 or later (XTRIM MINID).
//
// # Redis keys
//
// For an SDK key K, with the prefix P (default "pg"):
//
//	P:{k:K}:m   hash {e: epoch, s: newest seq}; lives the history TTL + 24h after the last publish or sync
//	P:{k:K}:h   stream of the held messages, fields s (seq), e (event), d (data); ID ms = publish time
//	P:{k:K}     pub/sub channel of K's messages
//	P:{nodes}:z sorted set: node ID scored by its expiry (Unix ms)
//	P:{nodes}:h hash: node ID -> hub.Node JSON
//
// K's names share the hash tag {k:K}, so each of K's scripts touches one
// Cluster slot; "k:" keeps the tag non-empty for a K starting with "}" and
// apart from {nodes}. A fixed text around K makes the mapping one to one
// for any K. The meta outlives the history so that a key seen lately keeps
// its epoch; a meta that ran out (or a Redis that restarted empty) means a
// new epoch on the next publish or sync, so clients resync rather than miss
// messages.
//
// # Scripts
//
// Each operation is one Lua script (scripts.go), run by EVALSHA with a
// fallback to EVAL: Publish gets or creates the epoch (from a random
// candidate the caller passes), increments the seq, appends to the stream
// trimmed by size (MAXLEN) and age (MINID), refreshes the expiries and
// PUBLISHes the message, in one round trip, which concurrent publishes
// share: they are pipelined (pipeline.go). Redis runs scripts one at a
// time, so a key's pub/sub messages go out in seq order and the stream
// holds contiguous seqs. The sync script reads the state and the entries a
// tracking node lacks; syncs of many keys go in one pipeline.
//
// # Pub/sub payloads
//
//	m\n<epoch>\n<seq>\n<ts>\n<event>\n<data>   a message (data last: it may hold newlines)
//	d\n<epoch>                                  the key was dropped
//
// Classic PUBLISH/SUBSCRIBE is used: it works the same on a single Redis,
// through Sentinel, and on Redis Cluster, where the cluster bus carries
// every message to every node, so one connection receives all keys. Sharded
// pub/sub (SPUBLISH/SSUBSCRIBE) would spare the bus that broadcast but needs
// a connection per shard; not done yet.
//
// # Goroutines
//
// Start runs two goroutines, both ended by Close:
//
//   - receive reads the one pub/sub connection and calls Sink.Apply and
//     Sink.Drop in the order Redis sent the messages. A subscription
//     confirmation queues a sync of its key.
//   - control runs what Track, Untrack and Refill queued (they only append
//     to a queue: the hub calls them under a shard lock), in call order:
//     SUBSCRIBE and UNSUBSCRIBE in batches, and syncs (Sink.Sync) in
//     pipelines. It pings Redis every second.
//
// Publish queues its script; a publisher that finds a pipeline slot free
// (at most four) sends the queued scripts in pipelines itself until its own
// is answered, and leaves what is still queued to a short-lived goroutine
// that ends when the queue is empty. State, Drop, Announce, Leave, Nodes, Status and Configure run
// on the caller's goroutine; every method is safe for concurrent use.
//
// # Outages
//
// Every call is bounded by its context and by 1s dial, read and write
// timeouts, and nothing is retried blindly (a publish retried after its
// reply was lost would be stored twice): a call that fails returns an error
// wrapping hub.ErrUnavailable, which the admin API answers with 503, and
// Status says "down". Commands are not queued meanwhile. The receive
// goroutine keeps calling Receive with backoff (50ms doubling to 1s);
// go-redis redials and subscribes every channel again, and the
// confirmations make the control goroutine sync each tracked key from the
// (epoch, seq) last handed to the sink: messages published during the
// outage are handed over in order, or, when Redis came back empty, a new
// epoch is, and the hub makes clients resync. A pub/sub connection that
// stops answering pings for 10s is replaced. Syncs that fail are retried
// with the same backoff.
package redis
