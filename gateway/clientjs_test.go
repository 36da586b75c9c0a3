package gateway

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	browser "github.com/pushgateway/push_gateway/client"
)

// TestClientJS checks that the route serves the embedded browser client in
// both forms, with its validators, and leaves other paths to the transports.
func TestClientJS(t *testing.T) {
	_, wsURL := testEngine(t, RouteSettings{})
	base := "http" + strings.TrimPrefix(wsURL, "ws")
	tests := []struct {
		name, method, path string
		header             http.Header
		status             int
		body               []byte // nil: not checked
	}{
		{"classic script", http.MethodGet, "/realtime/client.js", nil, http.StatusOK, browser.JS},
		{"module", http.MethodGet, "/realtime/client.mjs", nil, http.StatusOK, browser.Module},
		{"head", http.MethodHead, "/realtime/client.js", nil, http.StatusOK, []byte{}},
		{"revalidation", http.MethodGet, "/realtime/client.js", http.Header{"If-None-Match": {clientClassic.etag}}, http.StatusNotModified, []byte{}},
		{"other etag", http.MethodGet, "/realtime/client.js", http.Header{"If-None-Match": {`"x"`}}, http.StatusOK, browser.JS},
		{"post is no script", http.MethodPost, "/realtime/client.js", nil, http.StatusMethodNotAllowed, nil},
		{"other path is a long poll", http.MethodGet, "/realtime/clientXjs?sdk_key=K&wait=0s", nil, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := doRequest(t, context.Background(), tc.method, base+tc.path, tc.header)
			isScript := resp.Header.Get("Content-Type") == "text/javascript; charset=utf-8"
			if tc.status == 0 { // not the script, whatever the transport answers
				if isScript {
					t.Fatalf("%s answered with the script", tc.path)
				}
				return
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if tc.body == nil {
				return
			}
			if tc.status == http.StatusOK && !isScript {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			if got := resp.Header.Get("Cache-Control"); got != "public, max-age=300" {
				t.Errorf("Cache-Control %q", got)
			}
			if resp.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			if !bytes.Equal(b, tc.body) {
				t.Errorf("body: %d bytes, want %d", len(b), len(tc.body))
			}
		})
	}
	if clientClassic.etag == clientModule.etag {
		t.Error("the two forms share an ETag")
	}
	if !bytes.HasPrefix(browser.Module, browser.JS) || !bytes.Contains(browser.Module, []byte("export { PushGateway }")) {
		t.Error("the module is not the script plus its export")
	}
}
