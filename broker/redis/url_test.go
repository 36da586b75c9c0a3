package redis

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		mode    string
		addrs   []string
		db      int
		user    string
		pass    string
		master  string
		tls     bool
		sentPwd string
		wantErr string // substring; "" means success
	}{
		{name: "single", url: "redis://127.0.0.1:6380", mode: ModeSingle, addrs: []string{"127.0.0.1:6380"}},
		{name: "single default port", url: "redis://cache", mode: ModeSingle, addrs: []string{"cache:6379"}},
		{name: "single db", url: "redis://h:1/3", mode: ModeSingle, addrs: []string{"h:1"}, db: 3},
		{name: "single trailing slash", url: "redis://h:1/", mode: ModeSingle, addrs: []string{"h:1"}},
		{name: "password only", url: "redis://:s3cr%40t@h:1/0", mode: ModeSingle, addrs: []string{"h:1"}, pass: "s3cr@t"},
		{name: "user and password", url: "redis://u:p@h:1", mode: ModeSingle, addrs: []string{"h:1"}, user: "u", pass: "p"},
		{name: "unescaped @ in password", url: "redis://u:p@x@h:1", mode: ModeSingle, addrs: []string{"h:1"}, user: "u", pass: "p@x"},
		{name: "tls", url: "rediss://h:6380", mode: ModeSingle, addrs: []string{"h:6380"}, tls: true},
		{name: "ipv6", url: "redis://[::1]:7000", mode: ModeSingle, addrs: []string{"[::1]:7000"}},
		{name: "ipv6 default port", url: "redis://[::1]", mode: ModeSingle, addrs: []string{"[::1]:6379"}},
		{name: "scheme case", url: "REDIS://h:1", mode: ModeSingle, addrs: []string{"h:1"}},
		{name: "sentinel", url: "redis-sentinel://s1:26380,s2/mymaster", mode: ModeSentinel, addrs: []string{"s1:26380", "s2:26379"}, master: "mymaster"},
		{name: "sentinel db and auth", url: "redis-sentinel://:pw@s1:1/m/2?sentinel_password=sp", mode: ModeSentinel, addrs: []string{"s1:1"}, master: "m", db: 2, pass: "pw", sentPwd: "sp"},
		{name: "sentinel tls", url: "rediss-sentinel://s1:1/m", mode: ModeSentinel, addrs: []string{"s1:1"}, master: "m", tls: true},
		{name: "cluster", url: "redis-cluster://a:1,b:2,c:3", mode: ModeCluster, addrs: []string{"a:1", "b:2", "c:3"}},
		{name: "cluster one seed", url: "redis-cluster://:pw@a:1", mode: ModeCluster, addrs: []string{"a:1"}, pass: "pw"},

		{name: "no scheme", url: "127.0.0.1:6379", wantErr: "want scheme://"},
		{name: "unknown scheme", url: "http://h:1", wantErr: `unknown scheme "http"`},
		{name: "no host", url: "redis://", wantErr: "no host"},
		{name: "no host with db", url: "redis:///0", wantErr: "no host"},
		{name: "bad port", url: "redis://h:port", wantErr: `port "port"`},
		{name: "port out of range", url: "redis://h:70000", wantErr: "1 to 65535"},
		{name: "empty host in list", url: "redis-cluster://a:1,,b:2", wantErr: "empty host"},
		{name: "two hosts single", url: "redis://a:1,b:2", wantErr: "use redis-cluster"},
		{name: "bad db", url: "redis://h:1/x", wantErr: `database "x"`},
		{name: "negative db", url: "redis://h:1/-1", wantErr: `database "-1"`},
		{name: "deep path", url: "redis://h:1/0/1", wantErr: "want /<db>"},
		{name: "sentinel no master", url: "redis-sentinel://s:1", wantErr: "no master name"},
		{name: "sentinel deep path", url: "redis-sentinel://s:1/m/0/x", wantErr: "want /<master>[/db]"},
		{name: "cluster db", url: "redis-cluster://a:1/1", wantErr: "database 0 only"},
		{name: "unknown query", url: "redis://h:1?pool_size=3", wantErr: `unknown query parameter "pool_size"`},
		{name: "sentinel query elsewhere", url: "redis://h:1?sentinel_password=x", wantErr: "redis-sentinel:// only"},
		{name: "fragment", url: "redis://h:1#x", wantErr: "fragment"},
		{name: "bare ipv6", url: "redis://::1", wantErr: "want host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, mode, err := ParseURL(tt.url)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %+v, want error with %q", tt.url, opts, tt.wantErr)
				}
				if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURL(%q) error %q, want ErrBadURL with %q", tt.url, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if mode != tt.mode || !slices.Equal(opts.Addrs, tt.addrs) || opts.DB != tt.db ||
				opts.Username != tt.user || opts.Password != tt.pass || opts.MasterName != tt.master ||
				(opts.TLSConfig != nil) != tt.tls || opts.SentinelPassword != tt.sentPwd {
				t.Fatalf("ParseURL(%q) = mode %s addrs %v db %d user %q pass %q master %q tls %v sentinel pass %q",
					tt.url, mode, opts.Addrs, opts.DB, opts.Username, opts.Password, opts.MasterName, opts.TLSConfig != nil, opts.SentinelPassword)
			}
			if opts.DialTimeout != dialTimeout || opts.ReadTimeout != ioTimeout || opts.MaxRetries != -1 {
				t.Fatalf("timeouts/retries not set: %+v", opts)
			}
			if (mode == ModeCluster) != opts.IsClusterMode {
				t.Fatalf("IsClusterMode = %v for mode %s", opts.IsClusterMode, mode)
			}
		})
	}
}

func TestParseURLErrorHidesPassword(t *testing.T) {
	_, _, err := ParseURL("redis://u:topsecret@h:x")
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("error %v shows the password", err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "no auth", in: "redis://h:1/0", want: "redis://h:1/0"},
		{name: "user only", in: "redis://u@h:1", want: "redis://u@h:1"},
		{name: "password", in: "redis://:pw@h:1/0", want: "redis://:xxxxx@h:1/0"},
		{name: "user and password", in: "redis-cluster://u:pw@a:1,b:2", want: "redis-cluster://u:xxxxx@a:1,b:2"},
		{name: "slash in password", in: "redis://u:p/w@h:1", want: "redis://u:xxxxx@h:1"},
		{name: "sentinel password", in: "redis-sentinel://s:1/m?sentinel_password=sp", want: "redis-sentinel://s:1/m?sentinel_password=xxxxx"},
		{name: "not a url", in: "garbage", want: "garbage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Redact(tt.in); got != tt.want {
				t.Fatalf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want error
	}{
		{name: "bad url", opts: Options{URL: "nope"}, want: ErrBadURL},
		{name: "brace in prefix", opts: Options{URL: "redis://h:1", Prefix: "a{b"}, want: ErrBadPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); !errors.Is(err, tt.want) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
		})
	}
}
