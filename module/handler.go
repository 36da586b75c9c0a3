package module

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/gateway"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultRouteName is the route settings name of a handler that names none.
const DefaultRouteName = "default"

// Bounds of the handler options; a value outside them is a typo, not a
// deliberate setting.
const (
	minMessageSize = 128 // a register message with a short key must fit
	maxMessageSize = 16 << 20
	maxKeysPerConn = 1 << 16
	maxQueueSize   = 1 << 16
	maxPollWait    = 10 * time.Minute // beyond it proxies and clients give up anyway
)

// knownTransports are the `transports` names, in the order error messages list them.
var knownTransports = []string{
	gateway.TransportWebSocket, gateway.TransportSSE, gateway.TransportPoll, gateway.TransportSocketIO,
}

// Handler is the `http.handlers.push_gateway` route handler: it serves the
// client endpoint (WebSocket, SSE, long poll, Socket.IO) on the routes it is
// matched to. It never calls the next handler.
//
// Handlers with the same Name share one gateway.Route: the settings that
// live connections read. A reload that changes them applies to the
// connections already open.
type Handler struct {
	// Name of the route settings; handlers of one config sharing a name must
	// agree on every setting. Default: "default".
	Name string `json:"name,omitempty"`
	// Transports enabled on this route: websocket, sse, poll, socketio.
	// Default: websocket sse poll.
	Transports []string `json:"transports,omitempty"`
	// SocketIOPath lists the paths Engine.IO is served on when socketio is
	// enabled. Default: /socket.io/ /realtime/ /server/realtime/.
	SocketIOPath []string `json:"socketio_path,omitempty"`
	// Heartbeat is the interval of the gateway's pings. Default: 25s.
	Heartbeat caddy.Duration `json:"heartbeat,omitempty"`
	// IdleTimeout closes a connection silent for longer (4408). Default: 60s.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// MaxMessageSize bounds a client message in bytes (1009). Default: 64 KiB.
	MaxMessageSize int64 `json:"max_message_size,omitempty"`
	// MaxKeysPerConnection bounds the keys one connection follows (4429). Default: 64.
	MaxKeysPerConnection int `json:"max_keys_per_connection,omitempty"`
	// QueueSize bounds a connection's outbound queue, in messages; a full
	// queue closes the connection as a slow consumer (4429). Default: 256.
	QueueSize int `json:"queue_size,omitempty"`
	// PollMaxWait caps how long a long poll is held (the client's `wait`).
	// Default: 60s.
	PollMaxWait caddy.Duration `json:"poll_max_wait,omitempty"`

	logger *zap.Logger
	engine *gateway.Engine
	route  *gateway.Route
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.push_gateway",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the process's Engine through the push_gateway app and
// records this handler's settings; the app applies them when the config
// starts.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	appVal, err := ctx.App(appID)
	if err != nil {
		return fmt.Errorf("loading push_gateway app: %w", err)
	}
	app := appVal.(*App)
	route, err := app.route(h.routeName(), h.settings())
	if err != nil {
		return err
	}
	h.engine = app.engine
	h.route = route
	return nil
}

// Validate judges the handler's options.
func (h *Handler) Validate() error {
	seen := make(map[string]bool, len(h.Transports))
	for _, t := range h.Transports {
		if !slices.Contains(knownTransports, t) {
			return fmt.Errorf("unknown transport %q (want %s)", t, strings.Join(knownTransports, ", "))
		}
		if seen[t] {
			return fmt.Errorf("transport %q listed twice", t)
		}
		seen[t] = true
	}
	if len(h.SocketIOPath) > 0 && len(h.Transports) > 0 && !seen[gateway.TransportSocketIO] {
		return fmt.Errorf("socketio_path is set but the %s transport is not enabled", gateway.TransportSocketIO)
	}
	for _, p := range h.SocketIOPath {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("socketio_path %q: must start with /", p)
		}
	}
	if h.Heartbeat < 0 {
		return fmt.Errorf("heartbeat %s: must be positive", time.Duration(h.Heartbeat))
	}
	if h.IdleTimeout < 0 {
		return fmt.Errorf("idle_timeout %s: must be positive", time.Duration(h.IdleTimeout))
	}
	s := h.settings()
	if s.IdleTimeout <= s.Heartbeat {
		return fmt.Errorf("idle_timeout %s must be longer than heartbeat %s", s.IdleTimeout, s.Heartbeat)
	}
	if h.MaxMessageSize != 0 && (h.MaxMessageSize < minMessageSize || h.MaxMessageSize > maxMessageSize) {
		return fmt.Errorf("max_message_size %d: must be between %d and %d bytes", h.MaxMessageSize, minMessageSize, maxMessageSize)
	}
	if h.MaxKeysPerConnection < 0 || h.MaxKeysPerConnection > maxKeysPerConn {
		return fmt.Errorf("max_keys_per_connection %d: must be between 1 and %d", h.MaxKeysPerConnection, maxKeysPerConn)
	}
	if h.QueueSize < 0 || h.QueueSize > maxQueueSize {
		return fmt.Errorf("queue_size %d: must be between 1 and %d", h.QueueSize, maxQueueSize)
	}
	if h.PollMaxWait < 0 || time.Duration(h.PollMaxWait) > maxPollWait {
		return fmt.Errorf("poll_max_wait %s: must be positive and at most %s", time.Duration(h.PollMaxWait), maxPollWait)
	}
	return nil
}

// ServeHTTP hands the request to the Engine. The Engine answers bad requests
// itself, so an error it returns is only logged, unless it is a
// caddyhttp.HandlerError, which asks Caddy to write the error response.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	err := h.engine.ServeHTTP(w, r, h.route)
	if err == nil {
		return nil
	}
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return err
	}
	if c := h.logger.Check(zap.DebugLevel, "client request ended with an error"); c != nil {
		c.Write(zap.String("uri", r.RequestURI), zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
	}
	return nil
}

func (h *Handler) routeName() string {
	if h.Name == "" {
		return DefaultRouteName
	}
	return h.Name
}

// settings returns the handler's RouteSettings with every default filled in,
// so that Validate judges the values the Engine will use.
func (h *Handler) settings() gateway.RouteSettings {
	return gateway.RouteSettings{
		Transports:     slices.Clone(h.Transports),
		Heartbeat:      time.Duration(h.Heartbeat),
		IdleTimeout:    time.Duration(h.IdleTimeout),
		MaxMessageSize: h.MaxMessageSize,
		MaxKeysPerConn: h.MaxKeysPerConnection,
		QueueSize:      h.QueueSize,
		SocketIOPaths:  slices.Clone(h.SocketIOPath),
		PollMaxWait:    time.Duration(h.PollMaxWait),
	}.WithDefaults()
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
