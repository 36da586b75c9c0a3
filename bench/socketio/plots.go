package main

import "github.com/pushgateway/push_gateway/bench/internal/peers"

// refreshPlots redraws docs/bench's plots and peers.md (see bench/plots)
// when out is docs/bench/socketio (or another root's socketio directory).
func refreshPlots(out string) { peers.AfterRun(out, true) }
