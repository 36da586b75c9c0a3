package module

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pushgateway/push_gateway/broker/redis"
	"github.com/pushgateway/push_gateway/gateway"
	"github.com/pushgateway/push_gateway/hub"
)

// fakeSource is a metricsSource with fixed values.
type fakeSource struct {
	st  gateway.Stats
	lat gateway.Latency
}

func (f *fakeSource) Stats() gateway.Stats          { return f.st }
func (f *fakeSource) WriteLatency() gateway.Latency { return f.lat }

// gather collects reg and returns each sample as `name{l="v",...}` → value
// (histograms: _count and _sum, and _bucket{le} for the bounds asked for).
func gather(tb testing.TB, reg *prometheus.Registry) map[string]float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName() + labelString(m.GetLabel())
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[mf.GetName()+"_count"] = float64(h.GetSampleCount())
				out[mf.GetName()+"_sum"] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[mf.GetName()+"_bucket"+labelString([]*dto.LabelPair{{Name: ptr("le"), Value: ptr(formatLE(b.GetUpperBound()))}})] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

func ptr(s string) *string { return &s }

func formatLE(f float64) string {
	return strings.TrimRight(strings.TrimRight(time.Duration(f*float64(time.Second)).String(), "0"), ".")
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func TestCollector(t *testing.T) {
	busy := &fakeSource{
		st: gateway.Stats{
			Connections: gateway.Connections{Total: 10, WebSocket: 4, SSE: 3, Poll: 2, SocketIO: 1},
			Stats: hub.Stats{Keys: 5, Published: 7, Delivered: 21, Dropped: 2, SlowConsumerCloses: 1,
				Registers: 9, HistoryMessages: 7, HistoryBytes: 4096, HistoryEvicted: 3},
			Broker:    redis.Status{Mode: "single", State: redis.StateDown, Reconnects: 4},
			Refused:   gateway.Refusals{MaxConnections: 1, PerIP: 2, PerKey: 3, UpgradeRate: 4, PublishRate: 5},
			KeyPolicy: gateway.KeyPolicyStats{Checks: 6, Refused: 2, Invalid: 1, BackendRequests: 3, BackendErrors: 1, CacheHits: 2},
		},
		lat: gateway.Latency{Count: 3, Sum: 1500 * time.Millisecond},
	}
	busy.st.Shedding.Active = true
	busy.st.Shedding.Reasons = []string{gateway.ShedReasonFanoutLag}
	busy.st.Shedding.Refused = 6
	busy.st.Shedding.ClosedBy.FanoutLag = 2
	busy.st.Shedding.FanoutLagMS = 1250
	// Two samples at 100µs or less, one at 1.5s (≤ 2.5s).
	for i := range busy.lat.Cumulative {
		busy.lat.Cumulative[i] = 2
		if gateway.LatencyBuckets[i] >= 2500*time.Millisecond {
			busy.lat.Cumulative[i] = 3
		}
	}
	idle := &fakeSource{st: gateway.Stats{Broker: struct{ Mode, State string }{"memory", "up"}}}

	tests := []struct {
		name   string
		source metricsSource // nil: no engine running
		want   map[string]float64
		absent []string
	}{
		{name: "every counter of a busy engine", source: busy, want: map[string]float64{
			`push_gateway_connections{transport="websocket"}`:               4,
			`push_gateway_connections{transport="sse"}`:                     3,
			`push_gateway_connections{transport="poll"}`:                    2,
			`push_gateway_connections{transport="socketio"}`:                1,
			`push_gateway_registers_total`:                                  9,
			`push_gateway_publishes_total`:                                  7,
			`push_gateway_deliveries_total`:                                 21,
			`push_gateway_drops_total`:                                      2,
			`push_gateway_slow_consumer_closes_total`:                       1,
			`push_gateway_refusals_total{reason="max_connections"}`:         1,
			`push_gateway_refusals_total{reason="per_ip"}`:                  2,
			`push_gateway_refusals_total{reason="per_key"}`:                 3,
			`push_gateway_refusals_total{reason="upgrade_rate"}`:            4,
			`push_gateway_refusals_total{reason="publish_rate"}`:            5,
			`push_gateway_refusals_total{reason="shedding"}`:                6,
			`push_gateway_history_bytes`:                                    4096,
			`push_gateway_history_messages`:                                 7,
			`push_gateway_history_evicted_total`:                            3,
			`push_gateway_keys`:                                             5,
			`push_gateway_publish_write_latency_seconds_count`:              3,
			`push_gateway_publish_write_latency_seconds_sum`:                1.5,
			`push_gateway_publish_write_latency_seconds_bucket{le="100µs"}`: 2,
			`push_gateway_publish_write_latency_seconds_bucket{le="1s"}`:    2,
			`push_gateway_publish_write_latency_seconds_bucket{le="2.5s"}`:  3,
			`push_gateway_publish_write_latency_seconds_bucket{le="5s"}`:    3,
			`push_gateway_broker_state{state="up"}`:                         0,
			`push_gateway_broker_state{state="down"}`:                       1,
			`push_gateway_broker_reconnects_total`:                          4,
			`push_gateway_shedding_active`:                                  1,
			`push_gateway_shedding_reason{reason="memory"}`:                 0,
			`push_gateway_shedding_reason{reason="fanout_lag"}`:             1,
			`push_gateway_shedding_closes_total{reason="fanout_lag"}`:       2,
			`push_gateway_shedding_closes_total{reason="memory"}`:           0,
			`push_gateway_shedding_fanout_lag_seconds`:                      1.25,
			`push_gateway_key_policy_checks_total`:                          6,
			`push_gateway_key_policy_refusals_total`:                        2,
			`push_gateway_key_policy_invalid_total`:                         1,
			`push_gateway_key_policy_backend_requests_total`:                3,
			`push_gateway_key_policy_backend_errors_total`:                  1,
			`push_gateway_key_policy_cache_hits_total`:                      2,
		}},
		{name: "the in-process broker is up", source: idle, want: map[string]float64{
			`push_gateway_broker_state{state="up"}`:            1,
			`push_gateway_broker_state{state="down"}`:          0,
			`push_gateway_connections{transport="websocket"}`:  0,
			`push_gateway_publish_write_latency_seconds_count`: 0,
			`push_gateway_shedding_active`:                     0,
		}},
		{name: "no engine, no series", absent: []string{
			`push_gateway_keys`, `push_gateway_connections{transport="websocket"}`, `push_gateway_publish_write_latency_seconds_count`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			src := tt.source
			if err := reg.Register(newCollector(func() metricsSource { return src })); err != nil {
				t.Fatal(err)
			}
			got := gather(t, reg)
			for name, want := range tt.want {
				v, ok := got[name]
				if !ok {
					t.Errorf("%s missing", name)
					continue
				}
				if v != want {
					t.Errorf("%s = %v, want %v", name, v, want)
				}
			}
			for _, name := range tt.absent {
				if _, ok := got[name]; ok {
					t.Errorf("%s present", name)
				}
			}
		})
	}
}

// TestRegisterMetricsTwice: the admin module and the app both register in
// the config's registry; the second is a no-op, and each new registry (a
// reload) takes its own.
func TestRegisterMetricsTwice(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	logger := zap.New(core)
	regs := []*prometheus.Registry{prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()}
	for _, reg := range regs {
		registerMetrics(reg, logger)
		registerMetrics(reg, logger)
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	registerMetrics(nil, logger) // a zero caddy.Context has none
	if got := logs.Len(); got != 0 {
		t.Fatalf("%d errors logged registering twice", got)
	}
}
