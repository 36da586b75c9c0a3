package redis

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// FuzzParseURL: ParseURL never panics; what it refuses wraps ErrBadURL and
// does not show the password; what it accepts names at least one host:port
// (exactly one for a single server) and a database from 0. Redact never
// shows a password either.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379/0",
		"rediss://user:s3cr3t-pass@redis.example.com/2",
		"redis-sentinel://:pw-longer-than-8@h1:26379,h2/mymaster/1?sentinel_password=sentinel-secret",
		"redis-cluster://a:1,b:2,[::1]:3",
		"redis://[::1]",
		"redis://u:p%zz@h",
		"redis://h/0#frag",
		"REDIS://h:0",
		"redis://h:99999",
		"redis://h,g",
		"redis-sentinel://h",
		"redis://h?x=1",
		"redis://:@",
		"://",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		pass := urlPassword(u)
		// Only a password long enough and found once can be looked for
		// in the output without matching the host or the scheme.
		secret := len(pass) >= 8 && strings.Count(u, pass) == 1
		if r := Redact(u); secret && strings.Contains(r, pass) {
			t.Fatalf("Redact(%q) = %q shows the password", u, r)
		}
		opts, mode, err := ParseURL(u)
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("error %v does not wrap ErrBadURL", err)
			}
			if secret && strings.Contains(err.Error(), pass) {
				t.Fatalf("error %q shows the password of %q", err, u)
			}
			return
		}
		switch mode {
		case ModeSingle, ModeSentinel, ModeCluster:
		default:
			t.Fatalf("mode %q", mode)
		}
		if len(opts.Addrs) == 0 || (mode == ModeSingle && len(opts.Addrs) != 1) {
			t.Fatalf("%s mode with addresses %q", mode, opts.Addrs)
		}
		for _, a := range opts.Addrs {
			if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
				t.Fatalf("address %q from %q is not host:port", a, u)
			}
		}
		if opts.DB < 0 || (mode == ModeSentinel) != (opts.MasterName != "") {
			t.Fatalf("db %d, master %q in %s mode", opts.DB, opts.MasterName, mode)
		}
	})
}

// urlPassword is the raw password of u's user info as ParseURL reads it:
// between the first ':' and the last '@' of the part before the path.
func urlPassword(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	rest, _, _ = strings.Cut(rest, "?")
	host, _, _ := strings.Cut(rest, "/")
	at := strings.LastIndex(host, "@")
	if at < 0 {
		return ""
	}
	_, pass, _ := strings.Cut(host[:at], ":")
	return pass
}
