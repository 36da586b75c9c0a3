package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

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
	fail      error // Publish's error, after failAfter successes
	failAfter int
	keyErr    error // KeyInfo's and DropKey's error
	nodes     []hub.Node
	nodesErr  error
	confirms  []*fakeConfirmation
}

// fakeConfirmation answers Wait with fixed counts and records its timeout.
type fakeConfirmation struct {
	acked, written int
	timeout        time.Duration
	waits          int
}

func (c *fakeConfirmation) Wait(timeout time.Duration) (int, int) {
	c.timeout = timeout
	c.waits++
	return c.acked, c.written
}

func (f *fakeBackend) PublishConfirm(key, event string, data []byte) (hub.Published, confirmation, error) {
	p, err := f.Publish(key, event, data)
	if err != nil {
		return p, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &fakeConfirmation{acked: 1, written: p.LocalReceivers}
	f.confirms = append(f.confirms, c)
	return p, c, nil
}

func (f *fakeBackend) Publish(key, event string, data []byte) (hub.Published, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil && len(f.published) >= f.failAfter {
		return hub.Published{}, f.fail
	}
	f.published = append(f.published, key+" "+event+" "+string(data))
	return hub.Published{Key: key, Epoch: "E", Seq: uint64(len(f.published)), LocalReceivers: 2}, nil
}

func (f *fakeBackend) KeyInfo(key string) (hub.KeyInfo, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keyErr != nil {
		return hub.KeyInfo{}, false, f.keyErr
	}
	info, ok := f.keys[key]
	return info, ok, nil
}

func (f *fakeBackend) DropKey(key string) (hub.KeyInfo, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keyErr != nil {
		return hub.KeyInfo{}, false, f.keyErr
	}
	info, ok := f.keys[key]
	if ok {
		delete(f.keys, key)
		f.dropped = append(f.dropped, key)
	}
	return info, ok, nil
}

func (f *fakeBackend) Nodes(context.Context) ([]hub.Node, error) { return f.nodes, f.nodesErr }
func (f *fakeBackend) NodeID() string                            { return "self-id" }

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
	// redisDown is how a broker reports its store unreachable.
	redisDown := fmt.Errorf("%w: dial tcp 127.0.0.1:6379: connect: connection refused", hub.ErrUnavailable)
	tests := []struct {
		name       string
		noEngine   bool
		fail       error
		failAfter  int
		keyErr     error
		nodesErr   error
		stopped    bool // confirmations are stopped (Wait(0)), not waited for
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
			body:       `{"sdk_key":"K","confirm":"2s","data":1}`,
			wantStatus: 200, wantBody: `{"published":[{"sdk_key":"K","epoch":"E","seq":1,"local_receivers":2,"acked":1,"written":2}]}`,
			wantPub: []string{`K update 1`},
		},
		{
			name: "publish confirm for some messages only", method: "POST", target: "/push_gateway/publish",
			body:       `[{"sdk_keys":["A","B"],"confirm":"1s"},{"sdk_key":"C"}]`,
			wantStatus: 200, wantBody: `"acked":1,"written":2},{"sdk_key":"C","epoch":"E","seq":3,"local_receivers":2}]}`,
			wantPub: []string{`A update null`, `B update null`, `C update null`},
		},
		{
			name: "publish confirm not a duration", method: "POST", target: "/push_gateway/publish",
			body: `{"sdk_key":"K","confirm":"soon"}`, wantStatus: 400, wantBody: `confirm: want a duration`,
		},
		{
			name: "publish confirm over the cap", method: "POST", target: "/push_gateway/publish",
			body: `{"sdk_key":"K","confirm":"31s"}`, wantStatus: 400, wantBody: `at most 30s`,
		},
		{
			name: "publish confirm hub closed", fail: hub.ErrClosed, method: "POST", target: "/push_gateway/publish",
			body: `{"sdk_key":"K","confirm":"1s"}`, wantStatus: 503, wantBody: `hub: closed`,
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
			name: "publish broker unavailable", fail: redisDown, method: "POST", target: "/push_gateway/publish",
			body: `{"sdk_key":"K"}`, wantStatus: 503,
			wantBody: `{"error":"broker unavailable: publishing to \"K\": hub: broker unavailable: dial tcp 127.0.0.1:6379: connect: connection refused"}`,
		},
		{
			name: "batch failing midway answers what was published", fail: redisDown, failAfter: 2,
			method: "POST", target: "/push_gateway/publish",
			body:       `[{"sdk_keys":["A","B"]},{"sdk_key":"C"}]`,
			wantStatus: 503,
			wantBody:   `{"error":"broker unavailable: publishing to \"C\": hub: broker unavailable: dial tcp 127.0.0.1:6379: connect: connection refused","published":[{"sdk_key":"A","epoch":"E","seq":1,"local_receivers":2},{"sdk_key":"B","epoch":"E","seq":2,"local_receivers":2}]}`,
			wantPub:    []string{`A update null`, `B update null`},
		},
		{
			name: "confirmed batch failing midway stops its confirmations", fail: redisDown, failAfter: 1, stopped: true,
			method: "POST", target: "/push_gateway/publish",
			body:       `{"sdk_keys":["A","B"],"confirm":"5s"}`,
			wantStatus: 503, wantBody: `","published":[{"sdk_key":"A","epoch":"E","seq":1,"local_receivers":2}]}`,
			wantPub: []string{`A update null`},
		},
		{
			name: "batch failing midway on a closed hub", fail: hub.ErrClosed, failAfter: 1,
			method: "POST", target: "/push_gateway/publish", body: `{"sdk_keys":["A","B"]}`,
			wantStatus: 503, wantBody: `{"error":"publishing to \"B\": hub: closed","published":[{"sdk_key":"A"`,
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
			name: "key info broker unavailable", keyErr: redisDown, method: "GET", target: "/push_gateway/keys/K1",
			wantStatus: 503, wantBody: `{"error":"broker unavailable: reading key \"K1\": hub: broker unavailable: dial tcp`,
		},
		{
			name: "drop key broker unavailable", keyErr: redisDown, method: "DELETE", target: "/push_gateway/keys/K1",
			wantStatus: 503, wantBody: `{"error":"broker unavailable: dropping key \"K1\": hub: broker unavailable: dial tcp`,
		},
		{
			name: "key info other failure", keyErr: errors.New("boom"), method: "GET", target: "/push_gateway/keys/K1",
			wantStatus: 500, wantBody: `reading key \"K1\": boom`,
		},
		{
			name: "nodes", method: "GET", target: "/push_gateway/nodes",
			wantStatus: 200, wantBody: `{"self":"self-id","nodes":[{"id":"n1","address":"wss://n1.example/realtime","zone":"z1","connections":1,"started":5,"updated":6},{"id":"self-id","connections":4,"started":1,"updated":2}]}`,
		},
		{
			name: "nodes broker unavailable", nodesErr: redisDown, method: "GET", target: "/push_gateway/nodes",
			wantStatus: 503, wantBody: `{"error":"broker unavailable: listing nodes: hub: broker unavailable: dial tcp`,
		},
		{
			name: "nodes other failure is the broker's", nodesErr: errors.New("wrong reply"), method: "GET", target: "/push_gateway/nodes",
			wantStatus: 503, wantBody: `{"error":"broker unavailable: listing nodes: hub: broker unavailable: wrong reply"}`,
		},
		{
			name: "nodes with POST", method: "POST", target: "/push_gateway/nodes", wantStatus: 405,
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
			fb := &fakeBackend{fail: tt.fail, failAfter: tt.failAfter, keyErr: tt.keyErr, nodesErr: tt.nodesErr,
				keys: map[string]hub.KeyInfo{
					"K1":    {Key: "K1", Epoch: "E1", Seq: 44, History: 44, Followers: 3},
					"a/b c": {Key: "a/b c", Epoch: "E2", Seq: 1, History: 1},
				},
				nodes: []hub.Node{
					{ID: "n1", Address: "wss://n1.example/realtime", Zone: "z1", Connections: 1, Started: 5, Updated: 6},
					{ID: "self-id", Connections: 4, Started: 1, Updated: 2},
				},
			}
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
			for i, c := range fb.confirms {
				if tt.stopped {
					if c.waits != 1 || c.timeout != 0 {
						t.Fatalf("confirmation %d: %d waits, last for %v; want stopped once", i, c.waits, c.timeout)
					}
					continue
				}
				if c.waits != 1 || c.timeout <= 0 || c.timeout > maxConfirm {
					t.Fatalf("confirmation %d: %d waits, last for %v", i, c.waits, c.timeout)
				}
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

// chanFollower hands the seqs delivered to it to the test, which acks them.
type chanFollower struct{ seqs chan uint64 }

func (f chanFollower) Deliver(m *hub.Message) bool {
	select {
	case f.seqs <- m.Seq:
		return true
	default:
		return false
	}
}
func (chanFollower) Notify(hub.Notice) bool { return true }
func (chanFollower) Close(hub.Reason)       {}

// TestAdminPublishConfirmEngine runs confirm against a real Engine: the
// answer waits for the followers' acks, or for the window when one stays
// silent.
func TestAdminPublishConfirmEngine(t *testing.T) {
	e, err := gateway.New(gateway.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	a := &Admin{backend: func() backend { return engineBackend{e} }}

	follow := func(key string) (*hub.Subscription, chanFollower) {
		f := chanFollower{seqs: make(chan uint64, 4)}
		sub := e.Hub().Subscribe(f)
		t.Cleanup(sub.Close)
		if err := sub.Follow(key, 0, "", false); err != nil {
			t.Fatal(err)
		}
		return sub, f
	}
	type answer struct {
		status int
		body   string
		took   time.Duration
	}
	publish := func(body string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			start := time.Now()
			status, b, _ := serveAdmin(t, a, "POST", "/push_gateway/publish", body)
			ch <- answer{status, b, time.Since(start)}
		}()
		return ch
	}

	t.Run("all ack", func(t *testing.T) {
		s1, f1 := follow("all")
		s2, f2 := follow("all")
		ch := publish(`{"sdk_key":"all","confirm":"10s"}`)
		s1.Ack("all", <-f1.seqs)
		s2.Ack("all", <-f2.seqs)
		ans := <-ch
		if ans.status != 200 || !strings.Contains(ans.body, `"local_receivers":2,"acked":2,"written":2`) {
			t.Fatalf("%d %s", ans.status, ans.body)
		}
		if ans.took > 5*time.Second {
			t.Fatalf("answered after %v, want at once after the acks", ans.took)
		}
	})
	t.Run("one silent", func(t *testing.T) {
		s1, f1 := follow("some")
		follow("some")
		ch := publish(`{"sdk_key":"some","confirm":"300ms"}`)
		s1.Ack("some", <-f1.seqs)
		ans := <-ch
		if ans.status != 200 || !strings.Contains(ans.body, `"acked":1,"written":2`) {
			t.Fatalf("%d %s", ans.status, ans.body)
		}
		if ans.took < 250*time.Millisecond {
			t.Fatalf("answered after %v, before the window", ans.took)
		}
	})
	t.Run("no follower", func(t *testing.T) {
		ans := <-publish(`[{"sdk_key":"none","confirm":"10s"},{"sdk_key":"none2","confirm":"10s"}]`)
		if ans.status != 200 || strings.Count(ans.body, `"local_receivers":0,"acked":0,"written":0`) != 2 || ans.took > 5*time.Second {
			t.Fatalf("%d %s after %v", ans.status, ans.body, ans.took)
		}
	})
}

// TestAdminNodesEngine: on a single node, the nodes route lists the node
// itself, with the identity the config gave it.
func TestAdminNodesEngine(t *testing.T) {
	e, err := gateway.New(gateway.Config{Node: gateway.NodeInfo{ID: "solo", Address: "wss://solo.example/realtime", Zone: "z"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	a := &Admin{backend: func() backend { return engineBackend{e} }}
	status, body, _ := serveAdmin(t, a, "GET", "/push_gateway/nodes", "")
	want := `{"self":"solo","nodes":[{"id":"solo","address":"wss://solo.example/realtime","zone":"z","connections":0,"started":`
	if status != 200 || !strings.HasPrefix(body, want) {
		t.Fatalf("%d %s, want 200 %s…", status, body, want)
	}
}
