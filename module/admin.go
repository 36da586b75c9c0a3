package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/gateway"
	"github.com/pushgateway/push_gateway/hub"
)

func init() {
	caddy.RegisterModule(Admin{})
}

// adminPrefix is the admin API subtree the routes live under.
const adminPrefix = "/push_gateway/"

// Admin is the `admin.api.push_gateway` module: publishing and inspection on
// Caddy's admin endpoint, so access control stays with Caddy's admin
// settings.
//
//	POST   /push_gateway/publish   publish (see parsePublish for the body),
//	                               with "confirm": wait for local acks
//	GET    /push_gateway/stats     the Engine's counters
//	GET    /push_gateway/nodes     the live nodes, least loaded first, and this one's ID
//	GET    /push_gateway/keys/{K}  one key's epoch, seq, history and followers
//	DELETE /push_gateway/keys/{K}  close K's followers (4401), drop its history
//
// Caddy builds admin routers apart from the config's apps (before the first
// config, and again when the admin endpoint changes), so the Engine is
// looked up per request; without one the routes answer 503.
type Admin struct {
	logger *zap.Logger
	// backend returns the Engine to serve, or nil; tests replace it.
	backend func() backend
}

// backend is what the admin routes need of the Engine.
type backend interface {
	Publish(key, event string, data []byte) (hub.Published, error)
	// PublishConfirm publishes and tracks the local followers' acks.
	PublishConfirm(key, event string, data []byte) (hub.Published, confirmation, error)
	KeyInfo(key string) (hub.KeyInfo, bool, error)
	DropKey(key string) (hub.KeyInfo, bool, error)
	Stats() gateway.Stats
	Nodes(ctx context.Context) ([]hub.Node, error)
	NodeID() string
}

// confirmation is a published message whose acks are counted
// (*hub.Confirmation): Wait waits until all local followers it was written
// to acknowledged it or timeout passed, and stops the tracking.
type confirmation interface {
	Wait(timeout time.Duration) (acked, written int)
}

// engineBackend adapts the Engine and its hub to backend.
type engineBackend struct{ e *gateway.Engine }

func (b engineBackend) Publish(key, event string, data []byte) (hub.Published, error) {
	return b.e.Hub().Publish(key, event, data)
}
func (b engineBackend) PublishConfirm(key, event string, data []byte) (hub.Published, confirmation, error) {
	p, c, err := b.e.Hub().PublishConfirm(key, event, data)
	if err != nil {
		return p, nil, err // not a typed nil in the interface
	}
	return p, c, nil
}
func (b engineBackend) KeyInfo(key string) (hub.KeyInfo, bool, error) {
	return b.e.Hub().KeyInfo(key)
}
func (b engineBackend) DropKey(key string) (hub.KeyInfo, bool, error) {
	return b.e.Hub().DropKey(key)
}
func (b engineBackend) Stats() gateway.Stats { return b.e.Stats() }
func (b engineBackend) Nodes(ctx context.Context) ([]hub.Node, error) {
	return b.e.Nodes(ctx)
}
func (b engineBackend) NodeID() string { return b.e.NodeID() }

func runningBackend() backend {
	e := runningEngine()
	if e == nil {
		return nil
	}
	return engineBackend{e}
}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.push_gateway",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Provision sets up the logger and registers the metrics (metrics.go).
func (a *Admin) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a)
	registerMetrics(ctx.GetMetricsRegistry(), a.logger) // metrics.go
	return nil
}

// Routes returns the one subtree route; serve dispatches within it so that
// unknown paths and wrong methods get the contract's 404 and 405.
func (a *Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func (a *Admin) serve(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), adminPrefix)
	switch {
	case rest == "publish":
		if err := allowMethod(w, r, http.MethodPost); err != nil {
			return err
		}
		return a.withBackend(w, r, a.handlePublish)
	case rest == "stats":
		if err := allowMethod(w, r, http.MethodGet); err != nil {
			return err
		}
		return a.withBackend(w, r, a.handleStats)
	case rest == "nodes":
		if err := allowMethod(w, r, http.MethodGet); err != nil {
			return err
		}
		return a.withBackend(w, r, a.handleNodes)
	case strings.HasPrefix(rest, "keys/"):
		if err := allowMethod(w, r, http.MethodGet, http.MethodDelete); err != nil {
			return err
		}
		return a.withBackend(w, r, a.handleKey)
	default:
		return apiError(http.StatusNotFound, fmt.Errorf("unknown route %s", r.URL.Path))
	}
}

func (a *Admin) withBackend(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request, backend) error) error {
	lookup := a.backend
	if lookup == nil {
		lookup = runningBackend
	}
	b := lookup()
	if b == nil {
		return apiError(http.StatusServiceUnavailable, errors.New("push_gateway is not running"))
	}
	return h(w, r, b)
}

// publishAnswer is the publish route's answer.
type publishAnswer struct {
	Published []publishedEntry `json:"published"`
}

// publishedEntry is one key's outcome; a publish with confirm adds how many
// local followers the message was written to and how many acknowledged it.
type publishedEntry struct {
	hub.Published
	Acked   *int `json:"acked,omitempty"`
	Written *int `json:"written,omitempty"`
}

// pendingConfirm is a confirmation still to wait for, and where its
// counts go.
type pendingConfirm struct {
	c        confirmation
	entry    int       // index in publishAnswer.Published
	deadline time.Time // publish time plus the message's confirm window
}

func (a *Admin) handlePublish(w http.ResponseWriter, r *http.Request, b backend) error {
	if err := admitPublish(w, b); err != nil { // publish_rate: 429 (limits.go)
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPublishBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apiError(http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", tooBig.Limit))
		}
		return apiError(http.StatusBadRequest, fmt.Errorf("reading body: %w", err))
	}
	msgs, err := parsePublish(body)
	if err != nil {
		return apiError(http.StatusBadRequest, err)
	}
	logger := a.log()
	var (
		ans     publishAnswer
		pending []pendingConfirm
	)
	for _, m := range msgs {
		for _, key := range m.Keys {
			var (
				p    hub.Published
				conf confirmation
				err  error
			)
			if m.Confirm > 0 {
				p, conf, err = b.PublishConfirm(key, m.Event, m.Data)
			} else {
				p, err = b.Publish(key, m.Event, m.Data)
			}
			if err != nil {
				// Stop tracking what was published before: nobody will
				// wait for it.
				for _, pc := range pending {
					pc.c.Wait(0)
				}
				return a.publishFailed(w, key, ans, err)
			}
			if c := logger.Check(zap.DebugLevel, "published"); c != nil {
				c.Write(zap.String("sdk_key", key), zap.String("event", m.Event),
					zap.String("epoch", p.Epoch), zap.Uint64("seq", p.Seq),
					zap.Int("local_receivers", p.LocalReceivers), zap.Int("bytes", len(m.Data)))
			}
			if conf != nil {
				pending = append(pending, pendingConfirm{c: conf, entry: len(ans.Published), deadline: time.Now().Add(m.Confirm)})
			}
			ans.Published = append(ans.Published, publishedEntry{Published: p})
		}
	}
	// Every confirmation runs from its own publish; waiting on them one
	// after the other, each until its own deadline, waits for all of them
	// in parallel: the answer comes once all are acked or the last window
	// is over.
	for _, pc := range pending {
		acked, written := pc.c.Wait(time.Until(pc.deadline))
		e := &ans.Published[pc.entry]
		e.Acked, e.Written = &acked, &written
		if c := logger.Check(zap.DebugLevel, "publish confirmed"); c != nil {
			c.Write(zap.String("sdk_key", e.Key), zap.Uint64("seq", e.Seq),
				zap.Int("acked", acked), zap.Int("written", written))
		}
	}
	return writeJSON(w, ans)
}

// partialPublish is the answer of a publish that failed after some of its
// messages were published: the publisher retries only the others.
type partialPublish struct {
	Error     string           `json:"error"`
	Published []publishedEntry `json:"published"`
}

// publishFailed answers a publish that failed at key. When messages before
// it were published, their entries go with the error (partialPublish):
// caddy.APIError carries a message only, so that answer is written here,
// and logged here since Caddy will not.
func (a *Admin) publishFailed(w http.ResponseWriter, key string, ans publishAnswer, err error) error {
	apiErr := backendError(fmt.Sprintf("publishing to %q", clip(key)), err)
	if len(ans.Published) == 0 {
		return apiErr
	}
	a.log().Error("publish failed midway", zap.Int("status", apiErr.HTTPStatus),
		zap.Int("published", len(ans.Published)), zap.Error(apiErr.Err))
	body, mErr := json.Marshal(partialPublish{Error: apiErr.Err.Error(), Published: ans.Published})
	if mErr != nil {
		return apiError(http.StatusInternalServerError, fmt.Errorf("encoding answer: %w", mErr))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(apiErr.HTTPStatus)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// backendError maps an error of the Engine, met while doing what doing
// says, onto the admin answer: 400 for a key or event the hub refuses, 503
// when the broker cannot be reached ("broker unavailable: …") or the hub
// is closing, 500 otherwise.
func backendError(doing string, err error) caddy.APIError {
	err = fmt.Errorf("%s: %w", doing, err)
	switch {
	case errors.Is(err, hub.ErrBadKey), errors.Is(err, hub.ErrBadEvent):
		return apiError(http.StatusBadRequest, err)
	case errors.Is(err, hub.ErrUnavailable):
		return apiError(http.StatusServiceUnavailable, fmt.Errorf("broker unavailable: %w", err))
	case errors.Is(err, hub.ErrClosed):
		return apiError(http.StatusServiceUnavailable, err)
	default:
		return apiError(http.StatusInternalServerError, err)
	}
}

func (a *Admin) handleStats(w http.ResponseWriter, _ *http.Request, b backend) error {
	return writeJSON(w, b.Stats())
}

// nodesTimeout bounds the node registry read of GET /push_gateway/nodes.
const nodesTimeout = 5 * time.Second

// nodesAnswer is the nodes route's answer.
type nodesAnswer struct {
	Self  string     `json:"self"`
	Nodes []hub.Node `json:"nodes"`
}

func (a *Admin) handleNodes(w http.ResponseWriter, r *http.Request, b backend) error {
	ctx, cancel := context.WithTimeout(r.Context(), nodesTimeout)
	defer cancel()
	nodes, err := b.Nodes(ctx)
	if err != nil {
		if !errors.Is(err, hub.ErrClosed) && !errors.Is(err, hub.ErrUnavailable) {
			// The registry lives in the broker: any failure to read it is
			// the broker's.
			err = fmt.Errorf("%w: %w", hub.ErrUnavailable, err)
		}
		return backendError("listing nodes", err)
	}
	return writeJSON(w, nodesAnswer{Self: b.NodeID(), Nodes: nodes})
}

func (a *Admin) handleKey(w http.ResponseWriter, r *http.Request, b backend) error {
	escaped := strings.TrimPrefix(r.URL.EscapedPath(), adminPrefix+"keys/")
	key, err := url.PathUnescape(escaped)
	if err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("sdk key in path: %w", err))
	}
	if err := hub.ValidKey(key); err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("sdk key %q: %w", clip(key), err))
	}
	var (
		info hub.KeyInfo
		ok   bool
	)
	if r.Method == http.MethodDelete {
		info, ok, err = b.DropKey(key)
		if err != nil {
			return backendError(fmt.Sprintf("dropping key %q", clip(key)), err)
		}
		if ok {
			a.log().Info("dropped key", zap.String("sdk_key", key), zap.String("epoch", info.Epoch),
				zap.Uint64("seq", info.Seq), zap.Int("followers", info.Followers))
		}
	} else {
		info, ok, err = b.KeyInfo(key)
		if err != nil {
			return backendError(fmt.Sprintf("reading key %q", clip(key)), err)
		}
	}
	if !ok {
		return apiError(http.StatusNotFound, fmt.Errorf("unknown sdk key %q", clip(key)))
	}
	return writeJSON(w, info)
}

func (a *Admin) log() *zap.Logger {
	if a.logger == nil {
		return zap.NewNop()
	}
	return a.logger
}

// allowMethod answers 405 unless r's method is one of methods.
func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	return apiError(http.StatusMethodNotAllowed,
		fmt.Errorf("method %s not allowed on %s (want %s)", r.Method, r.URL.Path, strings.Join(methods, " or ")))
}

func apiError(status int, err error) caddy.APIError {
	return caddy.APIError{HTTPStatus: status, Err: err}
}

func writeJSON(w http.ResponseWriter, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return apiError(http.StatusInternalServerError, fmt.Errorf("encoding answer: %w", err))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner = (*Admin)(nil)
	_ caddy.AdminRouter = (*Admin)(nil)
)
