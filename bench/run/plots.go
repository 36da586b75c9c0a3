package main

import "github.com/pushgateway/push_gateway/bench/internal/peers"

// refreshPlots redraws docs/bench's plots and peers.md (see bench/plots)
// from the results just written into out.
func refreshPlots(out string) { peers.AfterRun(out) }
