package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/hub"
)

// This file is the engine's side of the node registry (seed 003's
// ip-config): while the engine runs, one goroutine announces the node
// (identity and connections) every NodeTTL/3 with a time to live of
// NodeTTL; Shutdown stops it and leaves the list before it closes a single
// connection, so clients told 1001 "reconnect elsewhere" do not pick this
// node again. Nodes lists the live nodes, least loaded first, for
// <route>/nodes and the admin API.

const (
	// nodeLeaveTimeout bounds Shutdown's Leave: a broker that hangs must
	// not hold the 1001s back; the announcement's TTL covers a lost Leave.
	nodeLeaveTimeout = time.Second
	// nodesReadTimeout bounds the registry read of one <route>/nodes request.
	nodesReadTimeout = 2 * time.Second
)

// DefaultNodeID returns the host name, "-" and 6 random characters: unique
// among the nodes of a deployment (two processes on one host included) and
// still readable in the list. The Engine calls it once and keeps the value
// for its life, reloads included.
func DefaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [6]byte
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return host + "-" + string(b[:])
}

// nodeConfig is the node's identity and announcement TTL, defaults filled
// in; Configure swaps it and wakes the announcer.
type nodeConfig struct {
	info NodeInfo
	ttl  time.Duration
}

// nodeConfigOf fills cfg's node settings in with the defaults; defaultID
// is the Engine's own.
func nodeConfigOf(cfg Config, defaultID string) *nodeConfig {
	nc := &nodeConfig{info: cfg.Node, ttl: cfg.NodeTTL}
	if nc.info.ID == "" {
		nc.info.ID = defaultID
	}
	if nc.ttl <= 0 {
		nc.ttl = DefaultNodeTTL
	}
	return nc
}

// announcer is the announcing goroutine's state. New uses it once before
// starting the goroutine; from then on only the goroutine does, and
// Shutdown reads last after the goroutine ended.
type announcer struct {
	e       *Engine
	failing bool   // the latest announcement failed (logged once per change)
	last    string // ID of the latest successful announcement; "" when none
}

// announce announces the node once, leaving the list first under an ID the
// node no longer has (a reload changed node_id).
func (a *announcer) announce(ctx context.Context) {
	e := a.e
	nc := e.node.Load()
	if a.last != "" && a.last != nc.info.ID {
		a.leave(ctx, nc.ttl/3)
	}
	now := time.Now().UnixMilli()
	n := hub.Node{
		ID: nc.info.ID, Address: nc.info.Address, Zone: nc.info.Zone,
		Connections: int(e.connections()), Started: e.started, Updated: now,
	}
	// An announcement that takes longer than the period is already late.
	actx, cancel := context.WithTimeout(ctx, nc.ttl/3)
	err := e.registry.Announce(actx, n, nc.ttl)
	cancel()
	switch {
	case err != nil && !a.failing:
		a.failing = true
		e.logger.Warn("node announcement failed: the node may be missing from the node list",
			zap.String("node_id", n.ID), zap.Error(err))
	case err == nil && a.failing:
		a.failing = false
		e.logger.Info("node announcement recovered", zap.String("node_id", n.ID))
	}
	if err == nil {
		a.last = n.ID
	}
}

// leave removes the latest announced ID from the list, waiting at most
// timeout. A node that never made it into the list has nothing to leave.
func (a *announcer) leave(ctx context.Context, timeout time.Duration) {
	if a.last == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := a.e.registry.Leave(ctx, a.last); err != nil {
		a.e.logger.Warn("leaving the node list failed: the node stays listed until its announcement expires",
			zap.String("node_id", a.last), zap.Error(err))
	}
	a.last = ""
}

// run announces every ttl/3, and at once when wake fires, until ctx ends.
func (a *announcer) run(ctx context.Context, wake <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(a.e.node.Load().ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		a.announce(ctx)
		t.Reset(a.e.node.Load().ttl / 3)
	}
}

// startAnnouncing announces the node once when the registry is the
// in-process one (it cannot fail, and /nodes lists the node from the
// start), then starts the announcing goroutine, which announces first
// thing otherwise.
func (e *Engine) startAnnouncing() {
	a := &announcer{e: e}
	e.announcer = a
	ctx, cancel := context.WithCancel(context.Background())
	e.stopAnnouncing = cancel
	e.announceWake = make(chan struct{}, 1)
	e.announceDone = make(chan struct{})
	if _, local := e.registry.(*selfRegistry); local {
		a.announce(ctx)
	} else {
		e.announceWake <- struct{}{}
	}
	go a.run(ctx, e.announceWake, e.announceDone)
}

// setNode applies a reloaded node identity or TTL: the announcer announces
// it at once, leaving the list under a changed ID.
func (e *Engine) setNode(cfg Config) {
	e.node.Store(nodeConfigOf(cfg, e.defaultID))
	select {
	case e.announceWake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// leaveNodes stops announcing and takes the node off the list, waiting at
// most nodeLeaveTimeout for the registry. Shutdown calls it before it
// closes any connection.
func (e *Engine) leaveNodes() {
	e.stopAnnouncing()
	<-e.announceDone
	e.announcer.leave(context.Background(), nodeLeaveTimeout)
}

// Nodes lists the live nodes, least connections first (ties by ID, so the
// order is stable); in single-node mode only this one. An error wraps the
// registry's (wrapping hub.ErrUnavailable when the broker is unreachable).
func (e *Engine) Nodes(ctx context.Context) ([]hub.Node, error) {
	nodes, err := e.registry.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(nodes, func(a, b hub.Node) int {
		return cmp.Or(cmp.Compare(a.Connections, b.Connections), strings.Compare(a.ID, b.ID))
	})
	if nodes == nil {
		nodes = []hub.Node{} // "nodes":[] rather than null
	}
	return nodes, nil
}

// NodeID returns this node's ID.
func (e *Engine) NodeID() string { return e.node.Load().info.ID }

// nodesAnswer is the body of <route>/nodes.
type nodesAnswer struct {
	Nodes []hub.Node `json:"nodes"`
}

// serveNodes answers GET and HEAD of <route>/nodes with the live nodes,
// least loaded first, and reports whether it did; ServeHTTP calls it
// before picking a transport. Any origin may read the answer: a browser
// client served from elsewhere picks its gateway with it. A WebSocket
// upgrade or an SSE request on that path is left to the transports.
func (e *Engine) serveNodes(w http.ResponseWriter, r *http.Request) (handled bool) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || isWebSocket(r) || acceptsEventStream(r) ||
		!strings.HasSuffix(r.URL.Path, "/nodes") {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	ctx, cancel := context.WithTimeout(r.Context(), nodesReadTimeout)
	defer cancel()
	nodes, err := e.Nodes(ctx)
	if err != nil {
		// The cause (a Redis address, say) is for the operator's log, not
		// for the public.
		if c := e.logger.Check(zap.DebugLevel, "node list unavailable"); c != nil {
			c.Write(zap.Error(err))
		}
		_ = writeError(w, http.StatusServiceUnavailable, "node list unavailable")
		return true
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store") // the load changes every announcement
	_ = json.NewEncoder(w).Encode(nodesAnswer{Nodes: nodes})
	return true
}

// selfRegistry is the node registry of a single node: it lists the node's
// latest announcement. It needs no TTL: a node that answers is alive.
type selfRegistry struct {
	mu   sync.Mutex
	node *hub.Node // guarded by mu; nil before the first announcement and after Leave
}

func (s *selfRegistry) Announce(_ context.Context, n hub.Node, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node = &n
	return nil
}

func (s *selfRegistry) Leave(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.node != nil && s.node.ID == id {
		s.node = nil
	}
	return nil
}

func (s *selfRegistry) Nodes(context.Context) ([]hub.Node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.node == nil {
		return []hub.Node{}, nil
	}
	return []hub.Node{*s.node}, nil
}

var _ hub.Registry = (*selfRegistry)(nil)
