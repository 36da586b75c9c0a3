package module

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func intPtr(n int) *int { return &n }

func TestLimitsUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  *Limits
	}{
		{name: "empty block", input: "push_gateway {\nlimits {\n}\n}", want: &Limits{}},
		{
			name: "every option",
			input: `push_gateway {
				limits {
					max_connections 15000
					max_connections_per_ip 100
					max_followers_per_key 5000
					upgrade_rate 200/s burst 500
					publish_rate 30/m
				}
			}`,
			want: &Limits{
				MaxConnections: intPtr(15000), MaxConnectionsPerIP: 100, MaxFollowersPerKey: 5000,
				UpgradeRate: &Rate{PerSecond: 200, Burst: 500}, PublishRate: &Rate{PerSecond: 0.5},
			},
		},
		{name: "max_connections off", input: "push_gateway {\nlimits {\nmax_connections off\n}\n}", want: &Limits{MaxConnections: intPtr(0)}},
		{name: "max_connections 0", input: "push_gateway {\nlimits {\nmax_connections 0\n}\n}", want: &Limits{MaxConnections: intPtr(0)}},
		{name: "fractional rate", input: "push_gateway {\nlimits {\nupgrade_rate 0.5/s\n}\n}", want: &Limits{UpgradeRate: &Rate{PerSecond: 0.5}}},
		{
			name:  "beside other options",
			input: "push_gateway {\nhistory_size 10\nlimits {\nmax_connections_per_ip 3\n}\nworkers 2\n}",
			want:  &Limits{MaxConnectionsPerIP: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGlobalOption(caddyfile.NewTestDispenser(tt.input), nil)
			if err != nil {
				t.Fatalf("parseGlobalOption: %v", err)
			}
			var a App
			if err := json.Unmarshal(got.(httpcaddyfile.App).Value, &a); err != nil {
				t.Fatalf("decoding: %v", err)
			}
			if !reflect.DeepEqual(a.Limits, tt.want) {
				t.Fatalf("got %+v, want %+v", a.Limits, tt.want)
			}
		})
	}
}

func TestLimitsJSON(t *testing.T) {
	// An explicit 0 survives the JSON round trip: it means unlimited, not
	// the derived default.
	var a App
	if err := json.Unmarshal([]byte(`{"limits":{"max_connections":0}}`), &a); err != nil {
		t.Fatal(err)
	}
	if got := a.Limits.gateway().MaxConnections; got != -1 {
		t.Fatalf("explicit 0: gateway MaxConnections %d, want -1 (unlimited)", got)
	}
	if got := (*Limits)(nil).gateway().MaxConnections; got != 0 {
		t.Fatalf("absent: gateway MaxConnections %d, want 0 (derived)", got)
	}
	b, _ := json.Marshal(App{Limits: &Limits{MaxConnections: intPtr(0)}})
	if !strings.Contains(string(b), `"max_connections":0`) {
		t.Fatalf("marshalled %s: the explicit 0 is lost", b)
	}
}

func TestLimitsBadCaddyfile(t *testing.T) {
	global := func(block string) string {
		return "{\npush_gateway {\nlimits {\n" + block + "\n}\n}\n}\n:8080 {\npush_gateway\n}\n"
	}
	tests := []struct {
		name    string
		input   string
		wantErr string
	}{
		{name: "unknown option", input: global("max_conns 5"), wantErr: `unknown limits option "max_conns", at Caddyfile:4`},
		{name: "argument", input: "{\npush_gateway {\nlimits on\n}\n}\n", wantErr: `unexpected argument "on": limits takes a block`},
		{name: "negative count", input: global("max_connections -1"), wantErr: `max_connections: invalid count "-1": want a non-negative integer or off, at Caddyfile:4`},
		{name: "word count", input: global("max_connections_per_ip many"), wantErr: `max_connections_per_ip: invalid count "many"`},
		{name: "count too large", input: global("max_followers_per_key 99999999"), wantErr: `max_followers_per_key: invalid count "99999999"`},
		{name: "count without value", input: global("max_connections"), wantErr: `wrong argument count`},
		{name: "given twice", input: global("max_connections 5\nmax_connections 6"), wantErr: `limits: max_connections given twice, at Caddyfile:5`},
		{name: "rate without unit", input: global("upgrade_rate 100"), wantErr: `upgrade_rate: invalid rate "100": want a positive number per second or minute, like 100/s or 30/m, at Caddyfile:4`},
		{name: "rate per hour", input: global("publish_rate 100/h"), wantErr: `publish_rate: invalid rate "100/h"`},
		{name: "zero rate", input: global("upgrade_rate 0/s"), wantErr: `upgrade_rate: invalid rate "0/s"`},
		{name: "rate too high", input: global("upgrade_rate 2000000/s"), wantErr: `upgrade_rate: invalid rate "2000000/s"`},
		{name: "rate without value", input: global("upgrade_rate"), wantErr: `wrong argument count`},
		{name: "bad burst word", input: global("upgrade_rate 10/s bust 5"), wantErr: `upgrade_rate: unexpected "bust": want burst <count>`},
		{name: "burst without value", input: global("upgrade_rate 10/s burst"), wantErr: `wrong argument count`},
		{name: "zero burst", input: global("upgrade_rate 10/s burst 0"), wantErr: `upgrade_rate: invalid burst "0": want an integer between 1 and 16777216`},
		{name: "burst extra argument", input: global("publish_rate 10/s burst 5 6"), wantErr: `wrong argument count`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := adapt(t, tt.input)
			if err == nil {
				t.Fatalf("adapt succeeded with %s, want error containing %q", out, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("adapt error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name    string
		limits  *Limits
		wantErr string
	}{
		{name: "nil", limits: nil},
		{name: "good", limits: &Limits{MaxConnections: intPtr(10), UpgradeRate: &Rate{PerSecond: 1, Burst: 1}}},
		{name: "negative max_connections", limits: &Limits{MaxConnections: intPtr(-2)},
			wantErr: "limits: max_connections -2: must be 0 (unlimited) or between 1 and 16777216"},
		{name: "negative per ip", limits: &Limits{MaxConnectionsPerIP: -1},
			wantErr: "limits: max_connections_per_ip -1: must be between 1 and 16777216"},
		{name: "negative per key", limits: &Limits{MaxFollowersPerKey: -1},
			wantErr: "limits: max_followers_per_key -1: must be between 1 and 16777216"},
		{name: "zero rate", limits: &Limits{PublishRate: &Rate{}},
			wantErr: "limits: publish_rate 0/s: must be above 0 and at most 1e+06/s"},
		{name: "negative burst", limits: &Limits{UpgradeRate: &Rate{PerSecond: 1, Burst: -1}},
			wantErr: "limits: upgrade_rate burst -1: must be between 1 and 16777216"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&App{Limits: tt.limits}).Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// fakePublishLimiter is a backend whose publish_rate answers are fixed.
type fakePublishLimiter struct {
	backend
	wait time.Duration
	ok   bool
}

func (f fakePublishLimiter) AllowPublish() (time.Duration, bool) { return f.wait, f.ok }

func TestAdmitPublish(t *testing.T) {
	tests := []struct {
		name       string
		b          backend
		wantErr    string
		retryAfter string
	}{
		{name: "backend without a limiter", b: nil},
		{name: "allowed", b: fakePublishLimiter{ok: true}},
		{name: "refused", b: fakePublishLimiter{wait: 3 * time.Second}, wantErr: "publishing faster than publish_rate: retry in 3s", retryAfter: "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			err := admitPublish(w, tt.b)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("admitPublish: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("admitPublish = %v, want %q", err, tt.wantErr)
			}
			if got := apiStatus(err); got != http.StatusTooManyRequests {
				t.Fatalf("status %d, want 429", got)
			}
			if got := w.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Fatalf("Retry-After %q, want %q", got, tt.retryAfter)
			}
		})
	}
}

// apiStatus is the HTTP status of a caddy.APIError, 0 otherwise.
func apiStatus(err error) int {
	var ae caddy.APIError
	if errors.As(err, &ae) {
		return ae.HTTPStatus
	}
	return 0
}
