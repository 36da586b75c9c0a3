package module

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pushgateway/push_gateway/gateway"
)

// Bounds of the limits; a value outside them is a typo.
const (
	maxLimitCount = 1 << 24 // connections, per IP, per key, burst
	maxLimitRate  = 1e6     // tokens per second
)

// Limits are the global `limits` options: admission limits of the node.
// A reload applies them to new admissions at once; connections already
// above a lowered cap stay.
type Limits struct {
	// MaxConnections caps the node's connections, all transports together.
	// Absent: derived from the open-files limit, less max(256, 10%) of
	// headroom. 0: unlimited.
	MaxConnections *int `json:"max_connections,omitempty"`
	// MaxConnectionsPerIP caps one client IP's connections (Caddy's client
	// IP: the TCP peer, or the forwarded client behind trusted_proxies).
	MaxConnectionsPerIP int `json:"max_connections_per_ip,omitempty"`
	// MaxFollowersPerKey caps one SDK key's followers on this node.
	MaxFollowersPerKey int `json:"max_followers_per_key,omitempty"`
	// UpgradeRate paces new connections (a token bucket).
	UpgradeRate *Rate `json:"upgrade_rate,omitempty"`
	// PublishRate paces POST /push_gateway/publish (a token bucket).
	PublishRate *Rate `json:"publish_rate,omitempty"`
}

// Rate is a token bucket: PerSecond tokens a second, at most Burst held
// (default: one second's worth, at least 1).
type Rate struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst,omitempty"`
}

// validate judges the limits; nil limits are the defaults.
func (l *Limits) validate() error {
	if l == nil {
		return nil
	}
	if n := l.MaxConnections; n != nil && (*n < 0 || *n > maxLimitCount) {
		return fmt.Errorf("limits: max_connections %d: must be 0 (unlimited) or between 1 and %d", *n, maxLimitCount)
	}
	if n := l.MaxConnectionsPerIP; n < 0 || n > maxLimitCount {
		return fmt.Errorf("limits: max_connections_per_ip %d: must be between 1 and %d", n, maxLimitCount)
	}
	if n := l.MaxFollowersPerKey; n < 0 || n > maxLimitCount {
		return fmt.Errorf("limits: max_followers_per_key %d: must be between 1 and %d", n, maxLimitCount)
	}
	if err := l.UpgradeRate.validate("upgrade_rate"); err != nil {
		return err
	}
	return l.PublishRate.validate("publish_rate")
}

func (r *Rate) validate(name string) error {
	if r == nil {
		return nil
	}
	if !(r.PerSecond > 0 && r.PerSecond <= maxLimitRate) { // also refuses NaN
		return fmt.Errorf("limits: %s %g/s: must be above 0 and at most %g/s", name, r.PerSecond, float64(maxLimitRate))
	}
	if r.Burst < 0 || r.Burst > maxLimitCount {
		return fmt.Errorf("limits: %s burst %d: must be between 1 and %d", name, r.Burst, maxLimitCount)
	}
	return nil
}

// gateway maps the options onto the Engine's Limits.
func (l *Limits) gateway() gateway.Limits {
	g := gateway.Limits{ClientIP: caddyClientIP}
	if l == nil {
		return g
	}
	if l.MaxConnections != nil {
		g.MaxConnections = *l.MaxConnections
		if g.MaxConnections == 0 {
			g.MaxConnections = -1 // explicitly unlimited
		}
	}
	g.MaxConnectionsPerIP = l.MaxConnectionsPerIP
	g.MaxFollowersPerKey = l.MaxFollowersPerKey
	g.UpgradeRate = l.UpgradeRate.gateway()
	g.PublishRate = l.PublishRate.gateway()
	return g
}

func (r *Rate) gateway() gateway.Rate {
	if r == nil {
		return gateway.Rate{}
	}
	return gateway.Rate{PerSecond: r.PerSecond, Burst: r.Burst}
}

// caddyClientIP is the client IP Caddy determined for r: the TCP peer, or
// with trusted_proxies the client the proxy forwarded for.
func caddyClientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// unmarshalLimits reads the `limits` block of the global option into *dst
// (adding to limits given before). Syntax:
//
//	limits {
//	    max_connections        <count> | 0 | off
//	    max_connections_per_ip <count> | off
//	    max_followers_per_key  <count> | off
//	    upgrade_rate           <n>/s | <n>/m [burst <count>]
//	    publish_rate           <n>/s | <n>/m [burst <count>]
//	}
func unmarshalLimits(d *caddyfile.Dispenser, dst **Limits) error {
	if d.NextArg() {
		return d.Errf("unexpected argument %q: limits takes a block", d.Val())
	}
	l := *dst
	if l == nil {
		l = new(Limits)
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return d.Errf("limits: %s given twice", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "max_connections":
			var n int
			if err = limitCountArg(d, &n); err == nil {
				l.MaxConnections = &n
			}
		case "max_connections_per_ip":
			err = limitCountArg(d, &l.MaxConnectionsPerIP)
		case "max_followers_per_key":
			err = limitCountArg(d, &l.MaxFollowersPerKey)
		case "upgrade_rate":
			err = rateArg(d, &l.UpgradeRate)
		case "publish_rate":
			err = rateArg(d, &l.PublishRate)
		default:
			return d.Errf("unknown limits option %q", sub)
		}
		if err != nil {
			return err
		}
	}
	if err := l.validate(); err != nil {
		return d.Errf("push_gateway: %v", err)
	}
	*dst = l
	return nil
}

// limitCountArg reads a count into dst: a non-negative integer, or off (0,
// unlimited).
func limitCountArg(d *caddyfile.Dispenser, dst *int) error {
	return parsedArg(d, dst, "count", "a non-negative integer or off", func(v string) (int, bool) {
		if v == "off" {
			return 0, true
		}
		n, err := strconv.Atoi(v)
		return n, err == nil && n >= 0 && n <= maxLimitCount
	})
}

// rateArg reads `<n>/s | <n>/m [burst <count>]` into *dst.
func rateArg(d *caddyfile.Dispenser, dst **Rate) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	perSecond, ok := parseRate(d.Val())
	if !ok {
		return d.Errf("%s: invalid rate %q: want a positive number per second or minute, like 100/s or 30/m", name, d.Val())
	}
	r := &Rate{PerSecond: perSecond}
	if d.NextArg() {
		if d.Val() != "burst" {
			return d.Errf("%s: unexpected %q: want burst <count>", name, d.Val())
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		n, err := strconv.Atoi(d.Val())
		if err != nil || n < 1 || n > maxLimitCount {
			return d.Errf("%s: invalid burst %q: want an integer between 1 and %d", name, d.Val(), maxLimitCount)
		}
		r.Burst = n
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	*dst = r
	return nil
}

// parseRate reads <n>/s or <n>/m as tokens per second.
func parseRate(v string) (float64, bool) {
	num, unit, ok := strings.Cut(v, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || !(n > 0) || math.IsInf(n, 0) {
		return 0, false
	}
	switch unit {
	case "s":
	case "m":
		n /= 60
	default:
		return 0, false
	}
	return n, n <= maxLimitRate
}

// publishLimiter is a backend that paces publishes (the Engine's
// publish_rate); test backends need not be one.
type publishLimiter interface {
	AllowPublish() (retryAfter time.Duration, ok bool)
}

func (b engineBackend) AllowPublish() (time.Duration, bool) { return b.e.AllowPublish() }

// admitPublish takes a publish_rate token for a publish request, or
// answers 429 with Retry-After.
func admitPublish(w http.ResponseWriter, b backend) error {
	pl, ok := b.(publishLimiter)
	if !ok {
		return nil
	}
	wait, ok := pl.AllowPublish()
	if ok {
		return nil
	}
	secs := int(wait / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return apiError(http.StatusTooManyRequests, fmt.Errorf("publishing faster than publish_rate: retry in %ds", secs))
}
