package module

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/pushgateway/push_gateway/gateway"
	"github.com/pushgateway/push_gateway/hub"
)

// KeyPolicy is the global options' `key_policy` block: which SDK keys may
// be followed. Each part narrows: a key must match the pattern and length,
// be on the allow-list (when one is given) and be accepted by the backend
// (when a check is configured).
type KeyPolicy struct {
	// Pattern is a regular expression (Go syntax) every key must match as
	// a whole; a key that does not is a malformed register (4400 / 400).
	Pattern string `json:"pattern,omitempty"`
	// MaxLength is the longest key accepted, in bytes (at most 256).
	MaxLength int `json:"max_length,omitempty"`
	// Allow lists the keys that may be followed; others are refused
	// (4401 / 403). With AllowFile, both lists count.
	Allow []string `json:"allow,omitempty"`
	// AllowFile names a file of allowed keys, one per line (blank lines
	// and lines starting with # are skipped), read on every load and
	// reload of the config.
	AllowFile string `json:"allow_file,omitempty"`
	// Check asks the toggle backend about keys.
	Check *KeyCheck `json:"check,omitempty"`

	fileKeys []string // AllowFile's keys, read by load
}

// KeyCheck is the backend check: GET <url>?sdk_key=K, 2xx allowed,
// 401/403/404 refused, anything else or a timeout a backend error.
type KeyCheck struct {
	// URL is the backend's check endpoint (http or https).
	URL string `json:"url"`
	// TTL is how long an allowed answer is cached. Default 1m.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// NegativeTTL is how long a refusal is cached. Default 10s.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`
	// Timeout bounds one request to the backend. Default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// OnError is allow or deny: the verdict while the backend fails.
	// Default allow.
	OnError string `json:"on_error,omitempty"`
	// MaxConcurrent bounds the backend requests in flight. Default 16.
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// CacheSize bounds the answers cached, least recently used evicted
	// first. Default 100000.
	CacheSize int `json:"cache_size,omitempty"`
}

// maxKeyCheckConcurrency bounds max_concurrent: more is a typo.
const maxKeyCheckConcurrency = 1024

// validate judges the policy without touching the file system (it runs at
// adapt time too).
func (p *KeyPolicy) validate() error {
	if p == nil {
		return nil
	}
	if p.Check != nil && p.Check.MaxConcurrent > maxKeyCheckConcurrency {
		return fmt.Errorf("key_policy: max_concurrent %d: must be at most %d", p.Check.MaxConcurrent, maxKeyCheckConcurrency)
	}
	if err := p.gatewayConfig(p.Allow).Validate(); err != nil {
		return fmt.Errorf("key_policy: %w", err)
	}
	return nil
}

// load reads AllowFile; App.Provision calls it, so that a reload reads the
// file again.
func (p *KeyPolicy) load() error {
	if p == nil || p.AllowFile == "" {
		return nil
	}
	keys, err := readAllowFile(p.AllowFile)
	if err != nil {
		return fmt.Errorf("key_policy: %w", err)
	}
	p.fileKeys = keys
	return nil
}

// readAllowFile reads one key per line; blank lines and # comments are
// skipped.
func readAllowFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading allow_file: %w", err)
	}
	defer f.Close()
	keys := []string{} // an empty file is an empty allow-list, not none
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		k := strings.TrimSpace(sc.Text())
		if k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if hub.ValidKey(k) != nil {
			return nil, fmt.Errorf("allow_file %s:%d: %q is not a valid sdk key", path, line, k)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading allow_file %s: %w", path, err)
	}
	return keys, nil
}

// config maps the policy onto the Engine's; nil for no policy.
func (p *KeyPolicy) config() *gateway.KeyPolicyConfig {
	if p == nil {
		return nil
	}
	var allow []string
	if p.Allow != nil || p.AllowFile != "" {
		allow = append(append([]string{}, p.Allow...), p.fileKeys...)
	}
	return p.gatewayConfig(allow)
}

func (p *KeyPolicy) gatewayConfig(allow []string) *gateway.KeyPolicyConfig {
	cfg := &gateway.KeyPolicyConfig{Pattern: p.Pattern, MaxLength: p.MaxLength, Allow: allow}
	if c := p.Check; c != nil {
		cfg.Check = &gateway.KeyCheckConfig{
			URL:           c.URL,
			TTL:           time.Duration(c.TTL),
			NegativeTTL:   time.Duration(c.NegativeTTL),
			Timeout:       time.Duration(c.Timeout),
			OnError:       c.OnError,
			MaxConcurrent: c.MaxConcurrent,
			CacheSize:     c.CacheSize,
		}
	}
	return cfg
}

// unmarshalKeyPolicy reads the key_policy block of the global option.
// Syntax:
//
//	key_policy {
//	    pattern    <regexp>
//	    max_length <bytes>
//	    allow      <key...>        # may be repeated
//	    allow_file <path>
//	    check <url> {
//	        ttl            <duration>
//	        negative_ttl   <duration>
//	        timeout        <duration>
//	        on_error       allow|deny
//	        max_concurrent <count>
//	        cache_size     <count>
//	    }
//	}
//
// Every value is judged here, so that `caddy adapt` points at the line.
func unmarshalKeyPolicy(d *caddyfile.Dispenser) (*KeyPolicy, error) {
	if d.NextArg() {
		return nil, d.Errf("unexpected argument %q: key_policy takes a block", d.Val())
	}
	p := new(KeyPolicy)
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] && sub != "allow" {
			return nil, d.Errf("key_policy: %s given twice", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "pattern":
			if err = singleArg(d, &p.Pattern); err == nil {
				err = judge(d, (&KeyPolicy{Pattern: p.Pattern}).validate())
			}
		case "max_length":
			if err = countArg(d, &p.MaxLength); err == nil {
				err = judge(d, (&KeyPolicy{MaxLength: p.MaxLength}).validate())
			}
		case "allow":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			if err = judge(d, (&KeyPolicy{Allow: args}).validate()); err == nil {
				p.Allow = append(p.Allow, args...)
			}
		case "allow_file":
			err = singleArg(d, &p.AllowFile)
		case "check":
			p.Check, err = unmarshalKeyCheck(d)
		default:
			return nil, d.Errf("unknown key_policy option %q", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := p.validate(); err != nil {
		return nil, d.Errf("push_gateway: %v", err)
	}
	return p, nil
}

// unmarshalKeyCheck reads `check <url> { … }`.
func unmarshalKeyCheck(d *caddyfile.Dispenser) (*KeyCheck, error) {
	c := new(KeyCheck)
	if !d.NextArg() {
		return nil, d.Errf("check needs the backend's URL, e.g. check http://backend:4009/api/sdk-key-check")
	}
	c.URL = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	if err := judge(d, (&KeyPolicy{Check: c}).validate()); err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, d.Errf("check: %s given twice", sub)
		}
		seen[sub] = true
		var err error
		switch sub {
		case "ttl":
			err = durationArg(d, &c.TTL)
		case "negative_ttl":
			err = durationArg(d, &c.NegativeTTL)
		case "timeout":
			err = durationArg(d, &c.Timeout)
		case "on_error":
			err = parsedArg(d, &c.OnError, "policy", gateway.KeyCheckAllow+" or "+gateway.KeyCheckDeny, func(v string) (string, bool) {
				return v, v == gateway.KeyCheckAllow || v == gateway.KeyCheckDeny
			})
		case "max_concurrent":
			err = parsedArg(d, &c.MaxConcurrent, "count", "an integer from 1 to "+strconv.Itoa(maxKeyCheckConcurrency), func(v string) (int, bool) {
				n, err := strconv.Atoi(v)
				return n, err == nil && n > 0 && n <= maxKeyCheckConcurrency
			})
		case "cache_size":
			err = countArg(d, &c.CacheSize)
		default:
			return nil, d.Errf("unknown check option %q", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// judge turns a validation error into one naming the current line.
func judge(d *caddyfile.Dispenser, err error) error {
	if err != nil {
		return d.Errf("push_gateway: %v", err)
	}
	return nil
}
