package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/netpoll"
	"github.com/pushgateway/push_gateway/protocol"
)

// Server-Sent Events come in two shapes. Over HTTP/1.1 the connection is
// hijacked and handed to the poller (sseSession): an idle stream is a
// descriptor in epoll, a struct and a subscription, with no goroutine (I4).
// HTTP/2 and HTTP/3 streams cannot be hijacked, so the handler goroutine
// serves them (sseStream): it exists for the request's life anyway.

const (
	// sseRetryMS is the reconnection delay EventSource is told to use.
	sseRetryMS = 2000
	// sseWriteTimeout bounds one write of a goroutine-served stream: a
	// client that does not read makes it fail instead of parking the
	// handler forever.
	sseWriteTimeout = 10 * time.Second
)

// Comments ending a stream, so that whoever reads the raw stream sees why.
var (
	sseByeShutdown   = []byte(": shutdown\n\n")
	sseByeSlow       = []byte(": slow_consumer\n\n")
	sseByeKeyDropped = []byte(": key_dropped\n\n")
)

// sseRequest is what an SSE request asks for.
type sseRequest struct {
	key    string
	since  uint64
	epoch  string
	resume bool   // since/epoch (or Last-Event-ID) were given
	cid    string // client id for acknowledgements; empty: none
}

// errBadLastEventID marks a Last-Event-ID we never sent; see parseSSERequest.
var errBadLastEventID = errors.New("unusable Last-Event-ID")

// parseSSERequest reads ?sdk_key=K[&since=N&epoch=E][&cid=C] and the
// Last-Event-ID header.
//
// Last-Event-ID wins over since/epoch: EventSource keeps the URL it was
// built with and sends the id of the last event it received on every
// reconnect, so the header is always the newer position. A Last-Event-ID
// that is not "<epoch>:<seq>" is answered with resync rather than 400: an
// EventSource gives up for good on an error status, while resync heals it.
func parseSSERequest(r *http.Request) (sseRequest, error) {
	q := r.URL.Query()
	var req sseRequest
	switch keys := q["sdk_key"]; len(keys) {
	case 0:
		return req, errors.New("sdk_key is required")
	case 1:
		req.key = keys[0]
	default:
		return req, errors.New("one key per SSE stream: give a single sdk_key")
	}
	if err := hub.ValidKey(req.key); err != nil {
		return req, fmt.Errorf("invalid sdk_key %q", req.key)
	}
	if cids := q["cid"]; len(cids) > 1 {
		return req, errors.New("give at most one cid")
	} else if len(cids) == 1 {
		if err := hub.ValidKey(cids[0]); err != nil {
			return req, fmt.Errorf("invalid cid %q", cids[0])
		}
		req.cid = cids[0]
	}
	_, hasSince := q["since"]
	_, hasEpoch := q["epoch"]
	if hasEpoch && !hasSince {
		return req, errors.New("epoch needs since")
	}
	if hasSince {
		n, err := strconv.ParseUint(q.Get("since"), 10, 64)
		if err != nil {
			return req, fmt.Errorf("since must be a non-negative integer, got %q", q.Get("since"))
		}
		req.since, req.epoch, req.resume = n, q.Get("epoch"), true
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		epoch, seq, err := protocol.ParseSSEID(id)
		if err != nil {
			// A position in no epoch, past any seq: Follow answers resync.
			epoch, seq = "", math.MaxUint64
		}
		req.since, req.epoch, req.resume = seq, epoch, true
	}
	return req, nil
}

// serveSSE serves Server-Sent Events: one key per stream, each message an
// event with id <epoch>:<seq>, resync as an event, comment heartbeats.
func (e *Engine) serveSSE(w http.ResponseWriter, r *http.Request, route *Route) error {
	req, err := parseSSERequest(r)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	if err := e.admitHTTP(w, r, req.key); err != nil { // key policy (keypolicy.go)
		return err
	}
	if e.closing.Load() {
		return writeError(w, http.StatusServiceUnavailable, "gateway shutting down")
	}
	if r.Method == http.MethodHead {
		setSSEHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if r.ProtoMajor == 1 {
		err := e.serveSSEPolled(w, r, route, req)
		if !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		// A response writer that cannot hijack (a wrapper without Unwrap):
		// nothing was written yet, so serve the stream from here.
	}
	return e.serveSSEStream(w, r, route, req)
}

// setSSEHeaders sets the headers of an event stream. X-Accel-Buffering
// keeps nginx-style proxies from holding events back.
func setSSEHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
}

// sseDroppedHeaders are not copied into a hijacked stream's head: hop-by-hop
// headers, and those describing a body length or encoding we do not use
// (the body is raw and ends with the connection).
var sseDroppedHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Transfer-Encoding", "Upgrade", "Te", "Trailer",
	"Content-Length", "Content-Encoding", "Content-Range",
}

// appendSSEHead appends the raw HTTP/1.1 response head of a hijacked
// stream: headers other middleware already set (a Server header, CORS),
// ours, and Connection: close — there is no Content-Length and no chunking,
// the body ends when the connection does.
func appendSSEHead(dst []byte, set http.Header) []byte {
	h := set.Clone()
	if h == nil {
		h = http.Header{}
	}
	for _, k := range sseDroppedHeaders {
		h.Del(k)
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			delete(h, k)
		}
	}
	setSSEHeaders(h)
	h.Set("Connection", "close")
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	buf := bytes.NewBuffer(append(dst, "HTTP/1.1 200 OK\r\n"...))
	_ = h.Write(buf) // sorted; line breaks in values become spaces
	buf.WriteString("\r\n")
	return buf.Bytes()
}

// serveSSEPolled hijacks an HTTP/1.1 connection and hands the stream to the
// poller. It returns an error wrapping http.ErrNotSupported, having written
// nothing, when the connection cannot be hijacked.
func (e *Engine) serveSSEPolled(w http.ResponseWriter, r *http.Request, route *Route, req sseRequest) error {
	head := appendSSEHead(nil, w.Header())
	head = protocol.AppendSSEPrelude(head, sseRetryMS)
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return fmt.Errorf("hijacking the connection: %w", err)
	}
	// The server's deadlines must not end a stream that is meant to last.
	_ = nc.SetDeadline(time.Time{})
	var buffered []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		b, _ := rw.Reader.Peek(rw.Reader.Buffered())
		buffered = append([]byte(nil), b...)
	}

	s := &sseSession{e: e, route: route, resume: req.resume}
	// The subscription exists before the connection is on the poller, so
	// that OnClose (a write failing at once) always finds it.
	s.sub = e.hub.Subscribe(s)
	c, err := e.poller.Add(nc, s)
	if err != nil {
		s.sub.Close()
		_ = nc.Close()
		return fmt.Errorf("adding connection to the poller: %w", err)
	}
	s.conn.Store(c)
	e.conns.SSE.Add(1)
	s.adm = keepAdmission(r) // released by OnClose (limits.go)
	// The head goes first and outside the queue limit: it is not a message.
	c.Enqueue(head, 0)
	e.subscribeSSE(s.sub, req)
	if err := s.sub.Follow(req.key, req.since, req.epoch, req.resume); err != nil || e.closing.Load() {
		// ErrClosed: the hub is shutting down or closed us. A Shutdown
		// that ran before the conn was stored skipped this stream.
		s.goAway()
	}
	c.SetTimer(route.get().Heartbeat)
	return e.startConn(c, buffered)
}

// subscribeSSE identifies the client before Follow: with a cid, a request
// resuming past a seq in a known epoch is that client's acknowledgement of
// it (SSE clients have no other way to confirm delivery).
func (e *Engine) subscribeSSE(sub *hub.Subscription, req sseRequest) {
	if req.cid == "" {
		return
	}
	sub.SetClientID(req.cid)
	if req.resume && req.epoch != "" {
		e.hub.AckClient(req.cid, req.key, req.epoch, req.since)
	}
}

// sseNotice encodes a per-stream notice. A stream that came with no
// position gets the key's position as an id-only event: EventSource then
// resumes from it after a reconnect instead of missing what was published
// meanwhile. A resuming stream already has a position, and moving it ahead
// of the replay would skip the replay after an early disconnect.
func sseNotice(n hub.Notice, resume bool) []byte {
	switch {
	case n.Kind == hub.NoticeResync:
		return protocol.AppendSSEResync(nil, n.Epoch, n.Seq)
	case n.Kind == hub.NoticeRegistered && !resume:
		return protocol.AppendSSEPosition(nil, n.Epoch, n.Seq)
	}
	return nil
}

// sseSession is one hijacked HTTP/1.1 event stream: a netpoll.Handler on
// the reading side and a hub.Follower on the writing side. An idle stream is
// this struct, its Conn and its Subscription, and a slot on the timing
// wheel for its heartbeat.
type sseSession struct {
	e      *Engine
	route  *Route
	conn   atomic.Pointer[netpoll.Conn] // set once, right after poller.Add
	sub    *hub.Subscription
	resume bool        // the request gave a position; see sseNotice
	ended  atomic.Bool // an end was decided; later ones are ignored
	adm    *admission  // the stream's share of the limits; OnClose releases it
}

var (
	_ hub.Follower    = (*sseSession)(nil)
	_ netpoll.Handler = (*sseSession)(nil)
)

// Deliver queues the event encoded once for every SSE follower (I3: never
// blocks; false marks a slow consumer).
func (s *sseSession) Deliver(m *hub.Message) bool {
	return s.conn.Load().EnqueueStamped(m.Encoded(protocol.SSE), s.e.queueLimit(s.route.get()), m.LiveStamp())
}

// Notify queues the stream's position or a resync event.
func (s *sseSession) Notify(n hub.Notice) bool {
	if b := sseNotice(n, s.resume); b != nil {
		return s.conn.Load().Enqueue(b, s.e.queueLimit(s.route.get()))
	}
	return true
}

// Close is the hub telling the stream to end. A slow consumer's backlog is
// dropped: EventSource reconnects with its Last-Event-ID and gets the rest
// from history.
func (s *sseSession) Close(r hub.Reason) {
	switch r {
	case hub.ReasonSlowConsumer:
		s.end(sseByeSlow, true)
	case hub.ReasonKeyDropped:
		s.end(sseByeKeyDropped, false)
	default:
		s.goAway()
	}
}

// goAway ends the stream because the gateway shuts down; the client
// reconnects, elsewhere or later.
func (s *sseSession) goAway() { s.end(sseByeShutdown, false) }

// end writes a last comment after what is queued (or instead of it) and
// closes the connection.
//
// Engine.Shutdown may reach the stream between poller.Add and the conn
// being stored: it is then skipped here, and serveSSEPolled, which checks
// the engine's closing flag after storing it, ends the stream itself.
func (s *sseSession) end(last []byte, dropQueued bool) {
	c := s.conn.Load()
	if c == nil || s.ended.Swap(true) {
		return
	}
	c.CloseWith(last, dropQueued)
	if ce := s.e.logger.Check(zap.DebugLevel, "closing sse stream"); ce != nil {
		ce.Write(zap.ByteString("reason", bytes.Trim(last, ": \n")), zap.Stringer("remote", c.RemoteAddr()))
	}
}

// OnRead discards what the client sends: after its request an SSE client
// has nothing to say, so bytes prove neither life nor death (EOF and failed
// writes do), and they are not kept.
func (s *sseSession) routeOf() *Route { return s.route }

func (s *sseSession) OnRead(c *netpoll.Conn, data []byte) int { return len(data) }

// OnTimer sends the heartbeat comment. There is no idle timeout: the
// client never writes, and a dead peer shows as a failed write.
func (s *sseSession) OnTimer(c *netpoll.Conn, now time.Time) time.Duration {
	set := s.route.get()
	if !c.Enqueue(protocol.SSEHeartbeat, s.e.queueLimit(set)) {
		s.e.slowCloses.Add(1)
		s.end(sseByeSlow, true)
		return 0
	}
	return set.Heartbeat
}

// OnClose releases the stream's key.
func (s *sseSession) OnClose(c *netpoll.Conn) {
	s.sub.Close()
	s.e.conns.SSE.Add(-1)
	s.adm.release()
}

// sseStream is an event stream served by its handler goroutine (HTTP/2,
// HTTP/3): the hub side queues into a bounded queue and wakes the handler,
// which writes and flushes.
type sseStream struct {
	e      *Engine
	route  *Route
	resume bool
	wake   chan struct{} // capacity 1: "the queue or the reason changed"

	mu     sync.Mutex
	queue  [][]byte   // guarded by mu
	reason hub.Reason // guarded by mu; non-zero: the hub ended the stream
}

var _ hub.Follower = (*sseStream)(nil)

// push queues b unless limit entries are waiting. It never blocks.
func (s *sseStream) push(b []byte, limit int) bool {
	s.mu.Lock()
	if s.reason != 0 {
		s.mu.Unlock()
		return true // ending: the handler has been told why
	}
	if limit > 0 && len(s.queue) >= limit {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	s.signal()
	return true
}

func (s *sseStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns what is queued and why the stream ends, if it does.
func (s *sseStream) take(buf [][]byte) ([][]byte, hub.Reason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf = append(buf, s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	return buf, s.reason
}

// Deliver queues the shared SSE event.
func (s *sseStream) Deliver(m *hub.Message) bool {
	return s.push(m.Encoded(protocol.SSE), s.e.queueLimit(s.route.get()))
}

// Notify queues the stream's position or a resync event.
func (s *sseStream) Notify(n hub.Notice) bool {
	if b := sseNotice(n, s.resume); b != nil {
		return s.push(b, s.e.queueLimit(s.route.get()))
	}
	return true
}

// Close tells the handler to end the stream.
func (s *sseStream) Close(r hub.Reason) {
	s.mu.Lock()
	if s.reason == 0 {
		s.reason = r
		if r == hub.ReasonSlowConsumer {
			clear(s.queue)
			s.queue = s.queue[:0]
		}
	}
	s.mu.Unlock()
	s.signal()
}

// serveSSEStream serves the stream from the handler goroutine until the
// client goes, a write fails or the hub ends the stream.
func (e *Engine) serveSSEStream(w http.ResponseWriter, r *http.Request, route *Route, req sseRequest) error {
	rc := http.NewResponseController(w)
	setSSEHeaders(w.Header())
	w.WriteHeader(http.StatusOK)

	s := &sseStream{e: e, route: route, resume: req.resume, wake: make(chan struct{}, 1)}
	s.queue = append(s.queue, protocol.AppendSSEPrelude(nil, sseRetryMS))
	sub := e.hub.Subscribe(s)
	defer sub.Close()
	e.conns.SSE.Add(1)
	defer e.conns.SSE.Add(-1)
	e.subscribeSSE(sub, req)
	if err := sub.Follow(req.key, req.since, req.epoch, req.resume); err != nil {
		s.Close(hub.ReasonShutdown)
	}

	heartbeat := route.get().Heartbeat
	ticker := time.NewTicker(heartbeat)
	defer ticker.Stop()
	var batch [][]byte
	for {
		var reason hub.Reason
		batch, reason = s.take(batch[:0])
		switch reason {
		case hub.ReasonSlowConsumer:
			batch = append(batch, sseByeSlow)
		case hub.ReasonKeyDropped:
			batch = append(batch, sseByeKeyDropped)
		case hub.ReasonShutdown:
			batch = append(batch, sseByeShutdown)
		}
		if len(batch) > 0 {
			err := writeFlush(rc, w, batch)
			clear(batch)
			if err != nil {
				return fmt.Errorf("writing sse stream: %w", err)
			}
		}
		if reason != 0 {
			return nil
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-s.wake:
		case <-ticker.C:
			if err := writeFlush(rc, w, [][]byte{protocol.SSEHeartbeat}); err != nil {
				return fmt.Errorf("writing sse heartbeat: %w", err)
			}
			if hb := route.get().Heartbeat; hb != heartbeat {
				heartbeat = hb
				ticker.Reset(hb)
			}
		}
	}
}

// writeFlush writes chunks and flushes them under sseWriteTimeout, then
// lifts the deadline again: an HTTP/2 stream whose write deadline passes is
// reset even when idle.
func writeFlush(rc *http.ResponseController, w http.ResponseWriter, chunks [][]byte) error {
	_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	for _, b := range chunks {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	err := rc.Flush()
	_ = rc.SetWriteDeadline(time.Time{})
	return err
}
