package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	browser "github.com/pushgateway/push_gateway/client"
)

// clientAsset is one form of the browser client, with its validator
// computed once: the bytes are fixed at build time.
type clientAsset struct {
	body []byte
	etag string
}

func newClientAsset(b []byte) clientAsset {
	sum := sha256.Sum256(b)
	return clientAsset{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

var (
	clientClassic = newClientAsset(browser.JS)     // <route>/client.js
	clientModule  = newClientAsset(browser.Module) // <route>/client.mjs
)

// serveClientJS answers GET and HEAD of <route>/client.js and
// <route>/client.mjs with the embedded browser client and reports whether it
// did; ServeHTTP calls it before picking a transport. A WebSocket upgrade
// on those paths is left to the transports.
func (e *Engine) serveClientJS(w http.ResponseWriter, r *http.Request) (handled bool) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || isWebSocket(r) {
		return false
	}
	var a *clientAsset
	switch {
	case strings.HasSuffix(r.URL.Path, "/client.js"):
		a = &clientClassic
	case strings.HasSuffix(r.URL.Path, "/client.mjs"):
		a = &clientModule
	default:
		return false
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	// ServeContent answers If-None-Match (304), HEAD and ranges.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	return true
}
