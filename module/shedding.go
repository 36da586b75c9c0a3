package module

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/pushgateway/push_gateway/gateway"
)

// Bounds of the shedding and drain options: a value outside them is a typo
// (a budget in bytes meant as MiB, a lag in ms meant as s), not a setting.
const (
	minMemoryBudget = 1 << 20
	minFanoutLag    = 100 * time.Millisecond // the monitor ticks every 250ms, the poller's clock every 50ms
	maxFanoutLag    = 10 * time.Minute
	minRetryAfter   = time.Second // Retry-After counts whole seconds
	maxRetryAfter   = time.Hour
	maxDrainWindow  = 5 * time.Minute // Caddy's stop waits for the drain
)

// ErrSheddingEmpty is a shedding block that watches nothing.
var ErrSheddingEmpty = errors.New("shedding: give memory_budget, max_fanout_lag or both")

// Shedding is the global `shedding` block: the gateway refuses new
// connections (503 + Retry-After) and closes its slowest consumers (4503)
// while the heap in use is over MemoryBudget or the fan-out lag is over
// MaxFanoutLag, and recovers by itself.
type Shedding struct {
	// MemoryBudget is the heap in use, in bytes, above which the gateway
	// sheds; 0: not watched.
	MemoryBudget int64 `json:"memory_budget,omitempty"`
	// MaxFanoutLag is the longest a queued message may wait for its write
	// before the gateway sheds; 0: not watched.
	MaxFanoutLag caddy.Duration `json:"max_fanout_lag,omitempty"`
	// RetryAfter is the Retry-After of refused requests. Default 10s.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`
}

// validate judges the block; nil (no block) is valid.
func (s *Shedding) validate() error {
	if s == nil {
		return nil
	}
	if s.MemoryBudget == 0 && s.MaxFanoutLag == 0 {
		return ErrSheddingEmpty
	}
	if s.MemoryBudget != 0 && s.MemoryBudget < minMemoryBudget {
		return fmt.Errorf("shedding: memory_budget %d: must be at least %s", s.MemoryBudget, humanize.IBytes(minMemoryBudget))
	}
	if lag := time.Duration(s.MaxFanoutLag); lag != 0 && (lag < minFanoutLag || lag > maxFanoutLag) {
		return fmt.Errorf("shedding: max_fanout_lag %s: must be between %s and %s", lag, minFanoutLag, maxFanoutLag)
	}
	if ra := time.Duration(s.RetryAfter); ra != 0 && (ra < minRetryAfter || ra > maxRetryAfter) {
		return fmt.Errorf("shedding: retry_after %s: must be between %s and %s", ra, minRetryAfter, maxRetryAfter)
	}
	return nil
}

// config maps the block onto the Engine's ShedConfig; nil is off.
func (s *Shedding) config() gateway.ShedConfig {
	if s == nil {
		return gateway.ShedConfig{}
	}
	return gateway.ShedConfig{
		MemoryBudget: s.MemoryBudget,
		MaxFanoutLag: time.Duration(s.MaxFanoutLag),
		RetryAfter:   time.Duration(s.RetryAfter),
	}
}

// parseShedding reads the global option's `shedding` block. Syntax:
//
//	shedding {
//	    memory_budget  <size>
//	    max_fanout_lag <duration>
//	    retry_after    <duration>
//	}
func parseShedding(d *caddyfile.Dispenser) (*Shedding, error) {
	if d.NextArg() {
		return nil, d.Errf("unexpected argument %q: shedding takes a block", d.Val())
	}
	s := new(Shedding)
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, d.Errf("shedding: %s given twice", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "memory_budget":
			err = sizeArg(d, &s.MemoryBudget)
		case "max_fanout_lag":
			err = durationArg(d, &s.MaxFanoutLag)
		case "retry_after":
			err = durationArg(d, &s.RetryAfter)
		default:
			return nil, d.Errf("unknown shedding option %q (want memory_budget, max_fanout_lag, retry_after)", sub)
		}
		if err != nil {
			return nil, err
		}
		if err := s.validate(); err != nil && !errors.Is(err, ErrSheddingEmpty) {
			return nil, d.Errf("push_gateway: %v", err)
		}
	}
	if err := s.validate(); err != nil {
		return nil, d.Errf("push_gateway: %v", err)
	}
	return s, nil
}

// drainWindowArg reads `drain_window <duration>`; 0 closes every
// connection at once.
func drainWindowArg(d *caddyfile.Dispenser, dst **caddy.Duration) error {
	var dur caddy.Duration
	err := parsedArg(d, &dur, "duration", "0 or a duration like 5s, at most "+maxDrainWindow.String(), func(v string) (caddy.Duration, bool) {
		x, err := caddy.ParseDuration(v)
		return caddy.Duration(x), err == nil && x >= 0 && x <= maxDrainWindow
	})
	if err != nil {
		return err
	}
	*dst = &dur
	return nil
}

// validateDrainWindow judges the drain window; nil is the default.
func validateDrainWindow(w *caddy.Duration) error {
	if w != nil && (*w < 0 || time.Duration(*w) > maxDrainWindow) {
		return fmt.Errorf("drain_window %s: must be between 0 and %s", time.Duration(*w), maxDrainWindow)
	}
	return nil
}

// drainWindow maps the option onto Config.DrainWindow: nil is the default
// (0 there), 0 is "all at once" (negative there).
func drainWindow(w *caddy.Duration) time.Duration {
	switch {
	case w == nil:
		return 0
	case *w == 0:
		return -1
	default:
		return time.Duration(*w)
	}
}
