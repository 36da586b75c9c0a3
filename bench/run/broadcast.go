package main

import (
	"fmt"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/procstat"
)

// publishNext publishes t.key's next message.
func (t *trial) publishNext() (published, error) {
	p, err := t.srv.publish(t.key, t.next)
	if err != nil {
		return p, err
	}
	t.next++
	if p.epoch != "" {
		t.epoch = p.epoch
	}
	return p, nil
}

// broadcastAll runs the warm-up and the measured broadcasts and the CPU
// accounting around the latter. It answers the last seq published.
func (t *trial) broadcastAll() (int64, error) {
	r := t.r
	for range t.warmup {
		if _, err := t.broadcast(); err != nil {
			return 0, fmt.Errorf("warm-up: %w", err)
		}
	}
	cpu0, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return 0, err
	}
	gcpu0, err := sumCPU(t.gens)
	if err != nil {
		return 0, err
	}
	var last int64
	for range t.broadcasts {
		b, err := t.broadcast()
		if err != nil {
			return 0, err
		}
		r.Broadcasts = append(r.Broadcasts, b)
		r.Deliveries += b.Received
		last = b.Seq
	}
	cpu1, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return 0, err
	}
	gcpu1, err := sumCPU(t.gens)
	if err != nil {
		return 0, err
	}
	r.ServerCPUS = cpu1 - cpu0
	r.LoadgenCPUS = gcpu1 - gcpu0
	if r.Deliveries > 0 {
		r.ServerCPUPerDelUS = r.ServerCPUS * 1e6 / float64(r.Deliveries)
		r.LoadgenCPUPerDelUS = r.LoadgenCPUS * 1e6 / float64(r.Deliveries)
	}
	r.Median = medianBroadcast(r.Broadcasts)
	return last, nil
}

// broadcast publishes one stamped message and collects every generator's
// receipt latencies for it.
func (t *trial) broadcast() (Broadcast, error) {
	p, err := t.publishNext()
	if err != nil {
		return Broadcast{}, err
	}
	b, err := t.collect(p.seq)
	if err != nil {
		return b, err
	}
	b.PublishMS = ms(p.took)
	// A short pause so that one broadcast's tail never overlaps the next.
	time.Sleep(50 * time.Millisecond)
	return b, nil
}

// runBurst publishes t.burst messages back to back and waits for the last
// one to reach everyone; per-connection order means the others have too,
// and any that did not show up as lost in the summary.
func (t *trial) runBurst() (int64, error) {
	r := t.r
	cpu0, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return 0, err
	}
	start := time.Now()
	var p published
	for range t.burst {
		if p, err = t.publishNext(); err != nil {
			return 0, err
		}
	}
	b, err := t.collect(p.seq)
	if err != nil {
		return 0, err
	}
	cpu1, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return 0, err
	}
	r.Burst = t.burst
	// To the last receipt, not to when the runner noticed it.
	r.BurstS = p.stamp.Sub(start).Seconds() + b.LastMS/1e3
	r.BurstDeliveries = int64(t.burst) * b.Received
	if r.BurstS > 0 {
		r.BurstDelPS = float64(r.BurstDeliveries) / r.BurstS
	}
	if r.BurstDeliveries > 0 {
		r.BurstCPUPerDelUS = (cpu1 - cpu0) * 1e6 / float64(r.BurstDeliveries)
	}
	return p.seq, nil
}

// collect asks every generator for seq's latencies and summarizes them.
func (t *trial) collect(seq int64) (Broadcast, error) {
	b := Broadcast{Seq: seq}
	waitMS := int(t.waitLimit / time.Millisecond)
	for _, g := range t.gens {
		if err := g.send("wait %d %d", seq, waitMS); err != nil {
			return b, err
		}
	}
	var lat []int64
	for _, g := range t.gens {
		var m broadcastMsg
		if err := g.read(&m, t.waitLimit+10*time.Second); err != nil {
			return b, err
		}
		if m.Type != "broadcast" {
			return b, fmt.Errorf("%w: %s", ErrLoadgen, m.Error)
		}
		b.Expected += m.Expected
		b.Received += m.Received
		lat = append(lat, m.LatNS...)
	}
	summarize(&b, lat)
	return b, nil
}
