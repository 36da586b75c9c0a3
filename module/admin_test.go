package module

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/pushgateway/push_gateway/gateway"
	"github.com/pushgateway/push_gateway/hub"
)

// fakeBackend records publishes and answers key lookups from a map.
type fakeBackend struct {
	mu        sync.Mutex
	published []string // "key event data"
	keys      map[string]hub.KeyInfo
	dropped   []string
	fail      error
}

func (f *fakeBackend) Publish(key, event string, data []byte) (hub.Published, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return hub.Published{}, f.fail
	}
	f.published = append(f.published, key+" "+event+" "+string(data))
	return hub.Published{Key: key, Epoch: "E", Seq: uint64(len(f.published)), LocalReceivers: 2}, nil
}

func (f *fakeBackend) KeyInfo(key string) (hub.KeyInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, ok := f.keys[key]
	return info, ok
}

func (f *fakeBackend) DropKey(key string) (hub.KeyInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, ok := f.keys[key]
	if ok {
		delete(f.keys, key)
		f.dropped = append(f.dropped, key)
	}
	return info, ok
}

func (f *fakeBackend) Stats() gateway.Stats {
	return gateway.Stats{Connections: gateway.Connections{Total: 3, WebSocket: 3}, Stats: hub.Stats{Keys: 1, Published: 7}}
}

// serveAdmin runs one request through the admin routes as Caddy's admin
// server would, and returns the status, the body (Caddy's {"error":…}
// rendering of an APIError included) and the recorder.
func serveAdmin(tb testing.TB, a *Admin, method, target, body string) (int, string, *httptest.ResponseRecorder) {
	tb.Helper()
	routes := a.Routes()
	if len(routes) != 1 || routes[0].Pattern != adminPrefix {
		tb.Fatalf("routes = %+v, want one route on %s", routes, adminPrefix)
	}
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	if err := routes[0].Handler.ServeHTTP(rec, req); err != nil {
		var apiErr caddy.APIError
		if !errors.As(err, &apiErr) {
			tb.Fatalf("%s %s: error %v is not a caddy.APIError", method, target, err)
		}
		msg, _ := json.Marshal(map[string]string{"error": apiErr.Err.Error()})
		return apiErr.HTTPStatus, string(msg), rec
	}
	return rec.Code, rec.Body.String(), rec
}

func TestAdminRoutes(t *testing.T) {
	tests := []struct {
		name       string
		noEngine   bool
		fail       error
		method     string
		target     string
		body       string
		wantStatus int
		wantBody   string // substring
		wantPub    []string
	}{
		{
			name: "publish one key", method: "POST", target: "/push_gateway/publish",
			body:       `{"sdk_key":"K","data":{"on":true}}`,
			wantStatus: 200, wantBody: `{"published":[{"sdk_key":"K","epoch":"E","seq":1,"local_receivers":2}]}`,
			wantPub: []string{`K update {"on":true}`},
		},
		{
			name: "publish several keys and messages in request order", method: "POST", target: "/push_gateway/publish",
			body:       `[{"sdk_keys":["A","B"],"data":""},{"sdk_key":"C","event":"kill"}]`,
			wantStatus: 200, wantBody: `"sdk_key":"A","epoch":"E","seq":1,"local_receivers":2},{"sdk_key":"B","epoch":"E","seq":2,"local_receivers":2},{"sdk_key":"C"`,
			wantPub: []string{`A update ""`, `B update ""`, `C kill null`},
		},
		{
			name: "publish unknown field", method: "POST", target: "/push_gateway/publish",
			body: `{"sdk_key":"K","x":1}`, wantStatus: 400, wantBody: `unknown field`,
		},
		{
			name: "publish confirm", method: "POST", target: "/push_gateway/publish",
			body: `{"sdk_key":"K","confirm":"2s"}`, wantStatus: 400, wantBody: `confirm is not supported yet`,
		},
		{
			name: "publish body over 1 MiB", method: "POST", target: "/push_gateway/publish",
			body:       `{"sdk_key":"K","data":"` + strings.Repeat("x", maxPublishBody) + `"}`,
			wantStatus: 413, wantBody: `body larger than 1048576 bytes`,
		},
		{
			name: "publish hub refuses", fail: hub.ErrBadEvent, method: "POST", target: "/push_gateway/publish",
			body: `{"sdk_key":"K"}`, wantStatus: 400, wantBody: `invalid event name`,
		},
		{
			name: "publish hub closed", fail: hub.ErrClosed, method: "POST", target: "/push_gateway/publish",
			body: `{"sdk_key":"K"}`, wantStatus: 503, wantBody: `hub: closed`,
		},
		{
			name: "publish with GET", method: "GET", target: "/push_gateway/publish",
			wantStatus: 405, wantBody: `method GET not allowed`,
		},
		{
			name: "publish without engine", noEngine: true, method: "POST", target: "/push_gateway/publish",
			body: `{"sdk_key":"K"}`, wantStatus: 503, wantBody: `push_gateway is not running`,
		},
		{
			name: "stats", method: "GET", target: "/push_gateway/stats",
			wantStatus: 200, wantBody: `{"connections":{"total":3,"websocket":3,"sse":0,"poll":0,"socketio":0},"keys":1,"published":7`,
		},
		{
			name: "stats with POST", method: "POST", target: "/push_gateway/stats", wantStatus: 405,
		},
		{
			name: "key info", method: "GET", target: "/push_gateway/keys/K1",
			wantStatus: 200, wantBody: `{"sdk_key":"K1","epoch":"E1","seq":44,"history":44,"followers":3}`,
		},
		{
			name: "key info of an escaped key", method: "GET", target: "/push_gateway/keys/a%2Fb%20c",
			wantStatus: 200, wantBody: `"sdk_key":"a/b c"`,
		},
		{
			name: "key info unknown", method: "GET", target: "/push_gateway/keys/nope",
			wantStatus: 404, wantBody: `unknown sdk key \"nope\"`,
		},
		{
			name: "key info invalid key", method: "GET", target: "/push_gateway/keys/a%0Ab",
			wantStatus: 400, wantBody: `invalid sdk key`,
		},
		{
			name: "key info empty key", method: "GET", target: "/push_gateway/keys/",
			wantStatus: 400, wantBody: `invalid sdk key`,
		},
		{
			name: "drop key answers the info before the drop", method: "DELETE", target: "/push_gateway/keys/K1",
			wantStatus: 200, wantBody: `"seq":44,"history":44,"followers":3`,
		},
		{
			name: "drop unknown key", method: "DELETE", target: "/push_gateway/keys/nope", wantStatus: 404,
		},
		{
			name: "key with PUT", method: "PUT", target: "/push_gateway/keys/K1", wantStatus: 405,
		},
		{
			name: "unknown route", method: "GET", target: "/push_gateway/nope", wantStatus: 404, wantBody: `unknown route /push_gateway/nope`,
		},
		{
			name: "unknown route without engine", noEngine: true, method: "GET", target: "/push_gateway/nope", wantStatus: 404,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBackend{fail: tt.fail, keys: map[string]hub.KeyInfo{
				"K1":    {Key: "K1", Epoch: "E1", Seq: 44, History: 44, Followers: 3},
				"a/b c": {Key: "a/b c", Epoch: "E2", Seq: 1, History: 1},
			}}
			a := &Admin{backend: func() backend {
				if tt.noEngine {
					return nil
				}
				return fb
			}}
			status, body, _ := serveAdmin(t, a, tt.method, tt.target, tt.body)
			if status != tt.wantStatus {
				t.Fatalf("%s %s: status %d, want %d; body %s", tt.method, tt.target, status, tt.wantStatus, body)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Fatalf("%s %s: body %s, want it to contain %s", tt.method, tt.target, body, tt.wantBody)
			}
			if tt.wantPub != nil && strings.Join(fb.published, "\n") != strings.Join(tt.wantPub, "\n") {
				t.Fatalf("published %q, want %q", fb.published, tt.wantPub)
			}
			if tt.wantStatus != 200 && tt.fail == nil && len(fb.published) != 0 {
				t.Fatalf("a refused request published %q", fb.published)
			}
		})
	}
}

func TestAdminMethodNotAllowedSetsAllow(t *testing.T) {
	a := &Admin{backend: func() backend { return &fakeBackend{} }}
	_, _, rec := serveAdmin(t, a, "PATCH", "/push_gateway/keys/K", "")
	if got := rec.Header().Get("Allow"); got != "GET, DELETE" {
		t.Fatalf("Allow = %q, want %q", got, "GET, DELETE")
	}
}

func TestAdminDropKeyDrops(t *testing.T) {
	fb := &fakeBackend{keys: map[string]hub.KeyInfo{"K": {Key: "K", Epoch: "E", Seq: 2}}}
	a := &Admin{backend: func() backend { return fb }}
	if status, body, _ := serveAdmin(t, a, "DELETE", "/push_gateway/keys/K", ""); status != 200 {
		t.Fatalf("DELETE: status %d, body %s", status, body)
	}
	if len(fb.dropped) != 1 || fb.dropped[0] != "K" {
		t.Fatalf("dropped %q, want [K]", fb.dropped)
	}
	if status, _, _ := serveAdmin(t, a, "GET", "/push_gateway/keys/K", ""); status != 404 {
		t.Fatalf("GET after DELETE: status %d, want 404", status)
	}
}
