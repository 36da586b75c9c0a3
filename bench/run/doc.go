// Command run is the load benchmark: push_gateway beside its peers in one
// run on one machine.
//
//	go run ./bench/run -out docs/bench      # all four, N = 1k, 5k, 10k, 19k, 3 runs
//
// The servers, one at a time:
//
//   - push_gateway: caddy built from ./cmd/caddy, native WebSocket protocol;
//   - baseline: a goroutine-per-connection gorilla/websocket hub (../baseline);
//   - push_gateway_socketio: the same caddy speaking Socket.IO v4;
//   - socketio: socket.io 4.8.4 on node (reference.mjs, what FeatureProbe's
//     own server does; socket.io comes from npm ci at the repository root).
//
// For each run of the sweep, N and server it starts the server, connects N
// clients with ../loadgen processes (at most -per-proc connections each, as
// one process may hold 20,000 open files; source addresses 127.0.0.2–254)
// and goes through the phases:
//
//  1. idle: RSS per connection after a forced GC and settling, Go heap and
//     stack per connection, goroutines, idle CPU;
//  2. broadcasts: warm-up, then measured messages to all N, each timed from
//     the publisher's stamp to every receipt (p50/p99/p99.9/last), with the
//     server's and the generators' CPU per delivery;
//  3. burst: messages published back to back; deliveries/s, CPU, and RSS
//     again after a GC against the idle RSS;
//  4. reconnect storm: every generator killed at once, messages published
//     while the clients are away, then new generators reconnect all N at
//     once (native clients resume with since/epoch; what they never get is
//     lost);
//  5. steady load: N clients over -steady-keys keys, publishes at
//     -steady-rate for -steady-for, every delivery's latency in a histogram;
//  6. shutdown with every client connected: how each client saw its end
//     (the gateway sends 1001).
//
// The sweep runs -repeat times (repeats outermost) and results.json holds
// every run and the medians; results.md shows the medians, ratio tables
// against each peer and the targets of issue 8. It prints results.md to
// stdout and, with -out, writes results.json, results.md, the plots and
// peers.md there.
//
// Every wait is bounded in time and every loop in count. The runner is a
// single goroutine apart from one reader goroutine per child's stdout (it
// ends when the child exits) and the steady load's publish calls (at most
// 32 in flight, all joined before the phase ends).
package main
