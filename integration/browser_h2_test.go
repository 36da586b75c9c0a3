package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// h2PageConfig is a `tls internal` site (HTTP/2 by default) with a page at
// / and the push route.
const h2PageConfig = `{%s	auto_https disable_redirects
}

https://127.0.0.1:{$HTTPS_PORT} {
	tls internal
	push_gateway /realtime*
	header / Content-Type "text/html; charset=utf-8"
	respond / "<!doctype html><title>EventSource over h2</title>" 200
}
`

// TestBrowserEventSourceH2: a browser's own EventSource, over HTTP/2 (Caddy's
// default for TLS sites, where the gateway cannot hijack and serves the
// stream from its handler), receives every published message in order with
// ids <epoch>:<seq>.
func TestBrowserEventSourceH2(t *testing.T) {
	node, err := browserTools()
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, nodeSpec{config: fmt.Sprintf(h2PageConfig, globalOptions), adapter: "caddyfile", waitTLS: true})
	key := testKey(t, "es")
	const count = 5

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "browser/eventsource_h2.mjs")
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("PG_SITE=https://127.0.0.1:%d", n.HTTPSPort),
		"PG_ADMIN="+n.Admin,
		"PG_KEY="+key,
		"PG_CHROMIUM="+chromiumPath,
		fmt.Sprintf("PG_COUNT=%d", count),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var rep struct {
		Protocol string `json:"protocol"`
		Received []struct {
			ID   string `json:"id"`
			Data string `json:"data"`
		} `json:"received"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &rep); err != nil {
		t.Fatalf("eventsource_h2.mjs: %v; no report (%v): %q; stderr: %s", runErr, err, stdout.String(), stderr.String())
	}
	if rep.Error != "" || runErr != nil {
		t.Fatalf("eventsource_h2.mjs: %v: %s; stderr: %s", runErr, rep.Error, stderr.String())
	}
	if rep.Protocol != "h2" {
		t.Fatalf("the page came over %q, want h2", rep.Protocol)
	}
	if len(rep.Received) != count {
		t.Fatalf("received %d events, want %d: %+v", len(rep.Received), count, rep.Received)
	}
	for i, ev := range rep.Received {
		if want := fmt.Sprintf(`{"n":%d}`, i+1); ev.Data != want {
			t.Errorf("event %d data %s, want %s", i, ev.Data, want)
		}
		if !strings.HasSuffix(ev.ID, fmt.Sprintf(":%d", i+1)) {
			t.Errorf("event %d id %q, want <epoch>:%d", i, ev.ID, i+1)
		}
	}
}
