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

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// adapt adapts a whole Caddyfile in-process, as `caddy adapt` does.
func adapt(tb testing.TB, input string) (string, error) {
	tb.Helper()
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, _, err := adapter.Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	return string(out), err
}

func TestHandlerUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Handler
	}{
		{name: "bare", input: `push_gateway`, want: Handler{}},
		{
			name: "every option",
			input: `push_gateway {
				name fp
				transports websocket socketio
				socketio_path /realtime/ /server/realtime/
				heartbeat 10s
				idle_timeout 1m
				max_message_size 32KiB
				max_keys_per_connection 8
				queue_size 1024
				poll_max_wait 90s
			}`,
			want: Handler{
				Name:                 "fp",
				Transports:           []string{"websocket", "socketio"},
				SocketIOPath:         []string{"/realtime/", "/server/realtime/"},
				Heartbeat:            caddy.Duration(10 * time.Second),
				IdleTimeout:          caddy.Duration(time.Minute),
				MaxMessageSize:       32 << 10,
				MaxKeysPerConnection: 8,
				QueueSize:            1024,
				PollMaxWait:          caddy.Duration(90 * time.Second),
			},
		},
		{name: "plain byte size", input: "push_gateway {\nmax_message_size 4096\n}", want: Handler{MaxMessageSize: 4096}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(h, tt.want) {
				t.Fatalf("got %+v, want %+v", h, tt.want)
			}
		})
	}
}

func TestGlobalOptionUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  App
	}{
		{name: "bare", input: `push_gateway`, want: App{}},
		{
			name: "every option",
			input: `push_gateway {
				history_size 100
				history_ttl 5m
				history_max_bytes 64MiB
				workers 4
				broker memory
			}`,
			want: App{
				HistorySize: 100, HistoryTTL: caddy.Duration(5 * time.Minute), HistoryMaxBytes: 64 << 20,
				Workers: 4, Broker: &Broker{Type: "memory"},
			},
		},
		{
			name:  "redis broker",
			input: "push_gateway {\nbroker redis redis://127.0.0.1:6379/0\n}",
			want:  App{Broker: &Broker{Type: "redis", URL: "redis://127.0.0.1:6379/0"}},
		},
		{
			name:  "redis sentinel",
			input: "push_gateway {\nbroker redis redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/2\n}",
			want:  App{Broker: &Broker{Type: "redis", URL: "redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/2"}},
		},
		{
			name:  "redis cluster over tls",
			input: "push_gateway {\nbroker redis rediss-cluster://u:p@10.0.0.1:7000,10.0.0.2:7000\n}",
			want:  App{Broker: &Broker{Type: "redis", URL: "rediss-cluster://u:p@10.0.0.1:7000,10.0.0.2:7000"}},
		},
		{
			name: "node options",
			input: `push_gateway {
				broker redis redis://127.0.0.1:6379/0
				node_id gw-1
				node_address wss://gw1.example.com/realtime
				node_zone eu-west-1a
				node_ttl 5s
			}`,
			want: App{
				Broker: &Broker{Type: "redis", URL: "redis://127.0.0.1:6379/0"},
				NodeID: "gw-1", NodeAddress: "wss://gw1.example.com/realtime", NodeZone: "eu-west-1a",
				NodeTTL: caddy.Duration(5 * time.Second),
			},
		},
		{
			name:  "node options without a broker",
			input: "push_gateway {\nnode_address http://127.0.0.1:8080/realtime\n}",
			want:  App{NodeAddress: "http://127.0.0.1:8080/realtime"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGlobalOption(caddyfile.NewTestDispenser(tt.input), nil)
			if err != nil {
				t.Fatalf("parseGlobalOption: %v", err)
			}
			app := got.(httpcaddyfile.App)
			if app.Name != appID {
				t.Fatalf("app name %q, want %q", app.Name, appID)
			}
			var a App
			if err := json.Unmarshal(app.Value, &a); err != nil {
				t.Fatalf("decoding %s: %v", app.Value, err)
			}
			if !reflect.DeepEqual(a, tt.want) {
				t.Fatalf("got %+v, want %+v", a, tt.want)
			}
		})
	}
}

func TestAdaptBadCaddyfile(t *testing.T) {
	site := func(block string) string { return ":8080 {\n" + block + "\n}\n" }
	global := func(block string) string { return "{\n" + block + "\n}\n:8080 {\npush_gateway\n}\n" }
	tests := []struct {
		name    string
		input   string
		wantErr string
	}{
		{name: "unknown subdirective", input: site("push_gateway {\n hearbeat 5s\n}"), wantErr: `unknown subdirective "hearbeat", at Caddyfile:3`},
		{name: "unexpected argument", input: site("push_gateway websocket"), wantErr: `unexpected argument "websocket"`},
		{name: "unknown transport", input: site("push_gateway {\n transports websocket carrier-pigeon\n}"), wantErr: `unknown transport "carrier-pigeon" (want websocket, sse, poll, socketio)`},
		{name: "transports without names", input: site("push_gateway {\n transports\n}"), wantErr: `wrong argument count`},
		{name: "transport twice", input: site("push_gateway {\n transports sse sse\n}"), wantErr: `transport "sse" listed twice`},
		{name: "bad duration", input: site("push_gateway {\n heartbeat soon\n}"), wantErr: `heartbeat: invalid duration "soon"`},
		{name: "negative duration", input: site("push_gateway {\n idle_timeout -5s\n}"), wantErr: `idle_timeout: invalid duration "-5s"`},
		{name: "duration without value", input: site("push_gateway {\n heartbeat\n}"), wantErr: `wrong argument count`},
		{name: "two values", input: site("push_gateway {\n heartbeat 1s 2s\n}"), wantErr: `wrong argument count`},
		{name: "idle not above heartbeat", input: site("push_gateway {\n heartbeat 30s\n idle_timeout 30s\n}"), wantErr: `idle_timeout 30s must be longer than heartbeat 30s`},
		{name: "idle below default heartbeat", input: site("push_gateway {\n idle_timeout 10s\n}"), wantErr: `idle_timeout 10s must be longer than heartbeat 25s`},
		{name: "bad size", input: site("push_gateway {\n max_message_size lots\n}"), wantErr: `max_message_size: invalid size "lots"`},
		{name: "size too large", input: site("push_gateway {\n max_message_size 1GiB\n}"), wantErr: `max_message_size 1073741824: must be between 128 and 16777216 bytes`},
		{name: "bad count", input: site("push_gateway {\n queue_size 0\n}"), wantErr: `queue_size: invalid count "0"`},
		{name: "count too large", input: site("push_gateway {\n max_keys_per_connection 1000000\n}"), wantErr: `max_keys_per_connection 1000000: must be between 1 and 65536`},
		{name: "poll wait too long", input: site("push_gateway {\n poll_max_wait 11m\n}"), wantErr: `poll_max_wait 11m0s: must be positive and at most 10m0s`},
		{name: "subdirective twice", input: site("push_gateway {\n heartbeat 5s\n heartbeat 6s\n}"), wantErr: `heartbeat given twice`},
		{name: "socketio path without socketio", input: site("push_gateway {\n transports websocket\n socketio_path /realtime/\n}"), wantErr: `socketio_path is set but the socketio transport is not enabled`},
		{name: "relative socketio path", input: site("push_gateway {\n socketio_path realtime/\n}"), wantErr: `socketio_path "realtime/": must start with /`},
		{name: "global unknown option", input: global("push_gateway {\n history 5\n}"), wantErr: `unknown push_gateway option "history"`},
		{name: "global option twice", input: global("push_gateway {\n history_size 5\n history_size 6\n}"), wantErr: `history_size given twice`},
		{name: "global argument", input: global("push_gateway on"), wantErr: `unexpected argument "on"`},
		{name: "global bad ttl", input: global("push_gateway {\n history_ttl forever\n}"), wantErr: `history_ttl: invalid duration "forever"`},
		{name: "global history too large", input: global("push_gateway {\n history_size 2000000\n}"), wantErr: `history_size 2000000: must be between 1 and 1048576`},
		{name: "global unknown broker", input: global("push_gateway {\n broker kafka\n}"), wantErr: `unknown broker "kafka"`},
		{name: "global redis without url", input: global("push_gateway {\n broker redis\n}"), wantErr: `broker redis needs a URL`},
		{name: "global memory with url", input: global("push_gateway {\n broker memory redis://x\n}"), wantErr: `wrong argument count`},
		{name: "global redis bad scheme", input: global("push_gateway {\n history_size 5\n broker redis http://127.0.0.1:6379\n}"),
			wantErr: `push_gateway: broker redis: bad redis url "http://127.0.0.1:6379"`},
		{name: "global redis bad url line", input: global("push_gateway {\n history_size 5\n broker redis http://127.0.0.1:6379\n}"), wantErr: `, at Caddyfile:4`},
		{name: "global redis password masked", input: global("push_gateway {\n broker redis http://u:hunter2@127.0.0.1\n}"), wantErr: `"http://u:xxxxx@127.0.0.1"`},
		{name: "global redis url with extra argument", input: global("push_gateway {\n broker redis redis://a redis://b\n}"), wantErr: `wrong argument count`},
		{name: "global bad node id", input: global("push_gateway {\n node_id gw/1\n}"),
			wantErr: `push_gateway: node_id "gw/1": want 1 to 64 letters, digits, '.', '-', '_' or ':', at Caddyfile:3`},
		{name: "global node id twice", input: global("push_gateway {\n node_id a\n node_id b\n}"), wantErr: `node_id given twice`},
		{name: "global node id without value", input: global("push_gateway {\n node_id\n}"), wantErr: `wrong argument count`},
		{name: "global bad node zone", input: global("push_gateway {\n node_zone \"eu west\"\n}"), wantErr: `node_zone "eu west"`},
		{name: "global bad node address", input: global("push_gateway {\n node_address gw1.example.com:443\n}"),
			wantErr: `push_gateway: node_address "gw1.example.com:443": want a ws://, wss://, http:// or https:// URL with a host, e.g. wss://gw1.example.com/realtime, at Caddyfile:3`},
		{name: "global node ttl too short", input: global("push_gateway {\n node_ttl 100ms\n}"),
			wantErr: `push_gateway: node_ttl 100ms: must be between 300ms and 10m0s, at Caddyfile:3`},
		{name: "global bad node ttl", input: global("push_gateway {\n node_ttl soon\n}"), wantErr: `node_ttl: invalid duration "soon"`},
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

// TestAdaptNeedsNoOrder checks RegisterDirectiveOrder: without an `order`
// line the directive adapts, and its route comes before reverse_proxy's.
func TestAdaptNeedsNoOrder(t *testing.T) {
	out, err := adapt(t, ":8080 {\nreverse_proxy 127.0.0.1:9\npush_gateway /realtime*\n}\n")
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	push, proxy := strings.Index(out, `"handler":"push_gateway"`), strings.Index(out, `"handler":"reverse_proxy"`)
	if push < 0 || proxy < 0 || push > proxy {
		t.Fatalf("want push_gateway before reverse_proxy in %s", out)
	}
}
