package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestKeyPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *KeyPolicyConfig
		wantErr string // "" for none
	}{
		{name: "nil", cfg: nil},
		{name: "empty", cfg: &KeyPolicyConfig{}},
		{name: "pattern", cfg: &KeyPolicyConfig{Pattern: `[a-z0-9-]{4,40}`}},
		{name: "bad pattern", cfg: &KeyPolicyConfig{Pattern: `[a-`}, wantErr: "pattern"},
		{name: "max length over the hub's", cfg: &KeyPolicyConfig{MaxLength: 257}, wantErr: "max_length"},
		{name: "bad allowed key", cfg: &KeyPolicyConfig{Allow: []string{"ok", "bad\x01"}}, wantErr: "allow"},
		{name: "check", cfg: &KeyPolicyConfig{Check: &KeyCheckConfig{URL: "http://backend:4009/check", OnError: "deny"}}},
		{name: "check without URL", cfg: &KeyPolicyConfig{Check: &KeyCheckConfig{}}, wantErr: "URL"},
		{name: "check URL scheme", cfg: &KeyPolicyConfig{Check: &KeyCheckConfig{URL: "ftp://x/"}}, wantErr: "http"},
		{name: "check URL host", cfg: &KeyPolicyConfig{Check: &KeyCheckConfig{URL: "http:///x"}}, wantErr: "host"},
		{name: "check on_error", cfg: &KeyPolicyConfig{Check: &KeyCheckConfig{URL: "http://b/", OnError: "maybe"}}, wantErr: "on_error"},
		{name: "check negative ttl", cfg: &KeyPolicyConfig{Check: &KeyCheckConfig{URL: "http://b/", TTL: -1}}, wantErr: "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrKeyPolicy)):
				t.Fatalf("Validate: %v, want an ErrKeyPolicy naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestKeyPolicyJudge(t *testing.T) {
	b := newFakeBackend(t)
	b.set("refused-by-backend", http.StatusForbidden)
	tests := []struct {
		name string
		cfg  KeyPolicyConfig
		key  string
		want keyVerdict
	}{
		{name: "no policy part", cfg: KeyPolicyConfig{}, key: "anything", want: verdictAllow},
		{name: "pattern match", cfg: KeyPolicyConfig{Pattern: `[a-z]+-[0-9]+`}, key: "server-42", want: verdictAllow},
		{name: "pattern is anchored", cfg: KeyPolicyConfig{Pattern: `[a-z]+`}, key: "abc-1", want: verdictInvalid},
		{name: "too long", cfg: KeyPolicyConfig{MaxLength: 4}, key: "abcde", want: verdictInvalid},
		{name: "at the length", cfg: KeyPolicyConfig{MaxLength: 5}, key: "abcde", want: verdictAllow},
		{name: "allowed", cfg: KeyPolicyConfig{Allow: []string{"a", "b"}}, key: "b", want: verdictAllow},
		{name: "not allowed", cfg: KeyPolicyConfig{Allow: []string{"a", "b"}}, key: "c", want: verdictRefused},
		{name: "empty allow-list", cfg: KeyPolicyConfig{Allow: []string{}}, key: "a", want: verdictRefused},
		{name: "shape before allow-list", cfg: KeyPolicyConfig{Pattern: `x`, Allow: []string{"a"}}, key: "a", want: verdictInvalid},
		{name: "backend allows", cfg: KeyPolicyConfig{Check: &KeyCheckConfig{URL: b.srv.URL}}, key: "fine", want: verdictAllow},
		{name: "backend refuses", cfg: KeyPolicyConfig{Check: &KeyCheckConfig{URL: b.srv.URL}}, key: "refused-by-backend", want: verdictRefused},
		{name: "invalid key never asked", cfg: KeyPolicyConfig{Check: &KeyCheckConfig{URL: b.srv.URL}}, key: "", want: verdictInvalid},
		{name: "allow-list before backend", cfg: KeyPolicyConfig{Allow: []string{"x"}, Check: &KeyCheckConfig{URL: b.srv.URL}}, key: "fine", want: verdictRefused},
		{name: "backend down, on_error allow", cfg: KeyPolicyConfig{Check: &KeyCheckConfig{URL: "http://127.0.0.1:1/", Timeout: time.Second}}, key: "k", want: verdictAllow},
		{name: "backend down, on_error deny", cfg: KeyPolicyConfig{Check: &KeyCheckConfig{URL: "http://127.0.0.1:1/", OnError: KeyCheckDeny}}, key: "k", want: verdictRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := testEngine(t, RouteSettings{})
			e.Configure(Config{KeyPolicy: &tt.cfg})
			if got := e.judgeWait(context.Background(), tt.key); got != tt.want {
				t.Fatalf("verdict %d, want %d", got, tt.want)
			}
			if b.count("") != 0 {
				t.Fatal("the backend was asked about an empty key")
			}
		})
	}
}

func TestKeyPolicyReloadKeepsTheCache(t *testing.T) {
	b := newFakeBackend(t)
	e, _ := testEngine(t, RouteSettings{})
	check := KeyCheckConfig{URL: b.srv.URL}
	e.Configure(Config{KeyPolicy: &KeyPolicyConfig{Check: &check}})
	e.judgeWait(context.Background(), "k")
	e.Configure(Config{KeyPolicy: &KeyPolicyConfig{Pattern: `k`, Check: &check}})
	e.judgeWait(context.Background(), "k")
	if n := b.count("k"); n != 1 {
		t.Fatalf("backend asked %d times across a reload with the same check, want 1", n)
	}
	check.TTL = time.Hour
	e.Configure(Config{KeyPolicy: &KeyPolicyConfig{Check: &check}})
	e.judgeWait(context.Background(), "k")
	if n := b.count("k"); n != 2 {
		t.Fatalf("backend asked %d times after the check changed, want 2", n)
	}
	e.Configure(Config{})
	if v := e.judgeWait(context.Background(), "anything\x7f"); v != verdictAllow {
		t.Fatalf("no policy after a reload without one: verdict %d", v)
	}
	if st := e.Stats().KeyPolicy; st.BackendRequests != 2 || st.CacheHits != 1 || st.Checks != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestKeyPolicyNativeRegister(t *testing.T) {
	b := newFakeBackend(t)
	b.set("backend-no", http.StatusNotFound)
	tests := []struct {
		name      string
		path      string // URL keys
		register  string // "" for none
		wantClose ws.StatusCode
		wantCode  string // the error message's code
	}{
		{name: "allowed", register: "ok-1"},
		{name: "bad pattern", register: "BAD", wantClose: 4400, wantCode: "bad_request"},
		{name: "not allowed", register: "ok-2", wantClose: 4401, wantCode: "key_refused"},
		{name: "backend refuses", register: "backend-no", wantClose: 4401, wantCode: "key_refused"},
		{name: "URL key, bad pattern", path: "?sdk_key=BAD", wantClose: 4400, wantCode: "bad_request"},
		{name: "URL key refused", path: "?sdk_key=backend-no", wantClose: 4401, wantCode: "key_refused"},
		{name: "URL key allowed", path: "?sdk_key=ok-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, url := testEngine(t, RouteSettings{})
			e.Configure(Config{KeyPolicy: &KeyPolicyConfig{
				Pattern: `[a-z0-9-]+`,
				Allow:   []string{"ok-1", "backend-no"},
				Check:   &KeyCheckConfig{URL: b.srv.URL},
			}})
			c := dialWS(t, url+tt.path)
			if tt.register != "" {
				c.send(`{"type":"register","sdk_key":"` + tt.register + `"}`)
			}
			if tt.wantClose == 0 {
				m := c.expect("registered")
				if m["sdk_key"] != "ok-1" {
					t.Fatalf("registered %v", m)
				}
				return
			}
			m := c.expect("error")
			if m["code"] != tt.wantCode {
				t.Fatalf("error %v, want code %q", m, tt.wantCode)
			}
			c.expectClose(tt.wantClose)
		})
	}
}

func TestKeyPolicyPendingRegister(t *testing.T) {
	b := newFakeBackend(t)
	e, url := testEngine(t, RouteSettings{})
	e.Configure(Config{KeyPolicy: &KeyPolicyConfig{Check: &KeyCheckConfig{URL: b.srv.URL}}})
	checker := e.kp.cur.Load().check
	idle := func() bool {
		checker.mu.Lock()
		defer checker.mu.Unlock()
		return len(checker.inflight) == 0 && checker.workers == 0
	}

	t.Run("answered later, in order", func(t *testing.T) {
		gate := b.hold()
		c := dialWS(t, url)
		c.send(`{"type":"register","sdk_key":"later"}`)
		waitFor(t, "the lookup at the backend", func() bool { return b.count("later") == 1 })
		c.send(`{"type":"ping"}`) // the worker is free while the backend thinks
		c.expect("pong")
		b.release(gate)
		if m := c.expect("registered"); m["sdk_key"] != "later" {
			t.Fatalf("registered %v", m)
		}
		if _, err := e.Hub().Publish("later", "update", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		c.expect("message")
	})

	t.Run("unregistered meanwhile", func(t *testing.T) {
		gate := b.hold()
		c := dialWS(t, url)
		c.send(`{"type":"register","sdk_key":"given-up"}`)
		waitFor(t, "the lookup at the backend", func() bool { return b.count("given-up") == 1 })
		c.send(`{"type":"unregister","sdk_key":"given-up"}`)
		waitFor(t, "the unregister", func() bool { return e.kp.pending.n.Load() == 0 })
		b.release(gate)
		waitFor(t, "the lookup to end", idle)
		c.send(`{"type":"ping"}`)
		c.expect("pong") // and no registered before it
		if fs := followers(e, "given-up"); fs != 0 {
			t.Fatalf("%d followers of an unregistered key", fs)
		}
	})

	t.Run("closed meanwhile", func(t *testing.T) {
		gate := b.hold()
		c := dialWS(t, url)
		c.send(`{"type":"register","sdk_key":"gone"}`)
		waitFor(t, "the lookup at the backend", func() bool { return b.count("gone") == 1 })
		c.nc.Close()
		waitFor(t, "the connection to close", func() bool { return e.Stats().Connections.WebSocket == 0 })
		b.release(gate)
		waitFor(t, "the lookup to end", idle)
		if fs := followers(e, "gone"); fs != 0 {
			t.Fatalf("%d followers of a closed connection's key", fs)
		}
	})
}

func TestKeyPolicyHTTP(t *testing.T) {
	b := newFakeBackend(t)
	b.set("no", http.StatusForbidden)
	tests := []struct {
		name       string
		query      string
		sse        bool
		wantStatus int
		wantError  string
	}{
		{name: "sse allowed", query: "sdk_key=yes", sse: true, wantStatus: http.StatusOK},
		{name: "sse refused", query: "sdk_key=no", sse: true, wantStatus: http.StatusForbidden, wantError: "key refused"},
		{name: "sse bad shape", query: "sdk_key=Yes", sse: true, wantStatus: http.StatusBadRequest, wantError: "key policy"},
		{name: "poll allowed", query: "sdk_key=yes&wait=0s", wantStatus: http.StatusOK},
		{name: "poll one key refused", query: "sdk_key=yes&sdk_key=no&wait=0s", wantStatus: http.StatusForbidden, wantError: "key refused"},
		{name: "poll bad shape", query: "sdk_key=yes&sdk_key=N0&wait=0s", wantStatus: http.StatusBadRequest, wantError: "key policy"},
	}
	e, wsURL := testEngine(t, RouteSettings{})
	base := "http" + strings.TrimPrefix(wsURL, "ws")
	e.Configure(Config{KeyPolicy: &KeyPolicyConfig{Pattern: `[a-z]+`, Check: &KeyCheckConfig{URL: b.srv.URL}}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			h := http.Header{}
			if tt.sse {
				h.Set("Accept", "text/event-stream")
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"?"+tt.query, nil)
			req.Header = h
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantError == "" {
				return
			}
			var body struct{ Error string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || !strings.Contains(body.Error, tt.wantError) {
				t.Fatalf("body %+v %v, want an error naming %q", body, err, tt.wantError)
			}
		})
	}
}

func TestKeyPolicySocketIORefused(t *testing.T) {
	b := newFakeBackend(t)
	b.set("fp-refused", http.StatusUnauthorized)
	tests := []struct {
		name      string
		register  string
		want      []string // packets before the close
		wantClose ws.StatusCode
	}{
		{name: "client sdk allowed", register: `42/realtime,["register",{"sdk_key":"fp-ok"}]`, want: []string{`42/realtime,["update",""]`}},
		{name: "server sdk refused", register: `42/realtime,["register",{"key":"fp-refused"}]`, want: []string{`41/realtime,`}, wantClose: 4401},
		{name: "bad shape", register: `42/realtime,["register",{"sdk_key":"FP"}]`, wantClose: 4400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, url := sioEngine(t, RouteSettings{})
			e.Configure(Config{KeyPolicy: &KeyPolicyConfig{Pattern: `[a-z-]+`, Check: &KeyCheckConfig{URL: b.srv.URL}}})
			c := dialSIO(t, url, "/realtime/")
			c.send("40/realtime,")
			c.expectConnect("/realtime")
			c.send(tt.register)
			for _, w := range tt.want {
				c.expect(w)
			}
			if tt.wantClose != 0 {
				c.expectClose(tt.wantClose)
			}
		})
	}
}
