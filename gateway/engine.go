package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/netpoll"
)

// shutdownWait bounds how long Shutdown waits for clients to take their 1001.
const shutdownWait = 2 * time.Second

// Engine is one process's gateway: the hub, the poller and every live
// connection. It is goroutine-safe. The module keeps one Engine per process
// in a usage pool, so it outlives reloads (I8).
type Engine struct {
	logger *zap.Logger
	hub    *hub.Hub
	poller *netpoll.Poller

	closing    atomic.Bool
	slowCloses atomic.Uint64 // slow consumers found by the gateway, not the hub
	conns      struct {
		WebSocket, SSE, Poll, SocketIO atomic.Int64
	}

	mu     sync.Mutex
	routes map[string]*Route // guarded by mu

	// Cluster mode (nodes.go). broker is nil in single-node mode.
	broker       hub.Broker
	brokerStatus func() any
	registry     hub.Registry
	defaultID    string // DefaultNodeID's value, kept for the Engine's life
	started      int64  // Unix ms, announced as Node.Started
	node         atomic.Pointer[nodeConfig]

	// The announcing goroutine: startAnnouncing starts it, leaveNodes
	// stops it. announcer belongs to it while it runs.
	announcer      *announcer
	stopAnnouncing context.CancelFunc
	announceWake   chan struct{} // capacity 1: announce now (Configure)
	announceDone   chan struct{} // closed when the goroutine has ended

	shed        shedder      // adaptive shedding (shed.go)
	drainWindow atomic.Int64 // a stop's drain window, nanoseconds (drain.go)

	kp keyPolicyState // which keys may be followed (keypolicy.go)

	lim limiter // admission limits and refusal counters (limits.go)

	latency *latencyHistogram // publish→write latency (metrics.go)
}

// Route holds one handler's RouteSettings. Live connections read it each
// time they need a setting, so Set applies to them at once.
type Route struct {
	e        *Engine
	name     string
	settings atomic.Pointer[RouteSettings]
}

// New starts an Engine: its hub (around cfg.Broker, when set), its poller
// and the goroutine announcing the node (and their goroutines).
func New(cfg Config, logger *zap.Logger) (*Engine, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	latency := new(latencyHistogram) // metrics.go
	p, err := netpoll.New(netpoll.Config{
		Workers:   cfg.Workers,
		OnError:   func(err error) { logger.Error("epoll wait failed", zap.Error(err)) },
		OnLatency: latency.observe,
	})
	if err != nil {
		return nil, fmt.Errorf("starting poller: %w", err)
	}
	opts := hubOptions(cfg)
	if cfg.Broker != nil {
		opts = append(opts, hub.WithBroker(cfg.Broker))
	}
	e := &Engine{
		logger:       logger,
		hub:          hub.New(opts...),
		poller:       p,
		routes:       map[string]*Route{},
		broker:       cfg.Broker,
		brokerStatus: cfg.BrokerStatus,
		registry:     cfg.Registry,
		defaultID:    DefaultNodeID(),
		started:      time.Now().UnixMilli(),
		latency:      latency,
	}
	if e.registry == nil {
		e.registry = new(selfRegistry)
	}
	if e.brokerStatus == nil {
		e.brokerStatus = func() any { return memoryBrokerStatus }
	}
	e.configureBroker(cfg)
	e.node.Store(nodeConfigOf(cfg, e.defaultID))
	e.setDrainWindow(cfg.DrainWindow)
	e.configureShedding(cfg.Shedding)
	e.configureKeyPolicy(cfg.KeyPolicy)
	e.setLimits(cfg.Limits)
	e.startAnnouncing()
	return e, nil
}

// memoryBrokerStatus is the in-process broker's state in Stats.
var memoryBrokerStatus = struct {
	Mode  string `json:"mode"`
	State string `json:"state"`
}{Mode: "memory", State: "up"}

// configureBroker hands the history settings to a broker that keeps
// history itself, defaults filled in as for the hub.
func (e *Engine) configureBroker(cfg Config) {
	if c, ok := e.broker.(HistoryConfigurer); ok {
		size, ttl, _ := historySettings(cfg)
		c.Configure(size, ttl)
	}
}

// hubOptions maps cfg onto the hub's options, every one of them, defaults
// included: a reload that drops an option must bring back its default, not
// keep the value of the config before.
func hubOptions(cfg Config) []hub.Option {
	size, ttl, maxBytes := historySettings(cfg)
	return []hub.Option{hub.WithHistorySize(size), hub.WithHistoryTTL(ttl), hub.WithHistoryMaxBytes(maxBytes)}
}

// historySettings returns cfg's history settings, defaults filled in.
func historySettings(cfg Config) (size int, ttl time.Duration, maxBytes int64) {
	size, ttl, maxBytes = cfg.HistorySize, cfg.HistoryTTL, cfg.HistoryMaxBytes
	if size <= 0 {
		size = hub.DefaultHistorySize
	}
	if ttl <= 0 {
		ttl = hub.DefaultHistoryTTL
	}
	if maxBytes <= 0 {
		maxBytes = hub.DefaultHistoryMaxBytes
	}
	return size, ttl, maxBytes
}

// Configure applies a reloaded Config to the live engine: history settings
// (to the hub and the broker), node identity and TTL. The worker count,
// the broker and the registry are fixed for the engine's life.
func (e *Engine) Configure(cfg Config) {
	e.hub.Configure(hubOptions(cfg)...)
	e.configureBroker(cfg)
	e.setNode(cfg)
	e.setDrainWindow(cfg.DrainWindow)
	e.configureShedding(cfg.Shedding)
	e.configureKeyPolicy(cfg.KeyPolicy)
	e.setLimits(cfg.Limits)
}

// Hub returns the engine's hub, for the admin routes.
func (e *Engine) Hub() *hub.Hub { return e.hub }

// Route returns the settings holder named name, creating it with the
// defaults on first use.
func (e *Engine) Route(name string) *Route {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.routes[name]
	if r == nil {
		r = &Route{e: e, name: name}
		r.Set(RouteSettings{})
		e.routes[name] = r
	}
	return r
}

// routed is a connection handler that runs under a Route's settings.
type routed interface{ routeOf() *Route }

// queueLimit bounds a connection's queue: room for a whole history replay
// (a resume may deliver history_size messages at once, and must not be
// taken for a slow consumer) plus QueueSize live messages.
func (e *Engine) queueLimit(set *RouteSettings) int {
	return set.QueueSize + e.hub.HistorySize() + 2
}

// Set replaces the route's settings; zero fields take their defaults. Live
// connections use them from their next message on; a changed heartbeat or
// idle timeout re-times them at once rather than after the old period.
func (r *Route) Set(s RouteSettings) {
	s = s.WithDefaults()
	old := r.settings.Swap(&s)
	if old != nil && (old.Heartbeat != s.Heartbeat || old.IdleTimeout != s.IdleTimeout) {
		r.e.poller.Range(func(c *netpoll.Conn) {
			if h, ok := c.Handler().(routed); ok && h.routeOf() == r && !c.Closing() {
				c.SetTimer(0) // OnTimer runs on the next tick and reads the new values
			}
		})
	}
}

// Settings returns the route's current settings, defaults filled in.
func (r *Route) Settings() RouteSettings { return *r.get() }

func (r *Route) get() *RouteSettings { return r.settings.Load() }

// WithDefaults returns s with every zero field set to its default: the
// values a route will run with.
func (s RouteSettings) WithDefaults() RouteSettings {
	if len(s.Transports) == 0 {
		s.Transports = []string{TransportWebSocket, TransportSSE, TransportPoll}
	}
	if s.Heartbeat <= 0 {
		s.Heartbeat = DefaultHeartbeat
	}
	if s.IdleTimeout <= 0 {
		s.IdleTimeout = DefaultIdleTimeout
	}
	if s.MaxMessageSize <= 0 {
		s.MaxMessageSize = DefaultMaxMessageSize
	}
	if s.MaxKeysPerConn == 0 {
		s.MaxKeysPerConn = hub.DefaultMaxKeysPerConn
	}
	if s.QueueSize <= 0 {
		s.QueueSize = DefaultQueueSize
	}
	if len(s.SocketIOPaths) == 0 {
		s.SocketIOPaths = DefaultSocketIOPaths
	}
	if s.PollMaxWait <= 0 {
		s.PollMaxWait = DefaultPollMaxWait
	}
	return s
}

func (s *RouteSettings) enabled(transport string) bool {
	return slices.Contains(s.Transports, transport)
}

// ServeHTTP serves the client endpoint: it picks the transport from the
// request and answers every error itself, as JSON. The error it returns is
// for the caller's log only.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request, route *Route) error {
	if e.serveClientJS(w, r) { // <route>/client.js and client.mjs: the browser client
		return nil
	}
	if e.serveNodes(w, r) { // <route>/nodes: the live nodes, for clients picking a gateway
		return nil
	}
	if refused, err := e.shedAdmit(w, r); refused { // 503 while shedding (shed.go)
		return err
	}
	r, admitted := e.admit(w, r) // limits.go: connection caps and upgrade rate; answers a refusal itself
	if !admitted {
		return nil
	}
	defer leaveAdmission(r)
	set := route.get()
	switch {
	case r.URL.Query().Has("EIO"):
		// An Engine.IO client: never mistake it for a native one.
		return e.serveEngineIO(w, r, route)
	case isWebSocket(r):
		if !set.enabled(TransportWebSocket) {
			return writeError(w, http.StatusBadRequest, "the websocket transport is not enabled on this route")
		}
		return e.serveWebSocket(w, r, route)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET")
		return writeError(w, http.StatusMethodNotAllowed, "the push endpoint answers GET only")
	case acceptsEventStream(r):
		if !set.enabled(TransportSSE) {
			return writeError(w, http.StatusBadRequest, "the sse transport is not enabled on this route")
		}
		return e.serveSSE(w, r, route)
	default:
		if !set.enabled(TransportPoll) {
			return writeError(w, http.StatusBadRequest, "the poll transport is not enabled on this route")
		}
		return e.servePoll(w, r, route)
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	st := Stats{Stats: e.hub.Stats(), Goroutines: runtime.NumGoroutine()}
	st.SlowConsumerCloses += e.slowCloses.Load()
	st.Connections.WebSocket = e.conns.WebSocket.Load()
	st.Connections.SSE = e.conns.SSE.Load()
	st.Connections.Poll = e.conns.Poll.Load()
	st.Connections.SocketIO = e.conns.SocketIO.Load()
	st.Connections.Total = st.Connections.WebSocket + st.Connections.SSE + st.Connections.Poll + st.Connections.SocketIO
	st.Node = e.node.Load().info
	st.Broker = e.brokerStatus()
	st.Shedding = e.Shedding()
	st.KeyPolicy = e.KeyPolicyStats()
	st.Refused = e.Refusals()
	return st
}

// connections counts the live connections, for the node's announcements.
func (e *Engine) connections() int64 {
	return e.conns.WebSocket.Load() + e.conns.SSE.Load() + e.conns.Poll.Load() + e.conns.SocketIO.Load()
}

// Shutdown refuses new connections, leaves the node list (so that clients
// told to reconnect elsewhere do not pick this node), closes every live
// connection with 1001 spread over the drain window (drain.go), waits
// briefly for clients to take it, then stops the poller and the hub. It
// takes at most the drain window plus a few seconds. The broker is the
// caller's to close, afterwards.
func (e *Engine) Shutdown() {
	if e.closing.Swap(true) {
		return
	}
	e.stopShedding()
	e.leaveNodes()
	e.drain()
	// Closing the hub ends what the poller does not hold (HTTP/2 streams,
	// held long polls) at once, instead of after the wait below.
	e.hub.Close()
	e.stopKeyPolicy()
	e.poller.WaitEmpty(shutdownWait)
	e.poller.Close()
}

func acceptsEventStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// writeError answers {"error": msg} with status and returns msg as an error.
func writeError(w http.ResponseWriter, status int, msg string) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	return fmt.Errorf("%d: %s", status, msg)
}
