package main

import "fmt"

// runStorm drops every client at once (their generators are killed, so the
// kernel closes every socket), publishes t.storm messages while they are
// away, and reconnects all of them at once from new generators with many
// handshakes in flight. Native clients resume with since/epoch: the
// messages they missed must arrive, in order, before the next live one.
// Socket.IO has no resume (FeatureProbe's SDKs refetch the toggles on the
// `update ""` that answers register), so there only the reconnect is
// measured.
func (t *trial) runStorm() error {
	s := &t.r.Storm
	since := t.next - 1
	t.stopFleet(true)
	for range t.storm {
		if _, err := t.publishNext(); err != nil {
			return fmt.Errorf("publishing while the clients are away: %w", err)
		}
	}
	s.Missed = t.storm
	a := fleetArgs{key: t.key, concurrency: t.stormConc}
	if t.srv.proto == protoNative {
		s.Resumes = true
		a.since, a.epoch = since, t.epoch
	}
	fc, err := t.startFleet("storm", a)
	s.Connected, s.Seconds, s.HandshakeP50, s.HandshakeP99 = fc.connected, fc.seconds, fc.handP50, fc.handP99
	if fc.seconds > 0 {
		s.PerS = float64(fc.connected) / fc.seconds
	}
	if err != nil {
		return err
	}
	// One live message after the storm: per-connection order puts every
	// replayed one before it, so once it is everywhere the summary counts
	// what never came.
	p, err := t.publishNext()
	if err != nil {
		return err
	}
	if _, err := t.collect(p.seq); err != nil {
		return err
	}
	sum, err := t.summary(p.seq)
	if err != nil {
		return err
	}
	if s.Resumes {
		s.Lost = sum.Gaps + sum.Missing
	}
	s.Duplicates, s.Resyncs = sum.Duplicates, sum.Resyncs
	return nil
}
