package module

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("push_gateway", parseHandlerDirective)
	// The client endpoint answers its own routes completely; running it
	// before reverse_proxy means a site needs no `order` line to put both
	// on one host, the FeatureProbe layout.
	httpcaddyfile.RegisterDirectiveOrder("push_gateway", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterGlobalOption("push_gateway", parseGlobalOption)
}

func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return handler, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	push_gateway [<matcher>] {
//	    name                    <name>
//	    transports              <websocket|sse|poll|socketio...>
//	    socketio_path           <path...>
//	    heartbeat               <duration>
//	    idle_timeout            <duration>
//	    max_message_size        <size>
//	    max_keys_per_connection <count>
//	    queue_size              <count>
//	    poll_max_wait           <duration>
//	}
//
// Every subdirective is optional. A size is bytes, or a number with a unit
// (64KiB, 1MB). The settings are validated here already, so that `caddy
// adapt` points at the Caddyfile line of a mistake.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.Errf("unexpected argument %q: push_gateway takes a matcher and a block", d.Val())
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		sub := d.Val()
		if seen[sub] {
			return d.Errf("%s given twice", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "name":
			err = singleArg(d, &h.Name)
		case "transports":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, t := range args {
				if !slices.Contains(knownTransports, t) {
					return d.Errf("unknown transport %q (want %s)", t, strings.Join(knownTransports, ", "))
				}
			}
			h.Transports = args
		case "socketio_path":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.SocketIOPath = args
		case "heartbeat":
			err = durationArg(d, &h.Heartbeat)
		case "idle_timeout":
			err = durationArg(d, &h.IdleTimeout)
		case "max_message_size":
			err = sizeArg(d, &h.MaxMessageSize)
		case "max_keys_per_connection":
			err = countArg(d, &h.MaxKeysPerConnection)
		case "queue_size":
			err = countArg(d, &h.QueueSize)
		case "poll_max_wait":
			err = durationArg(d, &h.PollMaxWait)
		default:
			return d.Errf("unknown subdirective %q", sub)
		}
		if err != nil {
			return err
		}
	}
	if err := h.Validate(); err != nil {
		return d.Errf("push_gateway: %v", err)
	}
	return nil
}

// parseGlobalOption sets up the push_gateway app from the global option.
// Syntax:
//
//	push_gateway {
//	    history_size      <count>
//	    history_ttl       <duration>
//	    history_max_bytes <size>
//	    workers           <count>
//	    broker            memory | redis <url>
//	    node_id           <id>
//	    node_address      <url>
//	    node_zone         <zone>
//	    node_ttl          <duration>
//	    key_policy        { … }   (see unmarshalKeyPolicy)
//	    shedding {
//	        memory_budget  <size>
//	        max_fanout_lag <duration>
//	        retry_after    <duration>
//	    }
//	    drain_window      <duration>
//	    limits {
//	        max_connections        <count> | 0 | off
//	        max_connections_per_ip <count> | off
//	        max_followers_per_key  <count> | off
//	        upgrade_rate           <n>/s | <n>/m [burst <count>]
//	        publish_rate           <n>/s | <n>/m [burst <count>]
//	    }
//	}
//
// The Redis URL is redis://, rediss://,
// redis-sentinel://<host:port>,<host:port>/<master>[/<db>] or
// redis-cluster://<host:port>,<host:port>. The broker cannot change on a
// reload.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if prev, ok := existing.(httpcaddyfile.App); ok {
		// the option given twice: the later block adds to the earlier one
		if err := json.Unmarshal(prev.Value, app); err != nil {
			return nil, fmt.Errorf("merging push_gateway options: %w", err)
		}
	}
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: appID, Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the global option's tokens; see
// parseGlobalOption for the syntax.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume option name
	if d.NextArg() {
		return d.Errf("unexpected argument %q: the push_gateway option takes a block", d.Val())
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		sub := d.Val()
		if seen[sub] {
			return d.Errf("%s given twice", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "history_size":
			err = countArg(d, &a.HistorySize)
		case "history_ttl":
			err = durationArg(d, &a.HistoryTTL)
		case "history_max_bytes":
			err = sizeArg(d, &a.HistoryMaxBytes)
		case "workers":
			err = countArg(d, &a.Workers)
		case "broker":
			if !d.NextArg() {
				return d.ArgErr()
			}
			b := &Broker{Type: d.Val()}
			switch b.Type {
			case BrokerMemory:
			case BrokerRedis:
				if !d.NextArg() {
					return d.Errf("broker %s needs a URL, e.g. redis://127.0.0.1:6379/0", BrokerRedis)
				}
				b.URL = d.Val()
			default:
				return d.Errf("unknown broker %q (want %s or %s <url>)", b.Type, BrokerMemory, BrokerRedis)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if err := b.validate(); err != nil {
				return d.Errf("push_gateway: %v", err)
			}
			a.Broker = b
		case "node_id":
			err = nodeArg(d, &a.NodeID, func(v string) error { return validateNodeName(sub, v) })
		case "node_zone":
			err = nodeArg(d, &a.NodeZone, func(v string) error { return validateNodeName(sub, v) })
		case "node_address":
			err = nodeArg(d, &a.NodeAddress, validateNodeAddress)
		case "node_ttl":
			if err = durationArg(d, &a.NodeTTL); err == nil {
				if verr := a.validateNode(); verr != nil {
					err = d.Errf("push_gateway: %v", verr)
				}
			}
		case "key_policy":
			a.KeyPolicy, err = unmarshalKeyPolicy(d) // keypolicy.go
		case "limits":
			err = unmarshalLimits(d, &a.Limits) // limits.go
		case "shedding":
			a.Shedding, err = parseShedding(d) // shedding.go
		case "drain_window":
			err = drainWindowArg(d, &a.DrainWindow) // shedding.go
		default:
			return d.Errf("unknown push_gateway option %q", sub)
		}
		if err != nil {
			return err
		}
	}
	// Judge the values now, for the line number.
	if err := a.Validate(); err != nil {
		return d.Errf("push_gateway: %v", err)
	}
	return nil
}

// nodeArg reads the subdirective's one argument into dst once valid
// accepts it; the error points at the line.
func nodeArg(d *caddyfile.Dispenser, dst *string, valid func(string) error) error {
	var v string
	if err := singleArg(d, &v); err != nil {
		return err
	}
	if err := valid(v); err != nil {
		return d.Errf("push_gateway: %v", err)
	}
	*dst = v
	return nil
}

// singleArg reads the one argument of the current subdirective into dst.
func singleArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	*dst = v
	return nil
}

// parsedArg reads the subdirective's one argument into dst through parse,
// which reports false for a value it refuses; the error names the
// subdirective, the value and what is wanted.
func parsedArg[T any](d *caddyfile.Dispenser, dst *T, kind, want string, parse func(string) (T, bool)) error {
	name, v := d.Val(), ""
	if err := singleArg(d, &v); err != nil {
		return err
	}
	x, ok := parse(v)
	if !ok {
		return d.Errf("%s: invalid %s %q: want %s", name, kind, v, want)
	}
	*dst = x
	return nil
}

// durationArg reads a positive duration into dst.
func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return parsedArg(d, dst, "duration", "a positive duration like 25s", func(v string) (caddy.Duration, bool) {
		dur, err := caddy.ParseDuration(v)
		return caddy.Duration(dur), err == nil && dur > 0
	})
}

// countArg reads a positive integer into dst.
func countArg(d *caddyfile.Dispenser, dst *int) error {
	return parsedArg(d, dst, "count", "a positive integer", func(v string) (int, bool) {
		n, err := strconv.Atoi(v)
		return n, err == nil && n > 0
	})
}

// sizeArg reads a positive byte size into dst: bytes, or a number with a unit.
func sizeArg(d *caddyfile.Dispenser, dst *int64) error {
	return parsedArg(d, dst, "size", "bytes or a size like 64KiB", func(v string) (int64, bool) {
		n, err := humanize.ParseBytes(v)
		return int64(n), err == nil && n > 0 && n <= math.MaxInt64
	})
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*App)(nil)
)
