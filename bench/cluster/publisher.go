package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// pacedWorkers is how many publishes of a paced run may be under way at
// once: enough that one slow answer does not hold the next publish back
// from its slot, few enough that they stay keep-alive connections.
const pacedWorkers = 8

// paced publishes indexes from..from+count-1 to key on n at rate per
// second, each on its slot of a fixed schedule (open loop: a slow answer
// does not delay the slots after it, up to pacedWorkers at once). It
// answers the admin's answer times and how long the publishing took.
func paced(n *node, key string, from, count, rate int) ([]time.Duration, time.Duration, error) {
	jobs := make(chan int, count)
	var (
		stop     atomic.Bool
		firstErr error
		errOnce  sync.Once
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, count)
		wg       sync.WaitGroup
	)
	for range pacedWorkers {
		wg.Go(func() {
			for i := range jobs {
				if stop.Load() {
					continue
				}
				d, err := n.publish(key, i)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					continue
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for j := range count {
		if stop.Load() {
			break
		}
		if d := time.Until(start.Add(time.Duration(j) * interval)); d > 0 {
			time.Sleep(d) // the schedule, not synchronisation
		}
		jobs <- from + j
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, 0, fmt.Errorf("paced publishing: %w", firstErr)
	}
	return lat, elapsed, nil
}

// flood runs publishers goroutines, publisher p posting its share of
// total to keyPrefix-p back to back on a keep-alive connection, and
// answers the admin's answer times and the wall time from the first
// publish to the last answer.
func flood(n *node, keyPrefix string, publishers, total int) ([]time.Duration, time.Duration, error) {
	var (
		stop     atomic.Bool
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
		lats     = make([][]time.Duration, publishers)
	)
	start := time.Now()
	for p := range publishers {
		share := total / publishers
		if p < total%publishers {
			share++
		}
		key := fmt.Sprintf("%s-%d", keyPrefix, p)
		wg.Go(func() {
			lat := make([]time.Duration, 0, share)
			for i := 1; i <= share && !stop.Load(); i++ {
				d, err := n.publish(key, i)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				lat = append(lat, d)
			}
			lats[p] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, 0, fmt.Errorf("%d publishers: %w", publishers, firstErr)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return all, elapsed, nil
}
