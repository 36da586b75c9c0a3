package module

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/broker/redis"
	"github.com/pushgateway/push_gateway/gateway"
	"github.com/pushgateway/push_gateway/hub"
)

// This file is cluster mode's glue: the broker and node options of the
// push_gateway app, and the Redis broker the process's Engine is built
// around.

// Broker types.
const (
	BrokerMemory = "memory"
	BrokerRedis  = "redis"
)

// Broker selects where published messages are fanned out between nodes.
type Broker struct {
	// Type is "memory" (the default: in-process, single node) or "redis".
	Type string `json:"type,omitempty"`
	// URL is the Redis URL of the "redis" broker: redis://, rediss://,
	// redis-sentinel://h1:p1,h2:p2/<master>[/db] or
	// redis-cluster://h1:p1,h2:p2.
	URL string `json:"url,omitempty"`
}

// ErrBrokerChanged is returned by Provision for a config whose broker is
// not the running Engine's: the hub is built around its broker, so a
// reload cannot swap it.
var ErrBrokerChanged = errors.New("the broker can only change with a restart")

// Bounds of the node options; a value outside them is a typo.
const (
	maxNodeName    = 64
	maxNodeAddress = 512
	minNodeTTL     = 300 * time.Millisecond // announcements every 100ms at most
	maxNodeTTL     = 10 * time.Minute       // a killed node leaves the list within it
)

func (b *Broker) isRedis() bool { return b != nil && b.Type == BrokerRedis }

// spec names the broker for messages and logs, passwords masked.
func (b *Broker) spec() string {
	if !b.isRedis() {
		return BrokerMemory
	}
	return BrokerRedis + " " + redis.Redact(b.URL)
}

// same reports whether b and o select the same broker (a changed password
// is a change).
func (b *Broker) same(o *Broker) bool {
	if !b.isRedis() || !o.isRedis() {
		return b.isRedis() == o.isRedis()
	}
	return b.URL == o.URL
}

func (b *Broker) validate() error {
	if b == nil {
		return nil
	}
	switch b.Type {
	case "", BrokerMemory:
		if b.URL != "" {
			return fmt.Errorf("broker %s takes no URL, got %q", BrokerMemory, redis.Redact(b.URL))
		}
		return nil
	case BrokerRedis:
		if b.URL == "" {
			return fmt.Errorf("broker %s needs a URL, e.g. redis://127.0.0.1:6379/0", BrokerRedis)
		}
		// ParseURL's error quotes the URL, password masked.
		if _, _, err := redis.ParseURL(b.URL); err != nil {
			return fmt.Errorf("broker %s: %w", BrokerRedis, err)
		}
		return nil
	default:
		return fmt.Errorf("unknown broker type %q (want %s or %s)", b.Type, BrokerMemory, BrokerRedis)
	}
}

// validateNodeName judges node_id and node_zone: they end up in JSON,
// Redis keys and log lines.
func validateNodeName(option, v string) error {
	ok := len(v) > 0 && len(v) <= maxNodeName
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':'
	}
	if !ok {
		return fmt.Errorf("%s %q: want 1 to %d letters, digits, '.', '-', '_' or ':'", option, clip(v), maxNodeName)
	}
	return nil
}

// validateNodeAddress judges node_address: the base URL clients open.
func validateNodeAddress(v string) error {
	u, err := url.Parse(v)
	ok := err == nil && len(v) <= maxNodeAddress && u.Host != "" && u.User == nil
	if ok {
		switch u.Scheme {
		case "ws", "wss", "http", "https":
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("node_address %q: want a ws://, wss://, http:// or https:// URL with a host, e.g. wss://gw1.example.com/realtime", clip(v))
	}
	return nil
}

// validateNode judges the node options of a.
func (a *App) validateNode() error {
	if a.NodeID != "" {
		if err := validateNodeName("node_id", a.NodeID); err != nil {
			return err
		}
	}
	if a.NodeZone != "" {
		if err := validateNodeName("node_zone", a.NodeZone); err != nil {
			return err
		}
	}
	if a.NodeAddress != "" {
		if err := validateNodeAddress(a.NodeAddress); err != nil {
			return err
		}
	}
	if ttl := time.Duration(a.NodeTTL); ttl != 0 && (ttl < minNodeTTL || ttl > maxNodeTTL) {
		return fmt.Errorf("node_ttl %s: must be between %s and %s", ttl, minNodeTTL, maxNodeTTL)
	}
	return nil
}

// withBroker creates the broker a asks for and sets cfg up around it; the
// closer it returns (nil for the in-process broker) is closed once the
// Engine is shut down. redis.New does not need Redis to be up: the broker
// connects, and reconnects, on its own.
func (a *App) withBroker(cfg *gateway.Config) (closer func() error, err error) {
	if !a.Broker.isRedis() {
		return nil, nil
	}
	_, mode, err := redis.ParseURL(a.Broker.URL)
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w", BrokerRedis, err)
	}
	// The Engine hands the broker its history settings again (Configure,
	// defaults filled in) from New and each reload; these are the same.
	size, ttl := a.HistorySize, time.Duration(a.HistoryTTL)
	if size == 0 {
		size = hub.DefaultHistorySize
	}
	if ttl == 0 {
		ttl = hub.DefaultHistoryTTL
	}
	b, err := redis.New(redis.Options{URL: a.Broker.URL, HistorySize: size, HistoryTTL: ttl, Logger: a.logger.Named("broker")})
	if err != nil {
		return nil, fmt.Errorf("creating broker %s: %w", a.Broker.spec(), err)
	}
	cfg.Broker, cfg.Registry = b, b
	cfg.BrokerStatus = func() any { return b.Status() }
	a.logger.Info("redis broker created", zap.String("url", redis.Redact(a.Broker.URL)), zap.String("mode", mode))
	return b.Close, nil
}
