package module

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/gateway"
)

func init() {
	caddy.RegisterModule(App{})
}

// appID is the app's module ID and its key in the config's "apps" object.
const appID = "push_gateway"

// engineKey is the usage-pool key of the process's one Engine.
const engineKey = "push_gateway"

// engines holds the process's Engine. Each provisioned App holds one
// reference: on `caddy reload` the new config's App takes its reference
// before the old config's App releases its own, so the Engine, its history
// and every live connection survive; the last release (a real stop) runs
// Destruct, which closes connections with 1001 (invariant I8).
var engines = caddy.NewUsagePool()

// pooledEngine is the usage pool's value: the Engine plus the Destructor the
// pool calls on the last release.
type pooledEngine struct {
	engine *gateway.Engine
	logger *zap.Logger
}

// Destruct shuts the Engine down. The pool calls it once, on the last release.
func (p *pooledEngine) Destruct() error {
	p.engine.Shutdown()
	p.logger.Info("gateway engine stopped")
	return nil
}

// runningEngine returns the process's Engine, or nil when no config holding
// the push_gateway app is loaded. The admin routes call it per request: Caddy
// builds admin routers independently of the config's apps.
func runningEngine() *gateway.Engine {
	var e *gateway.Engine
	engines.Range(func(key, value any) bool {
		if key == engineKey {
			e = value.(*pooledEngine).engine
			return false
		}
		return true
	})
	return e
}

// Bounds of the global options; a value outside them is a typo, not a
// deliberate setting.
const (
	maxHistorySize = 1 << 20
	maxWorkers     = 4096
)

// Broker types.
const (
	BrokerMemory = "memory"
	BrokerRedis  = "redis"
)

// Broker selects where published messages are fanned out between nodes.
type Broker struct {
	// Type is "memory" (the default: in-process, single node) or "redis".
	Type string `json:"type,omitempty"`
	// URL is the Redis URL (redis://host:port/db) of the "redis" broker.
	URL string `json:"url,omitempty"`
}

// App is the `push_gateway` app: the Caddyfile's global `push_gateway`
// options. Caddy instantiates it for every config, also one without the
// global block, because the handlers ask for it with ctx.App. It holds one
// reference to the process's Engine.
//
// Start and Stop do not start or stop the Engine: it outlives the config.
// Start applies this config's settings to the (possibly already running)
// Engine, so that a reload which fails during provisioning leaves the live
// connections on the old settings.
type App struct {
	// HistorySize is the number of messages kept per SDK key.
	HistorySize int `json:"history_size,omitempty"`
	// HistoryTTL is how long a message is kept in history.
	HistoryTTL caddy.Duration `json:"history_ttl,omitempty"`
	// HistoryMaxBytes caps the history of all keys together, oldest evicted first.
	HistoryMaxBytes int64 `json:"history_max_bytes,omitempty"`
	// Workers is the number of netpoll worker goroutines; 0 derives it from GOMAXPROCS.
	Workers int `json:"workers,omitempty"`
	// Broker selects the broker; nil means the in-process one.
	Broker *Broker `json:"broker,omitempty"`

	logger      *zap.Logger
	engine      *gateway.Engine
	inPool      bool // holds a reference in engines; Cleanup releases it
	reconfigure bool // the Engine predates this config: Start applies the Config
	routes      *routeTable
}

// routeTable holds the settings this config's handlers ask for, by route
// name, until Start applies them. It is a pointer in App because
// CaddyModule's value receiver copies the App.
type routeTable struct {
	mu       sync.Mutex
	settings map[string]gateway.RouteSettings // guarded by mu
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  appID,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision takes a reference to the process's Engine, creating it on the
// first load. It validates first so that a config Validate would refuse
// never starts an Engine.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a)
	a.routes = &routeTable{settings: make(map[string]gateway.RouteSettings)}
	if err := a.Validate(); err != nil {
		return err
	}
	val, loaded, err := engines.LoadOrNew(engineKey, func() (caddy.Destructor, error) {
		e, err := gateway.New(a.config(), a.logger)
		if err != nil {
			return nil, err
		}
		a.logger.Info("gateway engine started")
		return &pooledEngine{engine: e, logger: a.logger}, nil
	})
	if err != nil {
		return fmt.Errorf("starting gateway engine: %w", err)
	}
	a.inPool = true
	a.engine = val.(*pooledEngine).engine
	a.reconfigure = loaded
	return nil
}

// Validate judges the global options.
func (a *App) Validate() error {
	if a.HistorySize < 0 || a.HistorySize > maxHistorySize {
		return fmt.Errorf("history_size %d: must be between 1 and %d", a.HistorySize, maxHistorySize)
	}
	if a.HistoryTTL < 0 {
		return fmt.Errorf("history_ttl %s: must be positive", time.Duration(a.HistoryTTL))
	}
	if a.HistoryMaxBytes < 0 {
		return fmt.Errorf("history_max_bytes %d: must be positive", a.HistoryMaxBytes)
	}
	if a.Workers < 0 || a.Workers > maxWorkers {
		return fmt.Errorf("workers %d: must be between 1 and %d", a.Workers, maxWorkers)
	}
	return a.Broker.validate()
}

// ErrBrokerUnsupported is returned by Validate for a broker this build
// cannot use yet.
var ErrBrokerUnsupported = errors.New("not supported in this build yet")

func (b *Broker) validate() error {
	if b == nil {
		return nil
	}
	switch b.Type {
	case "", BrokerMemory:
		if b.URL != "" {
			return fmt.Errorf("broker %s takes no URL, got %q", BrokerMemory, b.URL)
		}
		return nil
	case BrokerRedis:
		return fmt.Errorf("broker %s: %w (only the in-process broker %q is)", BrokerRedis, ErrBrokerUnsupported, BrokerMemory)
	default:
		return fmt.Errorf("unknown broker type %q (want %s or %s)", b.Type, BrokerMemory, BrokerRedis)
	}
}

// Start applies this config's options and handler settings to the Engine.
// Caddy calls it only once every module of the config is provisioned.
func (a *App) Start() error {
	if a.reconfigure {
		a.engine.Configure(a.config())
	}
	a.routes.mu.Lock()
	defer a.routes.mu.Unlock()
	for name, s := range a.routes.settings {
		a.engine.Route(name).Set(s)
	}
	a.logger.Debug("applied configuration",
		zap.Bool("reload", a.reconfigure), zap.Int("routes", len(a.routes.settings)))
	return nil
}

// Stop does nothing: connections outlive a config (see Cleanup).
func (a *App) Stop() error { return nil }

// Cleanup releases this config's reference to the Engine; the last release
// shuts the Engine down. It is safe after a failed Provision.
func (a *App) Cleanup() error {
	if !a.inPool {
		return nil
	}
	a.inPool = false
	if _, err := engines.Delete(engineKey); err != nil {
		return fmt.Errorf("releasing gateway engine: %w", err)
	}
	return nil
}

// config maps the options onto the Engine's Config.
func (a *App) config() gateway.Config {
	return gateway.Config{
		HistorySize:     a.HistorySize,
		HistoryTTL:      time.Duration(a.HistoryTTL),
		HistoryMaxBytes: a.HistoryMaxBytes,
		Workers:         a.Workers,
	}
}

// route records the settings a handler of this config wants for the route
// named name (applied in Start) and returns the route. Handlers sharing a
// name share their live connections' settings, so they must agree.
func (a *App) route(name string, s gateway.RouteSettings) (*gateway.Route, error) {
	a.routes.mu.Lock()
	defer a.routes.mu.Unlock()
	if prev, ok := a.routes.settings[name]; ok && !reflect.DeepEqual(prev, s) {
		return nil, fmt.Errorf("two push_gateway handlers named %q have different settings: give each a distinct name", name)
	}
	a.routes.settings[name] = s
	return a.engine.Route(name), nil
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*pooledEngine)(nil)
)
