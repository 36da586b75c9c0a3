package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var updateDemoPNG = flag.Bool("update-demo-png", false, "write the browser test's screenshot to docs/demo.png")

const (
	// browserTimeout bounds the whole node script (Chromium start, four
	// transport switches, screenshot).
	browserTimeout = 90 * time.Second
	demoDir        = "../caddyfile-examples/demo"
	chromiumPath   = "/usr/bin/chromium"
)

// browserConfig is the demo site with the client endpoint behind switches:
// block lists the `respond` lines that refuse transports (a reload changes
// them, as a proxy or a firewall in front of the gateway would).
const browserConfig = `{%s}
:{$PORT} {
	@ws header Upgrade websocket
	@sse header Accept *text/event-stream*
	route {
		%s
		push_gateway /realtime* {
			heartbeat 5s
		}
		root * %s
		file_server
	}
}
`

// browserReport is what integration/browser/degrade.mjs prints.
type browserReport struct {
	Published []int `json:"published"`
	Delivered []struct {
		Key       string `json:"key"`
		Seq       int    `json:"seq"`
		Transport string `json:"transport"`
	} `json:"delivered"`
	Transports    []string          `json:"transports"`
	Resyncs       []json.RawMessage `json:"resyncs"`
	Toggles       map[string]bool   `json:"toggles"`
	Final         map[string]bool   `json:"final"`
	Pill          string            `json:"pill"`
	ConsoleErrors []string          `json:"consoleErrors"`
	Phases        []struct {
		Transport string `json:"transport"`
		MS        int    `json:"ms"`
	} `json:"phases"`
	Switches []struct {
		Toggle     string  `json:"toggle"`
		On         bool    `json:"on"`
		X, Y, W, H float64 // CSS pixels; the page renders at scale 1
	} `json:"switches"`
	Screenshot    string                   `json:"screenshot"`
	ClassicScript bool                     `json:"classicScript"`
	MultiKey      map[string]multiKeyRound `json:"multiKey"`
	Error         string                   `json:"error"`
}

// multiKeyRound is one transport's round of two keys on one client.
type multiKeyRound struct {
	Keys          []string         `json:"keys"`
	Published     map[string][]int `json:"published"`
	Received      map[string][]int `json:"received"`
	UnfollowedSeq int              `json:"unfollowedSeq"`
	Transports    []string         `json:"transports"`
}

// errBrowserTools marks a machine without node, Chromium or node_modules.
var errBrowserTools = errors.New("browser test tools missing")

// browserTools finds node and checks Chromium and playwright-core; CI
// installs all three (.ci/run), so their absence is a failure, not a skip.
func browserTools() (node string, err error) {
	node, err = exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("%w: node is not on PATH (apt-get install nodejs npm)", errBrowserTools)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		return "", fmt.Errorf("%w: %s: %v (apt-get install chromium)", errBrowserTools, chromiumPath, err)
	}
	if _, err := os.Stat("../node_modules/playwright-core/package.json"); err != nil {
		return "", fmt.Errorf("%w: playwright-core is not installed: run `npm ci` at the repository root (%v)", errBrowserTools, err)
	}
	return node, nil
}

// TestBrowserDegradeAndRecover runs the demo page in real Chromium with the
// embedded browser client: it receives over WebSocket; with WebSocket
// refused it moves to SSE, with SSE refused too to long poll, and when
// WebSocket works again its probe brings it back; every message published
// meanwhile arrives once, in order. The screenshot must show the toggle
// state published last.
func TestBrowserDegradeAndRecover(t *testing.T) {
	node, err := browserTools()
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(demoDir)
	if err != nil {
		t.Fatal(err)
	}
	config := func(block ...string) string {
		return fmt.Sprintf(browserConfig, globalOptions, strings.Join(block, "\n\t\t"), root)
	}
	open := config()
	n := startCaddy(t, open)
	key := "demo" // the node is this test's own: the picture shows the demo's key
	shot := filepath.Join(t.TempDir(), "demo.png")

	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "browser/degrade.mjs")
	cmd.Env = append(os.Environ(),
		"PG_SITE="+n.HTTP,
		"PG_ADMIN="+n.Admin,
		"PG_KEY="+key,
		"PG_CONFIG_OPEN="+open,
		"PG_CONFIG_NOWS="+config("respond @ws 403"),
		"PG_CONFIG_NONE="+config("respond @ws 403", "respond @sse 403"),
		"PG_SCREENSHOT="+shot,
		"PG_PROBE_MS=1000",
		"PG_CHROMIUM="+chromiumPath,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("degrade.mjs ran %v; its log:\n%s", time.Since(start).Round(time.Millisecond), stderr.String())
	var rep browserReport
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &rep); err != nil {
		t.Fatalf("degrade.mjs: %v; no report (%v): %q", runErr, err, stdout.String())
	}
	if rep.Error != "" || runErr != nil {
		t.Fatalf("degrade.mjs: %v: %s", runErr, rep.Error)
	}

	t.Run("every message once and in order", func(t *testing.T) {
		var got []int
		for _, d := range rep.Delivered {
			if d.Key != key {
				t.Errorf("message for key %q", d.Key)
			}
			got = append(got, d.Seq)
		}
		if len(rep.Published) < 10 {
			t.Fatalf("only %d messages published", len(rep.Published))
		}
		// The page follows from "now": it gets everything after the seq it
		// registered at, which is the first seq the script published.
		want := rep.Published
		if len(got) != len(want) {
			t.Fatalf("delivered %d messages, published %d\ndelivered %v\npublished %v", len(got), len(want), got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("message %d: seq %d, want %d\ndelivered %v\npublished %v", i, got[i], want[i], got, want)
			}
		}
		if len(rep.Resyncs) != 0 {
			t.Errorf("resyncs: %s", rep.Resyncs)
		}
	})
	t.Run("transports degrade and recover", func(t *testing.T) {
		want := []string{"websocket", "sse", "poll", "websocket"}
		if !slices.Equal(rep.Transports, want) {
			t.Errorf("transports in use %v, want %v", rep.Transports, want)
		}
		per := map[string]int{}
		for _, d := range rep.Delivered {
			per[d.Transport]++
		}
		for _, tr := range []string{"websocket", "sse", "poll"} {
			if per[tr] == 0 {
				t.Errorf("no message delivered over %s (per transport: %v)", tr, per)
			}
		}
		if rep.Pill != "websocket" {
			t.Errorf("the page shows transport %q, want websocket", rep.Pill)
		}
		t.Logf("per transport: %v; phases: %+v", per, rep.Phases)
	})
	t.Run("screenshot shows the toggles", func(t *testing.T) {
		checkScreenshot(t, &rep)
		if *updateDemoPNG {
			b, err := os.ReadFile(rep.Screenshot)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile("../docs/demo.png", b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("classic script", func(t *testing.T) {
		if !rep.ClassicScript {
			t.Error("<route>/client.js did not define window.PushGateway")
		}
	})
	for _, tr := range []string{"websocket", "sse", "poll"} {
		t.Run("two keys then unfollow over "+tr, func(t *testing.T) {
			round, ok := rep.MultiKey[tr]
			if !ok || len(round.Keys) != 2 {
				t.Fatalf("no round over %s: %+v", tr, round)
			}
			if !slices.Equal(round.Transports, []string{tr}) {
				t.Errorf("delivered over %v, want only %s", round.Transports, tr)
			}
			for _, k := range round.Keys {
				// Published before the unfollow: all of it, in order; after: nothing.
				if got, want := round.Received[k], round.Published[k]; !slices.Equal(got, want) {
					t.Errorf("key %s: received %v, want %v", k, got, want)
				}
			}
			if slices.Contains(round.Received[round.Keys[1]], round.UnfollowedSeq) {
				t.Errorf("seq %d of %s delivered after unfollow", round.UnfollowedSeq, round.Keys[1])
			}
		})
	}
	if len(rep.ConsoleErrors) > 0 {
		// Refused connections log errors by design; show them, they are no failure.
		t.Logf("browser console errors (%d), first: %s", len(rep.ConsoleErrors), rep.ConsoleErrors[0])
	}
}

// TestBrowserClientUnit runs integration/browser/client_unit.mjs: the
// browser client under node with a fake WebSocket and fetch, for what a
// real gateway cannot be made to do on cue (a silent socket, a gap, a 503
// with Retry-After, resync, a failed probe).
func TestBrowserClientUnit(t *testing.T) {
	runClientTests(t, "client_unit.mjs", 9)
}

// runClientTests runs integration/browser/<script> (built on client_kit.mjs)
// under node on the browser client, reports each of its tests, and wants at
// least want of them passed: a script that stops early must not pass.
func runClientTests(t *testing.T, script string, want int) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("%v: node is not on PATH (apt-get install nodejs)", errBrowserTools)
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "browser/"+script, "../client/push-gateway.js")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res struct {
		Passed []string `json:"passed"`
		Failed []struct {
			Name  string `json:"name"`
			Error string `json:"error"`
		} `json:"failed"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		t.Fatalf("%s: %v; no result (%v): %s%s", script, runErr, err, stdout.String(), stderr.String())
	}
	for _, name := range res.Passed {
		t.Logf("ok   %s", name)
	}
	for _, f := range res.Failed {
		t.Errorf("FAIL %s: %s", f.Name, f.Error)
	}
	if runErr != nil && len(res.Failed) == 0 {
		t.Fatalf("%s: %v\n%s", script, runErr, stderr.String())
	}
	if len(res.Passed) < want {
		t.Errorf("%s: %d tests passed, want %d", script, len(res.Passed), want)
	}
}

// checkScreenshot checks the page's state and that the picture shows it: each
// switch's track is green when on and grey when off, sampled on the side
// its knob is not.
func checkScreenshot(t *testing.T, rep *browserReport) {
	t.Helper()
	for name, on := range rep.Final {
		if rep.Toggles[name] != on {
			t.Errorf("page state %s=%v, want %v", name, rep.Toggles[name], on)
		}
	}
	f, err := os.Open(rep.Screenshot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(rep.Switches) < len(rep.Final) {
		t.Fatalf("%d switches on the page, want %d", len(rep.Switches), len(rep.Final))
	}
	for _, s := range rep.Switches {
		want, ok := rep.Final[s.Toggle]
		if !ok {
			continue
		}
		if s.On != want {
			t.Errorf("switch %s shows %v, want %v", s.Toggle, s.On, want)
		}
		x := s.X + s.W*0.8 // off: knob on the left, track on the right
		if want {
			x = s.X + s.W*0.2
		}
		c := img.At(int(x), int(s.Y+s.H/2))
		if got := isGreen(c); got != want {
			t.Errorf("screenshot: switch %s at (%.0f,%.0f) is %v: green=%v, want on=%v", s.Toggle, x, s.Y+s.H/2, c, got, want)
		}
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 400 {
		t.Errorf("screenshot is %v", b)
	}
}

// isGreen tells the "on" track colour (#16a34a) from the "off" one (#cbd5e1).
func isGreen(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return g > r+0x2000 && g > b+0x2000
}
