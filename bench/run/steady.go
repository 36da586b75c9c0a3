package main

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/procstat"
	benchreport "github.com/pushgateway/push_gateway/bench/internal/report"
)

// publishers bounds the steady load's publish calls in flight: enough that
// a slow answer does not hold the rate back, few enough to stay a publisher
// rather than a load test of the admin endpoint.
const publishers = 32

// runSteady replaces the clients with a fleet spread over t.steadyKeys keys
// (client i follows key-<i mod keys>) and publishes at t.steadyRate for
// t.steadyFor, round-robin over the keys, each call on time whatever the
// previous ones do. It waits until every follower has every message, then
// reads the latencies, the server's CPU and the generators' CPU.
func (t *trial) runSteady() error {
	y := &t.r.Steady
	t.stopFleet(false)
	key := t.key + "-steady"
	if _, err := t.startFleet("steady", fleetArgs{key: key, keys: t.steadyKeys}); err != nil {
		return err
	}
	// Steady means after the churn: two fleets just went and one came, and
	// their handshakes left garbage a collection would otherwise clear in
	// the middle of the window. Collect and let RSS settle first, as the
	// idle measurement does.
	if _, err := t.srv.gc(); err != nil {
		return err
	}
	if _, _, err := procstat.SettleRSS(t.srv.Pid(), 500*time.Millisecond, 20*time.Second); err != nil {
		return err
	}
	for _, g := range t.gens {
		if err := g.send("hist reset"); err != nil {
			return err
		}
		var h histMsg
		if err := g.read(&h, 10*time.Second); err != nil {
			return err
		}
	}
	y.Keys, y.Rate, y.Seconds = t.steadyKeys, t.steadyRate, t.steadyFor.Seconds()
	total := int(t.steadyRate * t.steadyFor.Seconds())
	cpu0, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return err
	}
	gcpu0, err := sumCPU(t.gens)
	if err != nil {
		return err
	}
	start := time.Now()
	calls, err := t.publishSteady(key, total, start)
	if err != nil {
		return err
	}
	y.Publishes = int64(total)
	slices.Sort(calls)
	y.PublishP99 = ms(benchreport.Quantile(calls, 0.99))

	// What each generator is owed: its clients' keys times the messages
	// each key got.
	perKey := make([]int64, t.steadyKeys)
	for i := range total {
		perKey[i%t.steadyKeys]++
	}
	counts := make([]int64, len(t.gens))
	first := 0
	for gi, g := range t.gens {
		for j := range g.n {
			counts[gi] += perKey[(first+j)%t.steadyKeys]
		}
		first += g.n
		y.Expected += counts[gi]
	}
	limit := int(t.waitLimit / time.Millisecond)
	for gi, g := range t.gens {
		if err := g.send("count %d %d", counts[gi], limit); err != nil {
			return err
		}
	}
	for _, g := range t.gens {
		var c countMsg
		if err := g.read(&c, t.waitLimit+10*time.Second); err != nil {
			return err
		}
	}
	elapsed := time.Since(start).Seconds()
	cpu1, err := procstat.CPUSeconds(t.srv.Pid())
	if err != nil {
		return err
	}
	gcpu1, err := sumCPU(t.gens)
	if err != nil {
		return err
	}
	h, err := t.histogram()
	if err != nil {
		return err
	}
	y.Deliveries = h.received
	y.P50MS, y.P99MS, y.P999MS, y.MaxMS = h.quantile(0.50)/1e3, h.quantile(0.99)/1e3, h.quantile(0.999)/1e3, h.quantile(1)/1e3
	y.DelPS = float64(y.Deliveries) / elapsed
	y.ServerCores = (cpu1 - cpu0) / elapsed
	if y.Deliveries > 0 {
		y.CPUPerDelUS = (cpu1 - cpu0) * 1e6 / float64(y.Deliveries)
		y.LoadgenUS = (gcpu1 - gcpu0) * 1e6 / float64(y.Deliveries)
	}
	if cpu1 > cpu0 {
		y.DelPerCoreS = float64(y.Deliveries) / (cpu1 - cpu0)
	}
	if y.Deliveries < y.Expected {
		return fmt.Errorf("%d of %d deliveries within %v", y.Deliveries, y.Expected, t.waitLimit)
	}
	return nil
}

// publishSteady makes total publish calls to key-0 … key-(keys-1), call i
// due at start + i/rate, at most `publishers` in flight. It answers each
// call's duration.
func (t *trial) publishSteady(key string, total int, start time.Time) ([]time.Duration, error) {
	var (
		mu       sync.Mutex
		firstErr error // guarded by mu
		calls    = make([]time.Duration, total)
		wg       sync.WaitGroup
		sem      = make(chan struct{}, publishers)
		next     = make([]int64, t.steadyKeys) // per key, the next index
	)
	for i := range total {
		time.Sleep(time.Until(start.Add(time.Duration(float64(i) / t.steadyRate * float64(time.Second)))))
		k := i % t.steadyKeys
		next[k]++
		idx := next[k]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p, err := t.srv.publish(fmt.Sprintf("%s-%d", key, k), idx)
			calls[i] = p.took
			if err != nil {
				mu.Lock()
				firstErr = cmpErr(firstErr, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return calls, firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// histogram merges every generator's latency histogram.
func (t *trial) histogram() (hist, error) {
	h := hist{counts: map[float64]int64{}}
	for _, g := range t.gens {
		if err := g.send("hist"); err != nil {
			return h, err
		}
		var m histMsg
		if err := g.read(&m, 10*time.Second); err != nil {
			return h, err
		}
		if m.Type != "hist" {
			return h, fmt.Errorf("%w: %s", ErrLoadgen, m.Error)
		}
		h.received += m.Received
		for _, b := range m.LatUS {
			h.counts[b[0]] += int64(b[1])
		}
	}
	return h, nil
}

// hist is latency counts by bucket upper bound, in µs.
type hist struct {
	received int64
	counts   map[float64]int64
}

// quantile answers the upper bound of the bucket holding quantile q.
func (h hist) quantile(q float64) float64 {
	bounds := make([]float64, 0, len(h.counts))
	var total int64
	for b, c := range h.counts {
		bounds = append(bounds, b)
		total += c
	}
	sort.Float64s(bounds)
	want := int64(q*float64(total) + 0.5)
	var cum int64
	for _, b := range bounds {
		if cum += h.counts[b]; cum >= max(want, 1) {
			return b
		}
	}
	if len(bounds) == 0 {
		return 0
	}
	return bounds[len(bounds)-1]
}
