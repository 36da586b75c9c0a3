// Package gwadmin calls the push_gateway routes on a server's admin
// endpoint that the benchmarks drive: the stats they read and the publish
// they time. Both the gateway and the baseline serve them with the same
// answers, so the benchmark commands share one client for them.
package gwadmin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxAnswer bounds what is read of an answer: a misbehaving server must not
// make the runner hold an unbounded body.
const maxAnswer = 1 << 20

// Stats reads GET /push_gateway/stats of the server whose admin endpoint is
// at admin (host:port) into v, which holds the fields the caller needs.
func Stats(c *http.Client, admin string, v any) error {
	resp, err := c.Get("http://" + admin + "/push_gateway/stats")
	if err != nil {
		return fmt.Errorf("getting stats: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("getting stats: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding stats: %w", err)
	}
	return nil
}

// Entry is one key's line in a publish answer.
type Entry struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
}

// Publish posts body, one message as JSON, to /push_gateway/publish and
// answers the seq the server gave it.
func Publish(c *http.Client, admin, body string) (uint64, error) {
	e, err := PublishEntry(c, admin, body)
	return e.Seq, err
}

// PublishEntry is Publish answering the key's whole entry (seq and epoch).
func PublishEntry(c *http.Client, admin, body string) (Entry, error) {
	resp, err := c.Post("http://"+admin+"/push_gateway/publish", "application/json", strings.NewReader(body))
	if err != nil {
		return Entry{}, fmt.Errorf("publishing: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK {
		return Entry{}, fmt.Errorf("publishing: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var ans struct {
		Published []Entry `json:"published"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || len(ans.Published) != 1 {
		return Entry{}, fmt.Errorf("publishing: unexpected answer %q", b)
	}
	return ans.Published[0], nil
}
