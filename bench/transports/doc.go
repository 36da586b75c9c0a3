// Command transports measures what each client transport of push_gateway
// costs, in one run:
//
//	go run ./bench/transports -out /tmp/transports
//
// It builds caddy from ./cmd/caddy (or takes -gateway-bin) and measures, in
// turn: native WebSocket; the same over TLS (websocket-tls: wss:// with
// HTTP/1.1 by ALPN, as browsers open it, on a TLS site with tls internal,
// whose certificate the clients do not verify), where the gateway keeps
// crypto/tls state per connection; Server-Sent Events over HTTP/1.1; long
// poll; and SSE over HTTP/2 on the TLS site, where Go's server needs a
// goroutine per stream. Each transport gets a caddy process of its own,
// started with a generated Caddyfile (heartbeat 1h, so that no heartbeat
// falls inside a measurement): heap pages freed by an earlier transport
// would otherwise be reused by the next one's connections and hide part of
// their RSS. For each transport it:
//
//  1. forces a GC in caddy (GET <admin>/debug/pprof/heap?gc=1&debug=1),
//     waits for its VmRSS to settle and reads goroutines from
//     /push_gateway/stats;
//  2. opens -n idle clients following one key of that transport (long
//     polls are held with wait=60s) and waits until the stats count them;
//  3. reads the same figures again: the deltas divided by -n are the cost
//     of one idle connection;
//  4. publishes -warmup, then -publishes messages stamped with the wall
//     clock in data, one after the other once the last reached every
//     client (long-poll clients re-poll at once after each answer; the next
//     publish waits until they are all held again), recording each
//     receipt's delay in the client: p50/p99/max publish→deliver;
//  5. reads caddy's utime+stime around the measured publishes: server CPU
//     per delivery (publish handling and, for long poll, the re-polls
//     included, since they are what delivery costs on that transport).
//
// With -heap-profiles DIR, caddy's heap profile is also saved before and
// after each transport's idle clients, for
// go tool pprof -sample_index=inuse_space -top -diff_base=DIR/T-before.pb.gz DIR/T-after.pb.gz
// (a diagnosis run: fetching the profiles moves the published figures).
//
// Clients run in this process, one goroutine each, spread over source
// addresses 127.0.0.2–254; the open-files limit is raised first. Results go
// to -out as results.json and results.md (and the table to stdout). Every
// wait is bounded; the whole run takes well under three minutes.
package main
