// Command baseline is the "home-grown hub" push_gateway is measured against:
// what a team would write with net/http and gorilla/websocket, following the
// library's own chat example. Every connection has a reader goroutine and a
// writer goroutine fed by a buffered channel; followers of a key sit in a map
// under one mutex. It speaks the subset of the native protocol the load
// benchmark uses (../../../shared/CONTRACT.md):
//
//   - GET /realtime?sdk_key=K upgrades and answers `registered`, then every
//     message published to K; `register`, `unregister` and `ping` are served.
//   - POST /push_gateway/publish (same body and answer as the contract) and
//     GET /push_gateway/stats (with `goroutines`) on a separate admin listener,
//     as Caddy's admin endpoint is separate from the site.
//
// On start it prints one JSON line to stdout with the two listen addresses,
// {"client":"127.0.0.1:P","admin":"127.0.0.1:Q"}, so a runner can bind :0.
//
// Goroutines: main owns the two HTTP servers; each connection owns its reader
// and writer; the hub is goroutine-safe (one mutex). Not for production: no
// history, no resume, no heartbeat beyond what the flags ask.
package main
