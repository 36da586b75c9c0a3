package module

import (
	"errors"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/broker/redis"
	"github.com/pushgateway/push_gateway/gateway"
)

// Metrics in Caddy's Prometheus registry, served by Caddy's own /metrics
// (the admin endpoint's, and the `metrics` handler's).
//
// Everything but the latency histogram is a counter the Engine keeps
// anyway (Engine.Stats): the collector reads them at scrape time, so the
// publish and delivery paths pay nothing for metrics. The histogram's
// buckets are atomics the netpoll workers add to (gateway/metrics.go); the
// collector copies them per scrape too.
//
// Caddy makes a new registry for every config it loads and serves /metrics
// from the newest one, while the Engine outlives configs in its usage pool:
// so each config registers a collector that finds the running Engine at
// scrape time (runningEngine), and the counters keep counting across
// reloads. Both the admin module (provisioned with the admin endpoint,
// before any app, so a reload that fails in another app still serves them)
// and the app (which is there when the admin endpoint is disabled and a
// `metrics` handler serves the registry) register; the second registration
// in one registry is a no-op.

const metricsNamespace = "push_gateway"

// metricsSource is what the collector reads: the Engine.
type metricsSource interface {
	Stats() gateway.Stats
	WriteLatency() gateway.Latency
}

// registerMetrics adds the gateway's collector to reg, once per registry.
// It does not fail a config load: a registry refusing it is logged.
func registerMetrics(reg *prometheus.Registry, logger *zap.Logger) {
	if reg == nil { // a Context not made by caddy.NewContext (tests)
		return
	}
	err := reg.Register(newCollector(func() metricsSource {
		if e := runningEngine(); e != nil {
			return e
		}
		return nil
	}))
	if are := (prometheus.AlreadyRegisteredError{}); err != nil && !errors.As(err, &are) {
		logger.Error("registering metrics", zap.Error(err))
	}
}

// Transports and shedding reasons as labels, in a fixed order so that every
// scrape has the same series.
var (
	metricTransports  = []string{gateway.TransportWebSocket, gateway.TransportSSE, gateway.TransportPoll, gateway.TransportSocketIO}
	metricShedReasons = []string{gateway.ShedReasonMemory, gateway.ShedReasonFanoutLag}
	brokerStates      = []string{redis.StateUp, redis.StateDown}
)

// collector is a prometheus.Collector over a metricsSource. Its source
// returns nil while no Engine runs: then it collects nothing.
type collector struct {
	source func() metricsSource
	d      collectorDescs
}

// collectorDescs holds every metric's description.
type collectorDescs struct {
	connections, registers, publishes, deliveries, drops, slowCloses,
	refusals, historyBytes, historyMessages, historyEvicted, keys, latency,
	brokerState, brokerReconnects, shedActive, shedReason, shedCloses, shedLag,
	keyChecks, keyRefusals, keyInvalid, keyBackendRequests, keyBackendErrors,
	keyCacheHits *prometheus.Desc
}

func newCollector(source func() metricsSource) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", name), help, labels, nil)
	}
	return &collector{source: source, d: collectorDescs{
		connections:        d("connections", "Live client connections, by transport.", "transport"),
		registers:          d("registers_total", "Keys followed: register requests accepted, on every transport."),
		publishes:          d("publishes_total", "Messages published through this node."),
		deliveries:         d("deliveries_total", "Messages queued to followers (live and replayed)."),
		drops:              d("drops_total", "Messages not queued because a follower's queue was full."),
		slowCloses:         d("slow_consumer_closes_total", "Connections closed as slow consumers (4429)."),
		refusals:           d("refusals_total", "Requests refused by a limit or by shedding, by reason.", "reason"),
		historyBytes:       d("history_bytes", "Bytes held in history, all keys."),
		historyMessages:    d("history_messages", "Messages held in history, all keys."),
		historyEvicted:     d("history_evicted_total", "History messages evicted by TTL or the global byte cap."),
		keys:               d("keys", "SDK keys with history or followers on this node."),
		latency:            d("publish_write_latency_seconds", "Time from the start of a message's fan-out on this node to the write that put it on a client's socket; one sample per write, its oldest message (WebSocket, HTTP/1.1 SSE, Socket.IO over WebSocket)."),
		brokerState:        d("broker_state", "The broker's state: 1 for the current one.", "state"),
		brokerReconnects:   d("broker_reconnects_total", "Broker pub/sub connections re-established."),
		shedActive:         d("shedding_active", "1 while adaptive shedding refuses upgrades and closes the slowest consumers."),
		shedReason:         d("shedding_reason", "1 for each reason shedding is active for.", "reason"),
		shedCloses:         d("shedding_closes_total", "Connections closed by shedding (4503), by reason.", "reason"),
		shedLag:            d("shedding_fanout_lag_seconds", "The fan-out lag the shedding monitor read at its latest tick."),
		keyChecks:          d("key_policy_checks_total", "Registers judged by a configured key policy."),
		keyRefusals:        d("key_policy_refusals_total", "Registers refused by the key policy (4401)."),
		keyInvalid:         d("key_policy_invalid_total", "Keys failing the key pattern or length (4400)."),
		keyBackendRequests: d("key_policy_backend_requests_total", "Requests sent to the key-check backend."),
		keyBackendErrors:   d("key_policy_backend_errors_total", "Failed key-check backend lookups."),
		keyCacheHits:       d("key_policy_cache_hits_total", "Key-check answers taken from the cache."),
	}}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.d
	for _, desc := range []*prometheus.Desc{
		d.connections, d.registers, d.publishes, d.deliveries, d.drops, d.slowCloses,
		d.refusals, d.historyBytes, d.historyMessages, d.historyEvicted, d.keys, d.latency,
		d.brokerState, d.brokerReconnects, d.shedActive, d.shedReason, d.shedCloses, d.shedLag,
		d.keyChecks, d.keyRefusals, d.keyInvalid, d.keyBackendRequests, d.keyBackendErrors,
		d.keyCacheHits,
	} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector: one Stats read per scrape.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	src := c.source()
	if src == nil {
		return
	}
	st := src.Stats()
	d := &c.d
	emit := func(desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(desc, typ, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		emit(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		emit(desc, prometheus.GaugeValue, v, labels...)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	conns := [...]int64{st.Connections.WebSocket, st.Connections.SSE, st.Connections.Poll, st.Connections.SocketIO}
	for i, t := range metricTransports {
		gauge(d.connections, float64(conns[i]), t)
	}
	counter(d.registers, st.Registers)
	counter(d.publishes, st.Published)
	counter(d.deliveries, st.Delivered)
	counter(d.drops, st.Dropped)
	counter(d.slowCloses, st.SlowConsumerCloses)
	for reason, n := range st.Refused.ByReason() {
		counter(d.refusals, n, reason)
	}
	counter(d.refusals, st.Shedding.Refused, "shedding")
	gauge(d.historyBytes, float64(st.HistoryBytes))
	gauge(d.historyMessages, float64(st.HistoryMessages))
	counter(d.historyEvicted, st.HistoryEvicted)
	gauge(d.keys, float64(st.Keys))

	lat := src.WriteLatency()
	buckets := make(map[float64]uint64, len(lat.Cumulative))
	for i, n := range lat.Cumulative {
		buckets[gateway.LatencyBuckets[i].Seconds()] = n
	}
	h, err := prometheus.NewConstHistogram(d.latency, lat.Count, lat.Sum.Seconds(), buckets)
	if err != nil {
		h = prometheus.NewInvalidMetric(d.latency, err)
	}
	ch <- h

	state, reconnects := brokerState(st.Broker)
	for _, s := range brokerStates {
		gauge(d.brokerState, flag(s == state), s)
	}
	counter(d.brokerReconnects, reconnects)

	sh := st.Shedding
	gauge(d.shedActive, flag(sh.Active))
	for _, r := range metricShedReasons {
		gauge(d.shedReason, flag(sh.Active && slices.Contains(sh.Reasons, r)), r)
	}
	counter(d.shedCloses, sh.ClosedBy.Memory, gateway.ShedReasonMemory)
	counter(d.shedCloses, sh.ClosedBy.FanoutLag, gateway.ShedReasonFanoutLag)
	gauge(d.shedLag, float64(sh.FanoutLagMS)/1e3)

	kp := st.KeyPolicy
	counter(d.keyChecks, kp.Checks)
	counter(d.keyRefusals, kp.Refused)
	counter(d.keyInvalid, kp.Invalid)
	counter(d.keyBackendRequests, kp.BackendRequests)
	counter(d.keyBackendErrors, kp.BackendErrors)
	counter(d.keyCacheHits, kp.CacheHits)
}

// brokerState reads the state and reconnects out of Stats.Broker: a
// Redis broker's Status, or the in-process broker's, which is always up.
func brokerState(v any) (state string, reconnects uint64) {
	switch s := v.(type) {
	case redis.Status:
		return s.State, s.Reconnects
	case *redis.Status:
		return s.State, s.Reconnects
	}
	return redis.StateUp, 0
}

// Interface guards.
var (
	_ prometheus.Collector = (*collector)(nil)
	_ metricsSource        = (*gateway.Engine)(nil)
)
