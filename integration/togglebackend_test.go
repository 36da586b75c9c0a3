package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
)

// fpBundlePath is featureprobe-client-sdk-js's browser bundle, which the
// backend serves to the Chromium test page.
const fpBundlePath = "../node_modules/featureprobe-client-sdk-js/dist/featureprobe-client-sdk-js.min.js"

// toggleBackend is a tiny stand-in for FeatureProbe's API server: the
// toggle endpoints its SDKs poll, in the JSON shapes the 2.2.0 SDKs parse,
// for one environment (a server key and its client key) holding boolean
// toggles. The tests put it behind Caddy's reverse_proxy, as
// caddyfile-examples/featureprobe/ does.
//
//	GET  /api/server-sdk/toggles  Authorization: <server key>
//	     → {"toggles":{K:{key,enabled,version,disabledServe,defaultServe,
//	        rules,variations}},"segments":{}}  (the server SDK evaluates)
//	GET  /api/client-sdk/toggles?user=<base64 JSON>  Authorization: <client key>
//	     → {K:{value,ruleIndex,variationIndex,version,reason}}  (evaluated)
//	POST /api/events             → 200 (the SDKs report access events)
//	GET  /api/client-sdk/events  → {} (the browser SDK's auto-reported events)
//	GET  /sdk-test/index.html, /sdk-test/sdk.min.js: the Chromium test page
//	     and the client SDK's own browser bundle.
type toggleBackend struct {
	srv       *httptest.Server
	serverKey string
	clientKey string

	mu      sync.Mutex
	toggles map[string]bool // toggle key → value
	version int
	fetches map[string]int // SDK key → toggle requests answered
}

// newToggleBackend starts a backend for one environment whose toggles are
// initial; it stops with the test.
func newToggleBackend(t testing.TB, serverKey, clientKey string, initial map[string]bool) *toggleBackend {
	t.Helper()
	b := &toggleBackend{
		serverKey: serverKey,
		clientKey: clientKey,
		toggles:   map[string]bool{},
		version:   1,
		fetches:   map[string]int{},
	}
	for k, v := range initial {
		b.toggles[k] = v
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/server-sdk/toggles", b.serverToggles)
	mux.HandleFunc("GET /api/client-sdk/toggles", b.clientToggles)
	mux.HandleFunc("POST /api/events", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "{}")
	})
	// The browser SDK's auto-reporting asks which page-view and click
	// events the environment defines: none.
	mux.HandleFunc("GET /api/client-sdk/events", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{})
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent) // keeps Chromium's console free of a 404
	})
	mux.HandleFunc("GET /sdk-test/index.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fpTestPage)
	})
	mux.HandleFunc("GET /sdk-test/sdk.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, fpBundlePath)
	})
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

// Addr is host:port, for Caddy's reverse_proxy ({$BACKEND}).
func (b *toggleBackend) Addr() string { return b.srv.Listener.Addr().String() }

// URL is http://host:port.
func (b *toggleBackend) URL() string { return b.srv.URL }

// Set changes one toggle and the environment's version, as a toggle edit in
// FeatureProbe's console does.
func (b *toggleBackend) Set(toggle string, value bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.toggles[toggle] = value
	b.version++
}

// Fetches is how many toggle requests the backend answered for sdkKey.
func (b *toggleBackend) Fetches(sdkKey string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fetches[sdkKey]
}

// authorize counts the request and checks its SDK key.
func (b *toggleBackend) authorize(w http.ResponseWriter, r *http.Request, want string) bool {
	got := r.Header.Get("Authorization")
	if got != want {
		http.Error(w, `{"error":"unknown sdk key"}`, http.StatusUnauthorized)
		return false
	}
	b.mu.Lock()
	b.fetches[got]++
	b.mu.Unlock()
	return true
}

// fpServe is a serve rule: a fixed variation.
type fpServe struct {
	Select int `json:"select"`
}

// fpServerToggle is one toggle as featureprobe-server-sdk-node's Toggle
// reads it (dist/Evaluate.js); variations are [false, true] and the
// default serve selects the current value.
type fpServerToggle struct {
	Key           string  `json:"key"`
	Enabled       bool    `json:"enabled"`
	Version       int     `json:"version"`
	ForClient     bool    `json:"forClient"`
	DisabledServe fpServe `json:"disabledServe"`
	DefaultServe  fpServe `json:"defaultServe"`
	Rules         []any   `json:"rules"`
	Variations    []bool  `json:"variations"`
	Prerequisites []any   `json:"prerequisites"`
}

func (b *toggleBackend) serverToggles(w http.ResponseWriter, r *http.Request) {
	if !b.authorize(w, r, b.serverKey) {
		return
	}
	b.mu.Lock()
	toggles := make(map[string]fpServerToggle, len(b.toggles))
	for k, v := range b.toggles {
		sel := 0
		if v {
			sel = 1
		}
		toggles[k] = fpServerToggle{
			Key: k, Enabled: true, Version: b.version, ForClient: true,
			DisabledServe: fpServe{Select: 0}, DefaultServe: fpServe{Select: sel},
			Rules: []any{}, Variations: []bool{false, true}, Prerequisites: []any{},
		}
	}
	b.mu.Unlock()
	writeJSON(w, map[string]any{"toggles": toggles, "segments": map[string]any{}})
}

// fpClientDetail is one evaluated toggle as featureprobe-client-sdk-js
// stores it (its toggleValue/toggleDetail read these fields).
type fpClientDetail struct {
	Value          bool   `json:"value"`
	RuleIndex      *int   `json:"ruleIndex"`
	VariationIndex int    `json:"variationIndex"`
	Version        int    `json:"version"`
	Reason         string `json:"reason"`
}

func (b *toggleBackend) clientToggles(w http.ResponseWriter, r *http.Request) {
	if !b.authorize(w, r, b.clientKey) {
		return
	}
	if r.URL.Query().Get("user") == "" { // the SDK always sends its user, base64 JSON
		http.Error(w, `{"error":"user is required"}`, http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	details := make(map[string]fpClientDetail, len(b.toggles))
	for k, v := range b.toggles {
		idx := 0
		if v {
			idx = 1
		}
		details[k] = fpClientDetail{Value: v, VariationIndex: idx, Version: b.version, Reason: "default."}
	}
	b.mu.Unlock()
	writeJSON(w, details)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "toggle backend: encode:", err)
	}
}

// fpTestPage runs the client SDK's browser bundle with its defaults
// (remoteUrl: this origin; Socket.IO on /server/realtime/, namespace
// /realtime) and reports through pgOut, which client_sdk_browser.mjs
// exposes.
const fpTestPage = `<!doctype html>
<meta charset="utf-8">
<title>featureprobe-client-sdk-js through push_gateway</title>
<script src="/sdk-test/sdk.min.js"></script>
<script>
  const q = new URLSearchParams(location.search);
  const toggle = q.get('toggle');
  const report = (o) => window.pgOut(Object.assign({ t: performance.timeOrigin + performance.now() }, o));
  const fp = new featureProbe.FeatureProbe({
    remoteUrl: location.origin,
    clientSdkKey: q.get('key'),
    user: new featureProbe.FPUser('pg-user'),
    refreshInterval: 600000,
    timeoutInterval: 15000,
  });
  let last;
  fp.on('ready', () => { last = fp.boolValue(toggle, null); report({ event: 'ready', value: last }); });
  fp.on('error', () => report({ event: 'error', error: 'the SDK gave up initialising' }));
  fp.on('fetch_toggle_error', () => report({ event: 'error', error: 'fetching toggles failed' }));
  fp.on('update', () => {
    const v = fp.boolValue(toggle, null);
    if (v !== last) { last = v; report({ event: 'value', value: v }); }
  });
  fp.start();
</script>
`
