package module

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/pushgateway/push_gateway/gateway"
)

func dur(d time.Duration) *caddy.Duration { c := caddy.Duration(d); return &c }

func TestSheddingCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  App
	}{
		{
			name:  "every shedding option",
			input: "push_gateway {\nshedding {\nmemory_budget 512MiB\nmax_fanout_lag 2s\nretry_after 30s\n}\n}",
			want: App{Shedding: &Shedding{
				MemoryBudget: 512 << 20, MaxFanoutLag: caddy.Duration(2 * time.Second), RetryAfter: caddy.Duration(30 * time.Second),
			}},
		},
		{
			name:  "memory only",
			input: "push_gateway {\nshedding {\nmemory_budget 1MiB\n}\n}",
			want:  App{Shedding: &Shedding{MemoryBudget: 1 << 20}},
		},
		{
			name:  "lag only, with other options around",
			input: "push_gateway {\nhistory_size 10\nshedding {\nmax_fanout_lag 500ms\n}\nworkers 2\n}",
			want:  App{HistorySize: 10, Workers: 2, Shedding: &Shedding{MaxFanoutLag: caddy.Duration(500 * time.Millisecond)}},
		},
		{name: "drain window", input: "push_gateway {\ndrain_window 2s\n}", want: App{DrainWindow: dur(2 * time.Second)}},
		{name: "drain all at once", input: "push_gateway {\ndrain_window 0\n}", want: App{DrainWindow: dur(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGlobalOption(caddyfile.NewTestDispenser(tt.input), nil)
			if err != nil {
				t.Fatalf("parseGlobalOption: %v", err)
			}
			var a App
			if err := json.Unmarshal(got.(httpcaddyfile.App).Value, &a); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, tt.want) {
				t.Fatalf("got %+v (shedding %+v), want %+v", a, a.Shedding, tt.want)
			}
		})
	}
}

func TestSheddingCaddyfileErrors(t *testing.T) {
	global := func(block string) string { return "{\n" + block + "\n}\n:8080 {\npush_gateway\n}\n" }
	tests := []struct {
		name    string
		input   string
		wantErr string
	}{
		{name: "empty block", input: global("push_gateway {\n shedding {\n }\n}"), wantErr: "shedding: give memory_budget, max_fanout_lag or both"},
		{name: "no block", input: global("push_gateway {\n shedding\n}"), wantErr: "shedding: give memory_budget"},
		{name: "inline argument", input: global("push_gateway {\n shedding on\n}"), wantErr: `unexpected argument "on": shedding takes a block`},
		{name: "unknown option", input: global("push_gateway {\n shedding {\n memory 1GiB\n }\n}"), wantErr: `unknown shedding option "memory"`},
		{name: "budget too small", input: global("push_gateway {\n shedding {\n memory_budget 1000\n }\n}"),
			wantErr: "shedding: memory_budget 1000: must be at least 1.0 MiB, at Caddyfile:4"},
		{name: "bad budget", input: global("push_gateway {\n shedding {\n memory_budget lots\n }\n}"), wantErr: `memory_budget: invalid size "lots"`},
		{name: "lag too short", input: global("push_gateway {\n shedding {\n max_fanout_lag 10ms\n }\n}"),
			wantErr: "shedding: max_fanout_lag 10ms: must be between 100ms and 10m0s, at Caddyfile:4"},
		{name: "bad lag", input: global("push_gateway {\n shedding {\n max_fanout_lag -1s\n }\n}"), wantErr: `max_fanout_lag: invalid duration "-1s"`},
		{name: "retry after too short", input: global("push_gateway {\n shedding {\n memory_budget 1GiB\n retry_after 100ms\n }\n}"),
			wantErr: "shedding: retry_after 100ms: must be between 1s and 1h0m0s, at Caddyfile:5"},
		{name: "retry after alone", input: global("push_gateway {\n shedding {\n retry_after 5s\n }\n}"), wantErr: "shedding: give memory_budget"},
		{name: "option twice", input: global("push_gateway {\n shedding {\n memory_budget 1GiB\n memory_budget 2GiB\n }\n}"), wantErr: "shedding: memory_budget given twice"},
		{name: "block twice", input: global("push_gateway {\n shedding {\n memory_budget 1GiB\n }\n shedding {\n memory_budget 2GiB\n }\n}"), wantErr: "shedding given twice"},
		{name: "drain window negative", input: global("push_gateway {\n drain_window -1s\n}"), wantErr: `drain_window: invalid duration "-1s": want 0 or a duration like 5s, at most 5m0s`},
		{name: "drain window too long", input: global("push_gateway {\n drain_window 1h\n}"), wantErr: `drain_window: invalid duration "1h"`},
		{name: "drain window without value", input: global("push_gateway {\n drain_window\n}"), wantErr: "wrong argument count"},
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

func TestSheddingValidate(t *testing.T) {
	tests := []struct {
		name    string
		app     App
		wantErr string
	}{
		{name: "off", app: App{}},
		{name: "memory", app: App{Shedding: &Shedding{MemoryBudget: 1 << 30}}},
		{name: "lag", app: App{Shedding: &Shedding{MaxFanoutLag: caddy.Duration(time.Second), RetryAfter: caddy.Duration(time.Minute)}}},
		{name: "empty", app: App{Shedding: &Shedding{}}, wantErr: "shedding: give memory_budget"},
		{name: "negative budget", app: App{Shedding: &Shedding{MemoryBudget: -1}}, wantErr: "memory_budget -1"},
		{name: "lag too long", app: App{Shedding: &Shedding{MaxFanoutLag: caddy.Duration(time.Hour)}}, wantErr: "max_fanout_lag 1h0m0s"},
		{name: "negative retry", app: App{Shedding: &Shedding{MemoryBudget: 1 << 30, RetryAfter: caddy.Duration(-time.Second)}}, wantErr: "retry_after -1s"},
		{name: "drain window", app: App{DrainWindow: dur(time.Minute)}},
		{name: "drain all at once", app: App{DrainWindow: dur(0)}},
		{name: "negative drain window", app: App{DrainWindow: dur(-time.Second)}, wantErr: "drain_window -1s: must be between 0 and 5m0s"},
		{name: "drain window too long", app: App{DrainWindow: dur(6 * time.Minute)}, wantErr: "drain_window 6m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.app.Validate(), tt.wantErr)
		})
	}
}

func TestSheddingConfig(t *testing.T) {
	tests := []struct {
		name      string
		app       App
		wantShed  gateway.ShedConfig
		wantDrain time.Duration
	}{
		{name: "defaults", app: App{}},
		{
			name:     "shedding",
			app:      App{Shedding: &Shedding{MemoryBudget: 1 << 20, MaxFanoutLag: caddy.Duration(time.Second), RetryAfter: caddy.Duration(3 * time.Second)}},
			wantShed: gateway.ShedConfig{MemoryBudget: 1 << 20, MaxFanoutLag: time.Second, RetryAfter: 3 * time.Second},
		},
		{name: "drain window", app: App{DrainWindow: dur(2 * time.Second)}, wantDrain: 2 * time.Second},
		{name: "drain all at once", app: App{DrainWindow: dur(0)}, wantDrain: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.app.config()
			if cfg.Shedding != tt.wantShed || cfg.DrainWindow != tt.wantDrain {
				t.Fatalf("config shedding %+v drain %v, want %+v %v", cfg.Shedding, cfg.DrainWindow, tt.wantShed, tt.wantDrain)
			}
		})
	}
}

// TestReloadAppliesShedding: the options reach the running Engine, and a
// reload changes (or removes) them.
func TestReloadAppliesShedding(t *testing.T) {
	loadConfig(t, `{"shedding":{"memory_budget":1073741824,"retry_after":5000000000},"drain_window":1000000000}`)
	t.Cleanup(func() { _ = caddy.Stop() })
	e := runningEngine()
	if e == nil {
		t.Fatal("no engine")
	}
	if st := e.Shedding(); !st.Enabled {
		t.Fatalf("shedding %+v, want enabled", st)
	}
	if w := e.DrainWindow(); w != time.Second {
		t.Fatalf("drain window %v, want 1s", w)
	}
	loadConfig(t, `{}`)
	if st := e.Shedding(); st.Enabled || st.Active {
		t.Fatalf("shedding %+v after a reload without it, want off", st)
	}
	if w := e.DrainWindow(); w != gateway.DefaultDrainWindow {
		t.Fatalf("drain window %v after a reload without it, want the default", w)
	}
}
