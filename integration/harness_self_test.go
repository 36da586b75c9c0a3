package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHarness proves the harness itself on a config without push_gateway:
// start, serve, reload, stop. When it fails, the others cannot pass.
func TestHarness(t *testing.T) {
	cfg := func(body string) string {
		return "{" + globalOptions + "}\n\nhttp://127.0.0.1:{$PORT} {\n\trespond \"" + body + "\" 200\n}\n"
	}
	get := func(t testing.TB, n *Node) string {
		t.Helper()
		resp, err := http.Get(n.HTTP + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	n := startCaddy(t, cfg("one"))
	if got := get(t, n); got != "one" {
		t.Fatalf("site answered %q", got)
	}
	n.Reload(t, cfg("two"))
	eventually(t, 10*time.Second, func() (bool, string) {
		got := get(t, n)
		return got == "two", "after reload: " + got
	})
	start := time.Now()
	n.Stop()
	if !n.Exited() {
		t.Fatal("not exited after Stop")
	}
	if el := time.Since(start); el > stopTimeout {
		t.Fatalf("stop took %v: SIGTERM was not enough", el)
	}
	if !strings.Contains(n.LogTail(50), "shutting down") {
		t.Logf("log tail:\n%s", n.LogTail(20))
	}
}
