package module

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/pushgateway/push_gateway/gateway"
)

// adaptKeyPolicy adapts a Caddyfile whose global push_gateway block holds
// block, and returns the app's key policy.
func adaptKeyPolicy(tb testing.TB, block string) (*KeyPolicy, error) {
	tb.Helper()
	out, err := adapt(tb, "{\npush_gateway {\n"+block+"\n}\n}\n:8080 {\npush_gateway\n}\n")
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Apps struct {
			PushGateway App `json:"push_gateway"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		tb.Fatalf("decoding %s: %v", out, err)
	}
	return cfg.Apps.PushGateway.KeyPolicy, nil
}

func TestKeyPolicyCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		block string
		want  *KeyPolicy
	}{
		{name: "none", block: "history_size 5", want: nil},
		{name: "empty", block: "key_policy", want: &KeyPolicy{}},
		{
			name: "every option",
			block: `key_policy {
				pattern "[a-z0-9-]{8,64}"
				max_length 64
				allow server-key-1 client-key-1
				allow server-key-2
				allow_file /etc/push_gateway/keys.txt
				check http://backend:4009/api/sdk-key-check?v=1 {
					ttl 2m
					negative_ttl 30s
					timeout 500ms
					on_error deny
					max_concurrent 8
					cache_size 5000
				}
			}`,
			want: &KeyPolicy{
				Pattern: "[a-z0-9-]{8,64}", MaxLength: 64,
				Allow:     []string{"server-key-1", "client-key-1", "server-key-2"},
				AllowFile: "/etc/push_gateway/keys.txt",
				Check: &KeyCheck{
					URL: "http://backend:4009/api/sdk-key-check?v=1",
					TTL: caddy.Duration(2 * time.Minute), NegativeTTL: caddy.Duration(30 * time.Second),
					Timeout: caddy.Duration(500 * time.Millisecond), OnError: "deny", MaxConcurrent: 8, CacheSize: 5000,
				},
			},
		},
		{name: "check alone", block: "key_policy {\ncheck https://b/check\n}", want: &KeyPolicy{Check: &KeyCheck{URL: "https://b/check"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := adaptKeyPolicy(t, tt.block)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestKeyPolicyAdaptErrors(t *testing.T) {
	tests := []struct {
		name    string
		block   string
		wantErr string
	}{
		{name: "argument", block: "key_policy on", wantErr: `unexpected argument "on"`},
		{name: "unknown option", block: "key_policy {\npaterns x\n}", wantErr: `unknown key_policy option "paterns", at Caddyfile:4`},
		{name: "bad pattern", block: "key_policy {\npattern \"[a-\"\n}", wantErr: `key policy: pattern "[a-": error parsing regexp`},
		{name: "bad pattern line", block: "history_size 5\nkey_policy {\npattern \"(\"\n}", wantErr: `, at Caddyfile:5`},
		{name: "pattern twice", block: "key_policy {\npattern a\npattern b\n}", wantErr: `key_policy: pattern given twice`},
		{name: "max length zero", block: "key_policy {\nmax_length 0\n}", wantErr: `max_length: invalid count "0"`},
		{name: "max length too long", block: "key_policy {\nmax_length 300\n}", wantErr: `max_length 300: must be between 1 and 256`},
		{name: "allow without keys", block: "key_policy {\nallow\n}", wantErr: `wrong argument count`},
		{name: "check without URL", block: "key_policy {\ncheck\n}", wantErr: `check needs the backend's URL`},
		{name: "check bad scheme", block: "key_policy {\ncheck ftp://b/x\n}", wantErr: `check URL "ftp://b/x": want an http:// or https:// URL, at Caddyfile:4`},
		{name: "check no host", block: "key_policy {\ncheck http:///x\n}", wantErr: `has no host`},
		{name: "check bad URL", block: "key_policy {\ncheck \"http://b/%zz\"\n}", wantErr: `check URL "http://b/%zz"`},
		{name: "check two URLs", block: "key_policy {\ncheck http://a/ http://b/\n}", wantErr: `wrong argument count`},
		{name: "bad ttl", block: "key_policy {\ncheck http://b/ {\nttl soon\n}\n}", wantErr: `ttl: invalid duration "soon": want a positive duration like 25s, at Caddyfile:5`},
		{name: "negative negative ttl", block: "key_policy {\ncheck http://b/ {\nnegative_ttl -1s\n}\n}", wantErr: `negative_ttl: invalid duration "-1s"`},
		{name: "bad timeout", block: "key_policy {\ncheck http://b/ {\ntimeout 0s\n}\n}", wantErr: `timeout: invalid duration "0s"`},
		{name: "bad on_error", block: "key_policy {\ncheck http://b/ {\non_error maybe\n}\n}", wantErr: `on_error: invalid policy "maybe": want allow or deny`},
		{name: "bad max_concurrent", block: "key_policy {\ncheck http://b/ {\nmax_concurrent 5000\n}\n}", wantErr: `max_concurrent: invalid count "5000"`},
		{name: "unknown check option", block: "key_policy {\ncheck http://b/ {\nretries 3\n}\n}", wantErr: `unknown check option "retries"`},
		{name: "check option twice", block: "key_policy {\ncheck http://b/ {\nttl 1s\nttl 2s\n}\n}", wantErr: `check: ttl given twice`},
		{name: "key_policy twice", block: "key_policy\nkey_policy", wantErr: `key_policy given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := adaptKeyPolicy(t, tt.block)
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestKeyPolicyValidateJSON(t *testing.T) {
	tests := []struct {
		name    string
		policy  *KeyPolicy
		wantErr string
	}{
		{name: "none", policy: nil},
		{name: "bad pattern", policy: &KeyPolicy{Pattern: "("}, wantErr: `key_policy: key policy: pattern "("`},
		{name: "negative max length", policy: &KeyPolicy{MaxLength: -1}, wantErr: "max_length -1"},
		{name: "bad allowed key", policy: &KeyPolicy{Allow: []string{""}}, wantErr: `allow: "" is not a valid sdk key`},
		{name: "check without URL", policy: &KeyPolicy{Check: &KeyCheck{}}, wantErr: "check needs a URL"},
		{name: "negative ttl", policy: &KeyPolicy{Check: &KeyCheck{URL: "http://b/", TTL: caddy.Duration(-time.Second)}}, wantErr: "durations must be positive"},
		{name: "bad on_error", policy: &KeyPolicy{Check: &KeyCheck{URL: "http://b/", OnError: "yes"}}, wantErr: `on_error "yes"`},
		{name: "too concurrent", policy: &KeyPolicy{Check: &KeyCheck{URL: "http://b/", MaxConcurrent: 2000}}, wantErr: "max_concurrent 2000"},
		{name: "fine", policy: &KeyPolicy{Pattern: "[a-z]+", Allow: []string{"a"}, Check: &KeyCheck{URL: "https://b/", OnError: "allow"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, (&App{KeyPolicy: tt.policy}).Validate(), tt.wantErr)
		})
	}
}

func TestKeyPolicyAllowFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		policy  KeyPolicy
		want    []string // the Engine's allow-list; nil for none
		wantErr string
	}{
		{name: "no allow-list", policy: KeyPolicy{Pattern: "x"}, want: nil},
		{name: "inline only", policy: KeyPolicy{Allow: []string{"a"}}, want: []string{"a"}},
		{name: "file with comments", policy: KeyPolicy{Allow: []string{"a"}, AllowFile: write("k1", "# keys\nb\n\n  c  \n")}, want: []string{"a", "b", "c"}},
		{name: "empty file allows nothing", policy: KeyPolicy{AllowFile: write("k2", "# none yet\n")}, want: []string{}},
		{name: "missing file", policy: KeyPolicy{AllowFile: filepath.Join(dir, "nope")}, wantErr: "reading allow_file"},
		{name: "bad key names its line", policy: KeyPolicy{AllowFile: write("k3", "ok\nbad\x01key\n")}, wantErr: "k3:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.policy
			err := p.load()
			checkErr(t, err, tt.wantErr)
			if err != nil {
				return
			}
			cfg := p.config()
			if !reflect.DeepEqual(cfg.Allow, tt.want) {
				t.Fatalf("allow %#v, want %#v", cfg.Allow, tt.want)
			}
		})
	}
}

func TestKeyPolicyConfigMapping(t *testing.T) {
	p := &KeyPolicy{
		Pattern: "[a-z]+", MaxLength: 32,
		Check: &KeyCheck{URL: "http://b/c", TTL: caddy.Duration(time.Minute), NegativeTTL: caddy.Duration(time.Second),
			Timeout: caddy.Duration(time.Second), OnError: "deny", MaxConcurrent: 4, CacheSize: 10},
	}
	want := &gateway.KeyPolicyConfig{
		Pattern: "[a-z]+", MaxLength: 32,
		Check: &gateway.KeyCheckConfig{URL: "http://b/c", TTL: time.Minute, NegativeTTL: time.Second,
			Timeout: time.Second, OnError: "deny", MaxConcurrent: 4, CacheSize: 10},
	}
	if got := p.config(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := (*KeyPolicy)(nil).config(); got != nil {
		t.Fatalf("no policy maps to %+v, want nil", got)
	}
	if !strings.Contains((&App{KeyPolicy: p}).config().KeyPolicy.Pattern, "[a-z]+") {
		t.Fatal("App.config drops the key policy")
	}
}
