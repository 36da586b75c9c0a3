package module

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/pushgateway/push_gateway/gateway"
)

// loadConfig runs a config holding only the push_gateway app, as `caddy run`
// or a reload would, with the admin endpoint off and nothing persisted.
func loadConfig(tb testing.TB, appJSON string) {
	tb.Helper()
	cfg := `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{"push_gateway":` + appJSON + `}}`
	if err := caddy.Load([]byte(cfg), true); err != nil {
		tb.Fatalf("loading %s: %v", cfg, err)
	}
}

func engineRefs() int {
	refs, _ := engines.References(engineKey)
	return refs
}

// TestReloadKeepsEngine: a reload hands the same Engine (so the same hub and
// connections) to the new config; a stop releases it.
func TestReloadKeepsEngine(t *testing.T) {
	if runningEngine() != nil {
		t.Fatal("an engine is running before the first load")
	}
	loadConfig(t, `{"history_size":10}`)
	t.Cleanup(func() { _ = caddy.Stop() })
	first := runningEngine()
	if first == nil {
		t.Fatal("no engine after the first load")
	}
	if _, err := first.Hub().Publish("reload-key", "update", []byte(`1`)); err != nil {
		t.Fatalf("publish: %v", err)
	}

	loadConfig(t, `{"history_size":20,"history_ttl":60000000000}`)
	if got := runningEngine(); got != first {
		t.Fatalf("reload replaced the engine: %p, want %p", got, first)
	}
	if refs := engineRefs(); refs != 1 {
		t.Fatalf("engine references after reload = %d, want 1", refs)
	}
	info, ok, err := first.Hub().KeyInfo("reload-key")
	if err != nil || !ok || info.Seq != 1 {
		t.Fatalf("after reload KeyInfo = %+v, %v; want seq 1 kept", info, ok)
	}

	if err := caddy.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if runningEngine() != nil {
		t.Fatal("engine still running after stop")
	}
}

// TestFailedReloadKeepsEngine: a config refused by Validate neither starts
// a second engine nor stops the running one.
func TestFailedReloadKeepsEngine(t *testing.T) {
	loadConfig(t, `{}`)
	t.Cleanup(func() { _ = caddy.Stop() })
	first := runningEngine()

	cfg := `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{"push_gateway":{"node_ttl":1000}}}`
	err := caddy.Load([]byte(cfg), true)
	if err == nil || !strings.Contains(err.Error(), "node_ttl 1µs: must be between 300ms and 10m0s") {
		t.Fatalf("loading a bad node_ttl: %v, want it refused", err)
	}
	if got := runningEngine(); got != first {
		t.Fatalf("failed reload changed the engine: %p, want %p", got, first)
	}
	if refs := engineRefs(); refs != 1 {
		t.Fatalf("engine references = %d, want 1", refs)
	}
}

// TestReloadRefusesBrokerChange: the hub is built around its broker, so a
// reload that asks for another one fails and leaves the running Engine
// alone; one that keeps it applies the rest.
func TestReloadRefusesBrokerChange(t *testing.T) {
	const redisURL = "redis://127.0.0.1:1/0" // never reached: the broker connects in the background
	load := func(appJSON string) error {
		cfg := `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{"push_gateway":` + appJSON + `}}`
		return caddy.Load([]byte(cfg), true)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	if err := load(`{}`); err != nil {
		t.Fatal(err)
	}
	first := runningEngine()
	err := load(`{"broker":{"type":"redis","url":"` + redisURL + `"}}`)
	checkErr(t, err, "the broker can only change with a restart: running memory, this config asks for redis "+redisURL)
	if runningEngine() != first || engineRefs() != 1 {
		t.Fatalf("refused reload touched the engine: %d references", engineRefs())
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	if err := load(`{"broker":{"type":"redis","url":"` + redisURL + `"},"node_id":"n1"}`); err != nil {
		t.Fatalf("loading a redis broker whose server is down: %v", err)
	}
	clustered := runningEngine()
	if st := clustered.Stats(); st.Node.ID != "n1" || st.Broker == nil {
		t.Fatalf("stats node %+v broker %+v", st.Node, st.Broker)
	}
	checkErr(t, load(`{"broker":{"type":"memory"}}`), "running redis "+redisURL+", this config asks for memory")
	checkErr(t, load(`{"broker":{"type":"redis","url":"redis://127.0.0.1:2/0"}}`), "running redis "+redisURL+", this config asks for redis redis://127.0.0.1:2/0")
	if err := load(`{"broker":{"type":"redis","url":"` + redisURL + `"},"node_id":"n2","history_size":5}`); err != nil {
		t.Fatalf("reload keeping the broker: %v", err)
	}
	if runningEngine() != clustered || clustered.NodeID() != "n2" {
		t.Fatalf("reload keeping the broker: engine replaced, or node id %q", clustered.NodeID())
	}
}

func TestAppValidate(t *testing.T) {
	tests := []struct {
		name    string
		app     App
		wantErr string
	}{
		{name: "defaults", app: App{}},
		{name: "memory broker", app: App{Broker: &Broker{Type: BrokerMemory}}},
		{name: "negative history size", app: App{HistorySize: -1}, wantErr: "history_size -1"},
		{name: "negative ttl", app: App{HistoryTTL: caddy.Duration(-time.Second)}, wantErr: "history_ttl -1s: must be positive"},
		{name: "negative max bytes", app: App{HistoryMaxBytes: -1}, wantErr: "history_max_bytes -1"},
		{name: "too many workers", app: App{Workers: maxWorkers + 1}, wantErr: "workers 4097"},
		{name: "memory broker with url", app: App{Broker: &Broker{Type: BrokerMemory, URL: "x"}}, wantErr: "takes no URL"},
		{name: "redis broker", app: App{Broker: &Broker{Type: BrokerRedis, URL: "redis://x"}}},
		{name: "redis sentinel", app: App{Broker: &Broker{Type: BrokerRedis, URL: "redis-sentinel://a:26379,b:26379/mymaster/1"}}},
		{name: "redis cluster", app: App{Broker: &Broker{Type: BrokerRedis, URL: "redis-cluster://a:7000,b:7001"}}},
		{name: "redis broker without url", app: App{Broker: &Broker{Type: BrokerRedis}}, wantErr: "broker redis needs a URL"},
		{name: "redis broker bad url", app: App{Broker: &Broker{Type: BrokerRedis, URL: "http://x"}}, wantErr: `broker redis: bad redis url "http://x"`},
		{name: "redis url password masked", app: App{Broker: &Broker{Type: BrokerRedis, URL: "http://u:secret@x"}}, wantErr: `"http://u:xxxxx@x"`},
		{name: "node options", app: App{NodeID: "gw-1.eu_a:2", NodeAddress: "wss://gw1.example.com/realtime", NodeZone: "eu-west-1a", NodeTTL: caddy.Duration(time.Second)}},
		{name: "node id with a space", app: App{NodeID: "gw 1"}, wantErr: `node_id "gw 1": want 1 to 64 letters, digits`},
		{name: "node id too long", app: App{NodeID: strings.Repeat("x", 65)}, wantErr: `node_id "xxx`},
		{name: "node zone with a slash", app: App{NodeZone: "eu/1"}, wantErr: `node_zone "eu/1"`},
		{name: "node address without scheme", app: App{NodeAddress: "gw1.example.com"}, wantErr: `node_address "gw1.example.com": want a ws://, wss://, http:// or https:// URL with a host`},
		{name: "node address ftp", app: App{NodeAddress: "ftp://gw1"}, wantErr: `node_address "ftp://gw1"`},
		{name: "node address with credentials", app: App{NodeAddress: "wss://u:p@gw1"}, wantErr: `node_address`},
		{name: "node ttl too short", app: App{NodeTTL: caddy.Duration(100 * time.Millisecond)}, wantErr: "node_ttl 100ms: must be between 300ms and 10m0s"},
		{name: "node ttl too long", app: App{NodeTTL: caddy.Duration(time.Hour)}, wantErr: "node_ttl 1h0m0s"},
		{name: "unknown broker", app: App{Broker: &Broker{Type: "nats"}}, wantErr: `unknown broker type "nats"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.app.Validate(), tt.wantErr)
		})
	}
}

func TestHandlerValidate(t *testing.T) {
	tests := []struct {
		name    string
		h       Handler
		wantErr string
	}{
		{name: "defaults", h: Handler{}},
		{name: "socketio with paths", h: Handler{Transports: []string{"socketio"}, SocketIOPath: []string{"/x/"}}},
		{name: "paths with default transports", h: Handler{SocketIOPath: []string{"/x/"}}},
		{name: "short timeouts", h: Handler{Heartbeat: caddy.Duration(50 * time.Millisecond), IdleTimeout: caddy.Duration(200 * time.Millisecond)}},
		{name: "unknown transport", h: Handler{Transports: []string{"WebSocket"}}, wantErr: `unknown transport "WebSocket"`},
		{name: "negative heartbeat", h: Handler{Heartbeat: -1}, wantErr: "heartbeat -1ns: must be positive"},
		{name: "negative idle", h: Handler{IdleTimeout: -1}, wantErr: "idle_timeout -1ns: must be positive"},
		{name: "idle below heartbeat", h: Handler{Heartbeat: caddy.Duration(time.Minute)}, wantErr: "idle_timeout 1m0s must be longer than heartbeat 1m0s"},
		{name: "message size too small", h: Handler{MaxMessageSize: 10}, wantErr: "max_message_size 10"},
		{name: "negative keys", h: Handler{MaxKeysPerConnection: -1}, wantErr: "max_keys_per_connection -1"},
		{name: "queue too large", h: Handler{QueueSize: maxQueueSize + 1}, wantErr: "queue_size 65537"},
		{name: "negative poll wait", h: Handler{PollMaxWait: -1}, wantErr: "poll_max_wait -1ns"},
		{name: "poll wait at the cap", h: Handler{PollMaxWait: caddy.Duration(maxPollWait)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.h.Validate(), tt.wantErr)
		})
	}
}

// TestHandlersSharingANameMustAgree: two handlers of one config naming the
// same route with different settings would fight over live connections.
func TestHandlersSharingANameMustAgree(t *testing.T) {
	e, err := gateway.New(gateway.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	a := &App{engine: e, routes: &routeTable{settings: map[string]gateway.RouteSettings{}}}
	h1 := Handler{Heartbeat: caddy.Duration(time.Second)}
	if _, err := a.route(DefaultRouteName, h1.settings()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.route(DefaultRouteName, h1.settings()); err != nil {
		t.Fatalf("same settings twice: %v", err)
	}
	h2 := Handler{Heartbeat: caddy.Duration(2 * time.Second)}
	if _, err := a.route(DefaultRouteName, h2.settings()); err == nil || !strings.Contains(err.Error(), `named "default" have different settings`) {
		t.Fatalf("different settings: %v, want refused", err)
	}
	if _, err := a.route("other", h2.settings()); err != nil {
		t.Fatalf("another name: %v", err)
	}
}

func checkErr(tb testing.TB, err error, want string) {
	tb.Helper()
	if want == "" {
		if err != nil {
			tb.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		tb.Fatalf("error %v, want one containing %q", err, want)
	}
}

// TestReloadAppliesRouteSettings: a handler's settings reach the Engine's
// route when the config starts, and a reload changes them on the same Route
// object, the one live connections read.
func TestReloadAppliesRouteSettings(t *testing.T) {
	load := func(heartbeat string) {
		t.Helper()
		cfg := `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{"http":{"servers":{"t":{"listen":["127.0.0.1:0"],"routes":[{"handle":[` +
			`{"handler":"push_gateway","name":"settings-test","heartbeat":"` + heartbeat + `","idle_timeout":"10s","queue_size":7,"poll_max_wait":"5s"}]}]}}}}}`
		if err := caddy.Load([]byte(cfg), true); err != nil {
			t.Fatalf("loading %s: %v", cfg, err)
		}
	}
	load("1s")
	t.Cleanup(func() { _ = caddy.Stop() })
	e := runningEngine()
	if e == nil {
		t.Fatal("no engine after load")
	}
	route := e.Route("settings-test")
	if s := route.Settings(); s.Heartbeat != time.Second || s.IdleTimeout != 10*time.Second || s.QueueSize != 7 || s.PollMaxWait != 5*time.Second {
		t.Fatalf("settings after load = %+v, want heartbeat 1s, idle 10s, queue 7, poll max wait 5s", s)
	}
	load("2s")
	if got := runningEngine(); got != e {
		t.Fatal("reload replaced the engine")
	}
	if got := e.Route("settings-test"); got != route {
		t.Fatal("reload replaced the route")
	}
	if s := route.Settings(); s.Heartbeat != 2*time.Second {
		t.Fatalf("heartbeat after reload = %s, want 2s", s.Heartbeat)
	}
}
