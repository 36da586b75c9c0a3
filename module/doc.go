// Package module is push_gateway's Caddy glue. It holds no gateway logic of
// its own; it maps Caddy's configuration and lifecycle onto the gateway
// package:
//
//   - app.go: the `push_gateway` app (global options) and the package-level
//     usage pool that keeps one gateway.Engine per process alive across
//     `caddy reload` (invariant I8);
//   - handler.go: the `http.handlers.push_gateway` route handler;
//   - caddyfile.go: the `push_gateway` directive and global option;
//   - cluster.go: the broker and node options, and the Redis broker the
//     Engine is built around (closed after the Engine, in Destruct);
//   - admin.go: the `admin.api.push_gateway` routes (publish, stats,
//     nodes, keys);
//   - publish.go: the parser of publish bodies;
//   - limits.go: the `limits` block (admission limits) and the publish
//     route's publish_rate check;
//   - metrics.go: the Prometheus collector in Caddy's registry (read at
//     scrape time from the running Engine).
//
// Goroutines: this package starts none. The Engine owns its poller and
// workers; Caddy owns the goroutines that call Provision, ServeHTTP and the
// admin handlers.
//
// Concurrency: the usage pool is goroutine-safe; an App is provisioned by one
// goroutine and only read afterwards, except for its pending route table,
// which has its own mutex. Handlers are read-only after Provision.
package module
