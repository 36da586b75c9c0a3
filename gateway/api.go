package gateway

import (
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

// Transport names, as used by the `transports` option and in Stats.
const (
	TransportWebSocket = "websocket"
	TransportSSE       = "sse"
	TransportPoll      = "poll"
	TransportSocketIO  = "socketio"
)

// Config is the process-wide configuration (the Caddyfile's global
// `push_gateway` block). Zero values mean the defaults.
type Config struct {
	HistorySize     int           // messages kept per SDK key
	HistoryTTL      time.Duration // how long they are kept
	HistoryMaxBytes int64         // global cap on history bytes, oldest evicted first
	Workers         int           // netpoll worker goroutines; 0: derived from GOMAXPROCS

	// Broker shares keys with the other nodes (cluster mode); nil keeps
	// them in process. Only New reads it: the hub is built around it, so
	// it cannot change on a reload. A Broker that is a HistoryConfigurer
	// gets the history settings from New and every Configure.
	Broker hub.Broker
	// BrokerStatus reports the broker's state for Stats (a JSON-able
	// value); nil reports the in-process broker, always up.
	BrokerStatus func() any
	// Registry lists the live nodes; nil lists only this one (single
	// node). Only New reads it.
	Registry hub.Registry
	// Node is this node's identity; an empty ID takes DefaultNodeID's
	// value, made once per Engine and kept across Configure.
	Node NodeInfo
	// NodeTTL is how long an announcement of the node lives; the node
	// announces itself every NodeTTL/3. Default 3s.
	NodeTTL time.Duration
	// Shedding configures adaptive shedding (shed.go); the zero value is off.
	Shedding ShedConfig
	// DrainWindow spreads a stop's 1001s over this long (drain.go); 0:
	// DefaultDrainWindow, < 0: all at once.
	DrainWindow time.Duration
	// KeyPolicy decides which SDK keys may be followed; nil: any valid key.
	KeyPolicy *KeyPolicyConfig
	// Limits are the admission limits (limits.go); the zero value derives
	// max_connections from the open-files limit and limits nothing else.
	Limits Limits
}

// DefaultNodeTTL is the default Config.NodeTTL.
const DefaultNodeTTL = 3 * time.Second

// HistoryConfigurer is a Broker that keeps history itself and takes the
// history settings (defaults filled in) from the Engine.
type HistoryConfigurer interface {
	Configure(historySize int, ttl time.Duration)
}

// NodeInfo is a node's identity, as Stats shows it and the node registry
// lists it.
type NodeInfo struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"` // public base URL clients connect to, e.g. wss://gw1.example.com/realtime
	Zone    string `json:"zone,omitempty"`
}

// RouteSettings are one handler's settings. A reload replaces them and live
// connections of that route pick the new values up (invariant I8).
type RouteSettings struct {
	Transports     []string      // enabled transports; default websocket sse poll
	Heartbeat      time.Duration // gateway pings every Heartbeat; default 25s
	IdleTimeout    time.Duration // close 4408 when silent longer; default 60s
	MaxMessageSize int64         // client message limit, close 1009; default 64 KiB
	MaxKeysPerConn int           // keys one connection may follow, close 4429; default 64
	QueueSize      int           // per-connection outbound queue, in messages; default 256
	SocketIOPaths  []string      // where Engine.IO is served; default /socket.io/ /realtime/ /server/realtime/
	PollMaxWait    time.Duration // cap on a long poll's wait; default 60s
}

// Defaults for RouteSettings.
const (
	DefaultHeartbeat      = 25 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	DefaultMaxMessageSize = 64 << 10
	DefaultQueueSize      = 256
	DefaultPollMaxWait    = 60 * time.Second
)

// DefaultSocketIOPaths are where Engine.IO is served by default.
var DefaultSocketIOPaths = []string{"/socket.io/", "/realtime/", "/server/realtime/"}

// Connections counts live connections by transport.
type Connections struct {
	Total     int64 `json:"total"`
	WebSocket int64 `json:"websocket"`
	SSE       int64 `json:"sse"`
	Poll      int64 `json:"poll"`
	SocketIO  int64 `json:"socketio"`
}

// Stats is what GET /push_gateway/stats answers.
type Stats struct {
	Connections Connections `json:"connections"`
	hub.Stats
	Goroutines int `json:"goroutines"`
	// Node is this node's identity.
	Node NodeInfo `json:"node"`
	// Broker is the broker's state: Config.BrokerStatus's value, or
	// {"mode":"memory","state":"up"} for the in-process broker.
	Broker any `json:"broker"`
	// Shedding is the adaptive shedding state (Engine.Shedding).
	Shedding ShedStats `json:"shedding"`
	// KeyPolicy counts the key policy's decisions (Engine.KeyPolicyStats).
	KeyPolicy KeyPolicyStats `json:"key_policy"`
	// Refused counts the requests each limit refused (Engine.Refusals).
	Refused Refusals `json:"refused"`
}
