package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync/atomic"
)

// maxBody is the contract's default publish body limit.
const maxBody = 1 << 20

// ErrBadBody is answered with 400 for a publish body the contract rejects.
var ErrBadBody = errors.New("bad publish body")

// counter counts live connections.
type counter struct{ n atomic.Int64 }

func (c *counter) add(d int64) { c.n.Add(d) }

// admin serves the publish and stats routes.
type admin struct {
	hub   *hub
	conns *counter
}

func (a *admin) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /push_gateway/publish", a.publish)
	mux.HandleFunc("GET /push_gateway/stats", a.stats)
	// Caddy's admin endpoint serves pprof too; the runner forces a GC and
	// reads memory statistics through /debug/pprof/heap?gc=1&debug=1 on both.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	return mux
}

// publishReq is one message of a publish body.
type publishReq struct {
	SDKKey  string          `json:"sdk_key"`
	SDKKeys []string        `json:"sdk_keys"`
	Event   string          `json:"event"`
	Data    json.RawMessage `json:"data"`
}

// parsePublish reads a body that is one publishReq or an array of them.
func parsePublish(body []byte) ([]publishReq, error) {
	body = bytes.TrimSpace(body)
	var reqs []publishReq
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &reqs); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
		}
	} else {
		var r publishReq
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
		}
		reqs = []publishReq{r}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%w: no message", ErrBadBody)
	}
	for i := range reqs {
		r := &reqs[i]
		if r.SDKKey != "" {
			r.SDKKeys = append(r.SDKKeys, r.SDKKey)
		}
		if len(r.SDKKeys) == 0 {
			return nil, fmt.Errorf("%w: message %d has no sdk_key", ErrBadBody, i)
		}
		for _, k := range r.SDKKeys {
			if k == "" {
				return nil, fmt.Errorf("%w: message %d has an empty sdk_key", ErrBadBody, i)
			}
		}
		if r.Event == "" {
			r.Event = "update"
		}
		if len(r.Data) == 0 {
			r.Data = json.RawMessage("null")
		}
	}
	return reqs, nil
}

func (a *admin) publish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body over 1 MiB"})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	reqs, err := parsePublish(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	var out struct {
		Published []published `json:"published"`
	}
	for _, req := range reqs {
		for _, k := range req.SDKKeys {
			out.Published = append(out.Published, a.hub.publish(k, req.Event, req.Data))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// stats answers the contract's stats shape; only WebSocket exists here.
func (a *admin) stats(w http.ResponseWriter, _ *http.Request) {
	n := a.conns.n.Load()
	writeJSON(w, http.StatusOK, map[string]any{
		"connections": map[string]int64{"total": n, "websocket": n, "sse": 0, "poll": 0, "socketio": 0},
		"keys":        a.hub.keyCount(),
		"published":   a.hub.published.Load(),
		"delivered":   a.hub.delivered.Load(),
		"dropped":     a.hub.dropped.Load(),
		"goroutines":  runtime.NumGoroutine(),

		"slow_consumer_closes": a.hub.dropped.Load(),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
