package main

import "sync/atomic"

// stats are the process-wide counters shared by every reader goroutine.
type stats struct {
	duplicates atomic.Int64 // messages with a seq already seen
	gaps       atomic.Int64 // seqs skipped between two messages
	unparsed   atomic.Int64 // messages without a readable seq
	resyncs    atomic.Int64 // native `resync` messages (0 in a good resume)
	alive      atomic.Int64 // connections whose reader is running
	received   atomic.Int64 // live messages received, reset by `hist reset`

	lat hist // latency of every received live message with a stamp

	count  []atomic.Int64 // count[seq]: connections that received seq
	notify chan int64     // gets seq when count[seq] reaches alive
}

func newStats(maxSeq int) *stats {
	return &stats{count: make([]atomic.Int64, maxSeq+1), notify: make(chan int64, 1)}
}

// arrived counts one receipt of seq and wakes the waiter when it was the last.
func (s *stats) arrived(seq int64) {
	if s.count[seq].Add(1) >= s.alive.Load() {
		select {
		case s.notify <- seq:
		default:
		}
	}
}
