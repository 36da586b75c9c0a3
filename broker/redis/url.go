package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Modes a URL selects.
const (
	ModeSingle   = "single"
	ModeSentinel = "sentinel"
	ModeCluster  = "cluster"
)

// ErrBadURL is wrapped by every error ParseURL returns.
var ErrBadURL = errors.New("bad redis url")

// Client timeouts: an outage must fail a publish fast (admin 503) rather
// than hold the publisher.
const (
	dialTimeout = time.Second
	ioTimeout   = time.Second
	poolTimeout = time.Second
)

// schemes maps a URL scheme to its mode and whether it uses TLS.
var schemes = map[string]struct {
	mode string
	tls  bool
}{
	"redis":           {ModeSingle, false},
	"rediss":          {ModeSingle, true},
	"redis-sentinel":  {ModeSentinel, false},
	"rediss-sentinel": {ModeSentinel, true},
	"redis-cluster":   {ModeCluster, false},
	"rediss-cluster":  {ModeCluster, true},
}

// ParseURL turns a broker URL into go-redis options and the mode they
// select:
//
//	redis://[user:pass@]host[:port][/db]                      single server (port 6379)
//	rediss://...                                              the same over TLS
//	redis-sentinel://[user:pass@]h1[:p1][,h2:p2]/master[/db]  Sentinels (port 26379) watching master
//	redis-cluster://[user:pass@]h1[:p1][,h2:p2,...]           Redis Cluster seed nodes (port 6379)
//
// rediss-sentinel and rediss-cluster use TLS. user:pass authenticate to the
// Redis servers; Sentinels that ask a password of their own take it from
// the query: ?sentinel_username=u&sentinel_password=p. Every error wraps
// ErrBadURL and says what is wrong, without the password.
func ParseURL(u string) (*goredis.UniversalOptions, string, error) {
	opts, mode, err := parseURL(u)
	if err != nil {
		return nil, "", fmt.Errorf("%w %q: %v", ErrBadURL, Redact(u), err)
	}
	return opts, mode, nil
}

func parseURL(u string) (*goredis.UniversalOptions, string, error) {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return nil, "", errors.New("want scheme://host:port, e.g. redis://127.0.0.1:6379")
	}
	sch, ok := schemes[strings.ToLower(scheme)]
	if !ok {
		return nil, "", fmt.Errorf("unknown scheme %q: want redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", scheme)
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	if i := strings.Index(rest, "#"); i >= 0 {
		return nil, "", errors.New("a fragment (#) is not allowed")
	}
	hostPart, path, _ := strings.Cut(rest, "/")
	opts := &goredis.UniversalOptions{
		Protocol:        2, // plain replies; no RESP3 push traffic to handle
		DialTimeout:     dialTimeout,
		DialerRetries:   1, // the broker retries itself, with backoff; a refused dial must fail fast
		ReadTimeout:     ioTimeout,
		WriteTimeout:    ioTimeout,
		PoolTimeout:     poolTimeout,
		MaxRetries:      -1, // a publish retried after its reply was lost would be stored twice
		DisableIdentity: true,

		ContextTimeoutEnabled: true,
	}
	// Userinfo ends at the last @: a password may contain @ unescaped.
	if at := strings.LastIndex(hostPart, "@"); at >= 0 {
		user, pass, hasPass := strings.Cut(hostPart[:at], ":")
		var err error
		if opts.Username, err = url.PathUnescape(user); err != nil {
			return nil, "", fmt.Errorf("user name: %v", err)
		}
		if hasPass {
			if opts.Password, err = url.PathUnescape(pass); err != nil {
				return nil, "", errors.New("password: bad %-escape")
			}
		}
		hostPart = hostPart[at+1:]
	}
	defPort := "6379"
	if sch.mode == ModeSentinel {
		defPort = "26379"
	}
	addrs, err := parseHosts(hostPart, defPort)
	if err != nil {
		return nil, "", err
	}
	opts.Addrs = addrs
	if sch.tls {
		// No ServerName: tls.DialWithDialer takes it from each address.
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	segs := splitPath(path)
	switch sch.mode {
	case ModeSingle:
		if len(addrs) > 1 {
			return nil, "", fmt.Errorf("%d hosts for a single server: use redis-cluster:// or redis-sentinel://", len(addrs))
		}
		if len(segs) > 1 {
			return nil, "", fmt.Errorf("path %q: want /<db>", "/"+path)
		}
		if len(segs) == 1 {
			if opts.DB, err = parseDB(segs[0]); err != nil {
				return nil, "", err
			}
		}
	case ModeSentinel:
		if len(segs) == 0 {
			return nil, "", errors.New("no master name: want redis-sentinel://host:port/<master>[/db]")
		}
		if len(segs) > 2 {
			return nil, "", fmt.Errorf("path %q: want /<master>[/db]", "/"+path)
		}
		opts.MasterName = segs[0]
		if len(segs) == 2 {
			if opts.DB, err = parseDB(segs[1]); err != nil {
				return nil, "", err
			}
		}
	case ModeCluster:
		if len(segs) > 0 {
			return nil, "", fmt.Errorf("path %q: Redis Cluster has database 0 only, give no /db", "/"+path)
		}
		opts.IsClusterMode = true
	}
	if err := parseQuery(rawQuery, sch.mode, opts); err != nil {
		return nil, "", err
	}
	return opts, sch.mode, nil
}

// parseHosts splits a comma-separated host list, adding defPort where a
// host has none.
func parseHosts(s, defPort string) ([]string, error) {
	if s == "" {
		return nil, errors.New("no host")
	}
	var addrs []string
	for h := range strings.SplitSeq(s, ",") {
		if h == "" {
			return nil, errors.New("empty host in list")
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: a bare name, or a bracketed IPv6 address.
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defPort
			if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
				return nil, fmt.Errorf("host %q: want host:port", h)
			}
		}
		if host == "" {
			return nil, fmt.Errorf("host %q: no host name", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("host %q: port %q is not a number from 1 to 65535", h, port)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	return addrs, nil
}

func splitPath(p string) []string {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func parseDB(s string) (int, error) {
	db, err := strconv.Atoi(s)
	if err != nil || db < 0 {
		return 0, fmt.Errorf("database %q is not a number from 0", s)
	}
	return db, nil
}

func parseQuery(raw, mode string, opts *goredis.UniversalOptions) error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return fmt.Errorf("query: %v", err)
	}
	for name, vals := range q {
		switch name {
		case "sentinel_username", "sentinel_password":
			if mode != ModeSentinel {
				return fmt.Errorf("query parameter %q applies to redis-sentinel:// only", name)
			}
			if name == "sentinel_username" {
				opts.SentinelUsername = vals[len(vals)-1]
			} else {
				opts.SentinelPassword = vals[len(vals)-1]
			}
		default:
			return fmt.Errorf("unknown query parameter %q: want sentinel_username or sentinel_password", name)
		}
	}
	return nil
}

// Redact hides the password of a broker URL (and a Sentinel password in
// its query) for logs, errors and stats. It errs on the safe side: everything
// before the last @ is taken as user info, so a password holding an
// unescaped / or ? is hidden too.
func Redact(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if user, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
			rest = user + ":xxxxx" + rest[at:]
		}
	}
	if base, query, ok := strings.Cut(rest, "?"); ok && strings.Contains(query, "sentinel_password") {
		if vals, err := url.ParseQuery(query); err == nil {
			vals.Set("sentinel_password", "xxxxx")
			rest = base + "?" + vals.Encode()
		} else {
			rest = base + "?xxxxx"
		}
	}
	return scheme + "://" + rest
}
