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
}
