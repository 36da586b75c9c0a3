package module

import (
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

// pooledEngine is the usage pool's value: the Engine and its broker, plus
// the Destructor the pool calls on the last release.
type pooledEngine struct {
	engine      *gateway.Engine
	logger      *zap.Logger
	broker      *Broker      // the broker's options, which no reload may change
	closeBroker func() error // nil for the in-process broker
}

// Destruct shuts the Engine down, then closes its broker: the Engine leaves
// the node list through the broker first. The pool calls it once, on the
// last release.
func (p *pooledEngine) Destruct() error {
	p.engine.Shutdown()
	if p.closeBroker != nil {
		if err := p.closeBroker(); err != nil {
			p.logger.Warn("closing the broker failed", zap.Error(err))
		}
	}
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
	// Broker selects the broker; nil means the in-process one. It is fixed
	// for the process's life: a reload that changes it fails.
	Broker *Broker `json:"broker,omitempty"`
	// NodeID names this node in the node list. Default: the host name, "-"
	// and 6 random characters, kept for the process's life.
	NodeID string `json:"node_id,omitempty"`
	// NodeAddress is the public base URL clients connect to on this node,
	// e.g. wss://gw1.example.com/realtime, as the node list shows it.
	NodeAddress string `json:"node_address,omitempty"`
	// NodeZone is this node's zone (data centre, region), as the node
	// list shows it.
	NodeZone string `json:"node_zone,omitempty"`
	// NodeTTL is how long an announcement of the node lives in the node
	// list; the node announces itself every NodeTTL/3. Default: 3s.
	NodeTTL caddy.Duration `json:"node_ttl,omitempty"`
	// Shedding turns adaptive shedding on (shedding.go); nil: off.
	Shedding *Shedding `json:"shedding,omitempty"`
	// DrainWindow spreads a stop's 1001s over this long (shedding.go);
	// nil: 5s, 0: all at once.
	DrainWindow *caddy.Duration `json:"drain_window,omitempty"`
	// KeyPolicy decides which SDK keys may be followed (keypolicy.go).
	KeyPolicy *KeyPolicy `json:"key_policy,omitempty"`
	// Limits are the node's admission limits (limits.go); nil: defaults.
	Limits *Limits `json:"limits,omitempty"`

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
	registerMetrics(ctx.GetMetricsRegistry(), a.logger) // metrics.go
	if err := a.Validate(); err != nil {
		return err
	}
	if err := a.KeyPolicy.load(); err != nil { // allow_file, read on every (re)load
		return err
	}
	val, loaded, err := engines.LoadOrNew(engineKey, a.startEngine)
	if err != nil {
		return fmt.Errorf("starting gateway engine: %w", err)
	}
	pe := val.(*pooledEngine)
	if loaded && !pe.broker.same(a.Broker) {
		// This config will not run: give the reference back at once.
		if _, err := engines.Delete(engineKey); err != nil {
			a.logger.Error("releasing gateway engine", zap.Error(err))
		}
		return fmt.Errorf("%w: running %s, this config asks for %s", ErrBrokerChanged, pe.broker.spec(), a.Broker.spec())
	}
	a.inPool = true
	a.engine = pe.engine
	a.reconfigure = loaded
	return nil
}

// startEngine creates the process's Engine (and its broker): the usage
// pool calls it on the first load only.
func (a *App) startEngine() (caddy.Destructor, error) {
	cfg := a.config()
	closeBroker, err := a.withBroker(&cfg)
	if err != nil {
		return nil, err
	}
	e, err := gateway.New(cfg, a.logger)
	if err != nil {
		if closeBroker != nil {
			_ = closeBroker()
		}
		return nil, err
	}
	a.logger.Info("gateway engine started", zap.String("node_id", e.NodeID()), zap.String("broker", a.Broker.spec()))
	return &pooledEngine{engine: e, logger: a.logger, broker: a.Broker, closeBroker: closeBroker}, nil
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
	if err := a.validateNode(); err != nil {
		return err
	}
	if err := a.Shedding.validate(); err != nil {
		return err
	}
	if err := validateDrainWindow(a.DrainWindow); err != nil {
		return err
	}
	if err := a.KeyPolicy.validate(); err != nil {
		return err
	}
	if err := a.Limits.validate(); err != nil {
		return err
	}
	return a.Broker.validate()
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

// Stop shuts the Engine down when this config holds its last reference: a
// real stop, not a reload (a reload's new config took its reference before
// the old one stops). Leaving the node list and sending 1001 here, rather
// than in Cleanup, lets clients move to another node at once instead of
// after the HTTP servers' grace period, which held long polls and HTTP/2
// streams would otherwise run out. Otherwise connections outlive the
// config (see Cleanup).
func (a *App) Stop() error {
	if a.inPool {
		if refs, ok := engines.References(engineKey); ok && refs == 1 {
			a.engine.Shutdown()
		}
	}
	return nil
}

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

// config maps the options onto the Engine's Config; the broker is
// startEngine's (withBroker).
func (a *App) config() gateway.Config {
	return gateway.Config{
		HistorySize:     a.HistorySize,
		HistoryTTL:      time.Duration(a.HistoryTTL),
		HistoryMaxBytes: a.HistoryMaxBytes,
		Workers:         a.Workers,
		Node:            gateway.NodeInfo{ID: a.NodeID, Address: a.NodeAddress, Zone: a.NodeZone},
		NodeTTL:         time.Duration(a.NodeTTL),
		Shedding:        a.Shedding.config(),
		DrainWindow:     drainWindow(a.DrainWindow),
		KeyPolicy:       a.KeyPolicy.config(),
		Limits:          a.Limits.gateway(),
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
