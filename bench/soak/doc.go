// Command soak runs push_gateway under a bounded, realistic churn for
// minutes and proves it loses nothing and holds its memory flat:
//
//	go run ./bench/soak -clients 5000 -duration 3m -out docs/bench/soak
//
// It builds caddy from ./cmd/caddy (or takes -gateway-bin), starts one node
// (in-process hub; with -redis <url> in cluster mode on a redis-server the
// caller started), fills every key's history, and opens -clients native
// WebSocket clients, one goroutine each, dialled from the source addresses
// 127.0.0.2–254. Each follows one to three of -keys keys; some are slow
// readers (they sleep after every frame, yet keep up with their keys) and a
// few are stallers that follow every key and stop reading for -stall from
// time to time, until the gateway closes them as slow consumers (4429).
//
// The load runs twice: a warm-up (by default long enough to replace every
// key's history once, so that the history holds what it holds in the
// steady state: messages encoded for their followers), then -duration. Meanwhile a publisher
// posts -rate messages a second over the keys (batched every 50ms), and
// every client drops its connection at random, on average every
// -drop-every, and reconnects at once, resuming each key from the last seq
// it handled (register with since and epoch). After each phase the load
// pauses, every client catches up with the last published seq of each of
// its keys, and caddy's RSS is read after forced collections and settling:
// the figure after the warm-up is the start, the one after -duration the
// end, and the run fails unless the end is within 10% of the start.
//
// Every client judges every message against its position per key: the
// next seq is handled, a seq skipped is lost, an older one a duplicate, a
// new epoch without a resync a violation. A resync is counted, and allowed
// only where the contract allows it: the seqs missed exceed what the
// history holds. A client's 4429 close is counted as a slow close, not as
// loss: it resumes, and must then get everything it missed. The run fails
// unless lost, duplicates, violations and unexplained resyncs are all 0.
// Results go to -out as results.json and results.md (and the table to
// stdout). With -keep the work directory stays, with caddy's log and its
// heap profiles at the start and the end (go tool pprof -base).
package main
