package main

import (
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/pushgateway/push_gateway/bench/internal/benchcmd"
	"github.com/pushgateway/push_gateway/bench/internal/report"
)

// Kinds of measurement.
const (
	kindLatency    = "latency"
	kindThroughput = "throughput"
)

// Latency scenarios: where the publish goes and where the followers are.
const (
	scenarioSingle    = "single"             // one node, in-process hub
	scenarioSameNode  = "cluster-same-node"  // published on a, followers on a
	scenarioCrossNode = "cluster-cross-node" // published on b, followers on a
)

// registerLimit bounds opening the followers and their registration;
// warmupLimit bounds one warm-up publish reaching all of them.
const (
	registerLimit = 60 * time.Second
	warmupLimit   = 10 * time.Second
)

// probePublishes is how many publishes the MONITOR probe watches.
const probePublishes = 200

// logged logs a measurement's figures or its error.
func logged(r Measurement) Measurement {
	switch {
	case r.Error != "":
		log.Printf("%s %s run %d: %s", r.Kind, r.Scenario, r.Run, r.Error)
	case r.Kind == kindLatency:
		log.Printf("%s run %d: %d deliveries (%d missing), p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; CPU/publish %s; redis commands/publish %s",
			r.Scenario, r.Run, r.Deliveries, r.Missing, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs, cpuLine(r.CPUPerPublishUs), redisLine(r))
	default:
		log.Printf("%s throughput, %d publishers, run %d: %.0f publishes/s, admin p50 %.2f ms p99 %.2f ms; CPU/publish %s; redis commands/publish %s",
			r.Scenario, r.Publishers, r.Run, r.PublishesPerSec, r.AdminP50Ms, r.AdminP99Ms, cpuLine(r.CPUPerPublishUs), redisLine(r))
	}
	return r
}

// redisLine renders Redis commands and broker round trips per publish
// for the log.
func redisLine(r Measurement) string {
	if r.Config != configCluster {
		return "—"
	}
	s := fmt.Sprintf("%.2f", r.RedisCommandsPerPublish)
	if r.BrokerRoundTripsPerPublish != nil {
		s += fmt.Sprintf(", broker round trips/publish %.2f", *r.BrokerRoundTripsPerPublish)
	}
	return s
}

// latency measures publish→deliver from pub to followers on fol.
func latency(m *meter, scenario string, pub, fol *node, run int, o options) Measurement {
	r := Measurement{Config: configOf(scenario), Kind: kindLatency, Scenario: scenario, Run: run,
		Publishes: o.publishes(), Followers: o.followers, Load: report.LoadAverage()}
	if err := latencyInto(m, pub, fol, o, &r); err != nil {
		r.Error = err.Error()
	}
	return logged(r)
}

func latencyInto(m *meter, pub, fol *node, o options, r *Measurement) error {
	key := fmt.Sprintf("lat-%s-%d-%d", r.Scenario, r.Run, time.Now().UnixNano())
	total := o.warmup + r.Publishes
	f := newFollowers(key, fol.client, o.followers, o.warmup+1, total)
	defer f.Close()
	f.open()
	if err := benchcmd.WaitFor(registerLimit, func() bool { return f.registered.Load() == int64(o.followers) || f.err() != nil }); err != nil {
		return fmt.Errorf("%d of %d followers registered: %w", f.registered.Load(), o.followers, err)
	}
	if err := f.err(); err != nil {
		return err
	}
	// Warm-up: each publish must reach every follower, so the measured
	// ones find every subscription in place, here and, in the cluster,
	// in Redis.
	for i := 1; i <= o.warmup; i++ {
		if _, err := pub.publish(key, i); err != nil {
			return err
		}
		if err := benchcmd.WaitFor(warmupLimit, func() bool { return f.received(i) == int64(o.followers) || f.err() != nil }); err != nil {
			return fmt.Errorf("warm-up publish %d reached %d of %d followers: %w", i, f.received(i), o.followers, err)
		}
	}
	if err := m.start(); err != nil {
		return err
	}
	admin, elapsed, err := paced(pub, key, o.warmup+1, r.Publishes, o.rate)
	if err != nil {
		return err
	}
	want := int64(o.followers) * int64(r.Publishes)
	waitErr := benchcmd.WaitFor(o.deliver, func() bool { return f.measured.Load() >= want || f.err() != nil })
	if err := m.finish(r.Publishes, r); err != nil {
		return err
	}
	if err := f.err(); err != nil {
		return err
	}
	r.Seconds = elapsed.Seconds()
	r.PublishesPerSec = float64(r.Publishes) / r.Seconds
	r.Deliveries = f.measured.Load()
	r.Missing = max(0, want-r.Deliveries)
	d := f.delays()
	slices.Sort(d)
	r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs = nsMs(report.Quantile(d, 0.5)), nsMs(report.Quantile(d, 0.99)),
		nsMs(report.Quantile(d, 0.999)), nsMs(report.Quantile(d, 1))
	r.AdminP50Ms, r.AdminP99Ms = adminQuantiles(admin)
	if waitErr != nil {
		return fmt.Errorf("%d of %d deliveries %v after the last publish: %w", r.Deliveries, want, o.deliver, waitErr)
	}
	return nil
}

// throughput measures publishers concurrent publishers on pub.
func throughput(m *meter, config string, pub *node, publishers, run int, o options) Measurement {
	r := Measurement{Config: config, Kind: kindThroughput, Scenario: config, Publishers: publishers, Run: run,
		Publishes: o.tpPublishes, Load: report.LoadAverage()}
	if err := throughputInto(m, pub, o, &r); err != nil {
		r.Error = err.Error()
	}
	return logged(r)
}

func throughputInto(m *meter, pub *node, o options, r *Measurement) error {
	prefix := fmt.Sprintf("tp-%d-%d-%d", r.Publishers, r.Run, time.Now().UnixNano())
	// Warm-up: every publisher's keep-alive connection open, the code
	// paths hot.
	if _, _, err := flood(pub, prefix+"-warm", r.Publishers, 5*r.Publishers); err != nil {
		return err
	}
	if err := m.start(); err != nil {
		return err
	}
	admin, elapsed, err := flood(pub, prefix, r.Publishers, r.Publishes)
	if err != nil {
		return err
	}
	if err := m.finish(r.Publishes, r); err != nil {
		return err
	}
	r.Seconds = elapsed.Seconds()
	r.PublishesPerSec = float64(r.Publishes) / r.Seconds
	r.AdminP50Ms, r.AdminP99Ms = adminQuantiles(admin)
	return nil
}

// configOf answers the configuration a latency scenario runs on.
func configOf(scenario string) string {
	if scenario == scenarioSingle {
		return configSingle
	}
	return configCluster
}

func adminQuantiles(d []time.Duration) (p50, p99 float64) {
	slices.Sort(d)
	return durMs(report.Quantile(d, 0.5)), durMs(report.Quantile(d, 0.99))
}

func nsMs(ns int64) float64         { return float64(ns) / 1e6 }
func durMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
