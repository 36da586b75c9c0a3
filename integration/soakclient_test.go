package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The soak's clients: one per transport, each written from CONTRACT.md
// rather than from the gateway's code, so that the soak checks the contract.
// A client keeps, per key, the position it would resume from (epoch, last
// seq handled) and judges every message it gets against it: the next seq is
// handled, an older one is a duplicate, a newer one a gap. A resync is
// handled the way an application pulls full state: the resync's seq becomes
// the position.

// Soak transports.
const (
	soakWS   = "websocket"
	soakSSE  = "sse"
	soakPoll = "poll"
)

// Why a session ended, as the client's run loop sees it.
var (
	errSoakStopped  = errors.New("soak over")
	errSoakDropped  = errors.New("dropped by the client")
	errSoakRefused  = errors.New("gateway refused the request")
	errSoakProtocol = errors.New("gateway broke the contract")
)

// soakMaxFailures bounds consecutive sessions that end by the gateway's or
// the network's doing before the client gives up: a gateway that refuses
// every request must fail the soak, not spin it until its deadline.
const soakMaxFailures = 20

// soakTrack is what one client made of one key's stream.
type soakTrack struct {
	epoch   string // "" until a message or resync names it
	last    uint64 // newest seq handled (or pulled with a resync)
	resyncs int
	dups    int
	gaps    int
	sum     uint64 // of soakMix(seq, n) over the messages handled
}

// soakClock is the publisher's start, shared by every client: drop times
// count from it. at is written before started is closed.
type soakClock struct {
	started chan struct{}
	at      time.Time
}

// soakClient is one simulated client following keys over one transport.
type soakClient struct {
	id        int
	transport string
	keys      []string
	offsets   []time.Duration // drop times after the publisher starts, ascending
	node      *Node
	t         testing.TB
	clock     *soakClock
	ready     func() // called once the first session is established

	nextDrop   int  // index into offsets; owned by the run loop and its watcher in turn
	answered   bool // the session under way got an answer; owned by the run loop
	readyOnce  sync.Once
	sessions   atomic.Int64
	drops      atomic.Int64
	serverEnds atomic.Int64 // sessions ended by the gateway or the network

	mu     sync.Mutex
	tracks map[string]*soakTrack // guarded by mu
	errs   []string              // guarded by mu; the first few contract violations
}

func newSoakClient(t testing.TB, n *Node, clock *soakClock, id int, transport string, keys []string, offsets []time.Duration, ready func()) *soakClient {
	c := &soakClient{
		id: id, transport: transport, keys: keys, offsets: offsets,
		node: n, t: t, clock: clock, ready: ready,
		tracks: map[string]*soakTrack{},
	}
	for _, k := range keys {
		c.tracks[k] = &soakTrack{}
	}
	return c
}

func (c *soakClient) String() string { return fmt.Sprintf("%s client %d", c.transport, c.id) }

// violation records a broken contract; the test fails on any.
func (c *soakClient) violation(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violationLocked(format, args...)
}

// violationLocked is violation for a caller holding c.mu.
func (c *soakClient) violationLocked(format string, args ...any) {
	if len(c.errs) < 5 {
		c.errs = append(c.errs, fmt.Sprintf(format, args...))
	}
}

// message handles message seq of key in epoch with its data, {"i":<n>}:
// n numbers the publish call. Publishes run concurrently, so n need not
// follow seq; the client folds (seq, n) into a checksum that the soak
// compares with the pairs the publish answers gave, which proves each
// client got the data published under each seq.
func (c *soakClient) message(key, epoch string, seq uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.tracks[key]
	if k == nil {
		c.violationLocked("message for %q, a key it does not follow", key)
		return
	}
	if k.epoch != "" && epoch != k.epoch {
		c.violationLocked("%s: seq %d in epoch %q, but the epoch was %q and no resync came", key, seq, epoch, k.epoch)
	}
	k.epoch = epoch
	digits, ok := bytes.CutPrefix(data, []byte(`{"i":`))
	digits, ok2 := bytes.CutSuffix(digits, []byte("}"))
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if !ok || !ok2 || err != nil {
		c.violationLocked("%s: seq %d carries data %q", key, seq, truncate(data, 80))
	}
	switch {
	case seq <= k.last:
		k.dups++
		c.violationLocked("%s: duplicate seq %d after %d", key, seq, k.last)
		return
	case seq > k.last+1:
		k.gaps++
		c.violationLocked("%s: gap: seq %d after %d", key, seq, k.last)
	}
	k.last = seq
	k.sum += soakMix(seq, n)
}

// soakMix folds one (seq, publish number) pair into a checksum term: the
// sum of the terms changes when data moves from one seq to another.
func soakMix(seq, n uint64) uint64 {
	return (seq*0x9E3779B97F4A7C15 ^ n*0xC2B2AE3D27D4EB4F) * 0x94D049BB133111EB
}

// resync handles a resync: the application pulls full state, which is as
// new as seq, and goes on from there.
func (c *soakClient) resync(key, epoch string, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.tracks[key]
	if k == nil {
		c.violationLocked("resync for %q, a key it does not follow", key)
		return
	}
	if epoch == k.epoch && seq < k.last {
		c.violationLocked("%s: resync to seq %d in the same epoch after %d was handled", key, seq, k.last)
	}
	k.resyncs++
	k.epoch, k.last = epoch, seq
}

// observe checks an epoch the gateway names without a message (a poll
// answer, an SSE position event).
func (c *soakClient) observe(key, epoch string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.tracks[key]
	if k == nil {
		c.violationLocked("position for %q, a key it does not follow", key)
		return
	}
	if k.epoch != "" && epoch != k.epoch {
		c.violationLocked("%s: epoch %q named without a resync (was %q)", key, epoch, k.epoch)
	}
}

// position is where the client resumes key from.
func (c *soakClient) position(key string) (epoch string, last uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.tracks[key]
	return k.epoch, k.last
}

// snapshot copies the client's tracks and violations.
func (c *soakClient) snapshot() (map[string]soakTrack, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]soakTrack, len(c.tracks))
	for k, v := range c.tracks {
		out[k] = *v
	}
	return out, slices.Clone(c.errs)
}

// established notes that the gateway answered the session (handshake,
// stream head, poll request sent) and marks the client ready after its
// first one.
func (c *soakClient) established() {
	c.answered = true
	c.readyOnce.Do(c.ready)
}

// soakWatch is the drop timer and the stop signal of one session: it closes the
// session's connection at the client's next drop time (counting from the
// publisher's start) or when the soak ends, and says which it was.
type soakWatch struct {
	done    chan struct{}
	exited  chan struct{}
	dropped atomic.Bool
	stopped atomic.Bool
}

// watch starts the session's soakWatch over conn.
func (c *soakClient) watch(ctx context.Context, conn io.Closer) *soakWatch {
	w := &soakWatch{done: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(w.exited)
		select {
		case <-c.clock.started:
		case <-w.done:
			return
		case <-ctx.Done():
			w.stopped.Store(true)
			conn.Close()
			return
		}
		var fire <-chan time.Time
		if c.nextDrop < len(c.offsets) {
			tm := time.NewTimer(time.Until(c.clock.at.Add(c.offsets[c.nextDrop])))
			defer tm.Stop()
			fire = tm.C
		}
		select {
		case <-fire:
			c.nextDrop++
			w.dropped.Store(true)
			conn.Close()
		case <-ctx.Done():
			w.stopped.Store(true)
			conn.Close()
		case <-w.done:
		}
	}()
	return w
}

// stop ends the watcher and waits for it, so that the run loop owns
// nextDrop again.
func (w *soakWatch) stop() {
	close(w.done)
	<-w.exited
}

// cause turns the end of a session into errSoakStopped, errSoakDropped or
// err itself.
func (w *soakWatch) cause(err error) error {
	switch {
	case w.stopped.Load():
		return errSoakStopped
	case w.dropped.Load():
		return errSoakDropped
	}
	return err
}

// run connects, resumes and reconnects until ctx ends. It returns early
// only when the gateway keeps refusing it; the reason is a violation.
func (c *soakClient) run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		var err error
		c.answered = false
		switch c.transport {
		case soakWS:
			err = c.wsSession(ctx)
		case soakSSE:
			err = c.sseSession(ctx)
		case soakPoll:
			err = c.pollSession(ctx)
		}
		switch {
		case errors.Is(err, errSoakStopped):
			return
		case errors.Is(err, errSoakDropped):
			c.drops.Add(1)
			failures = 0
		case errors.Is(err, errSoakRefused), errors.Is(err, errSoakProtocol):
			c.violation("%v", err)
			return
		default:
			c.serverEnds.Add(1)
			if c.answered {
				failures = 0 // a session that worked for a while is no refusal
			}
			if failures++; failures > soakMaxFailures {
				c.violation("%d sessions in a row ended by the gateway or the network, the last: %v", failures, err)
				return
			}
		}
	}
}

// wsSession is one native WebSocket connection: register every key with
// its position, then handle messages until the connection ends.
func (c *soakClient) wsSession(ctx context.Context) error {
	cl, status, err := TryDial(c.t, c.node.WSURL(route), DialOpts{})
	if err != nil {
		if status != 0 {
			return fmt.Errorf("%w: websocket handshake: %d: %w", errSoakRefused, status, err)
		}
		return err
	}
	w := c.watch(ctx, cl.Conn())
	defer w.stop()
	defer cl.Close()
	c.sessions.Add(1)
	for _, key := range c.keys {
		epoch, last := c.position(key)
		// since 0 without an epoch takes the history as it is: the first
		// session gets everything from seq 1, whenever it connects.
		reg := `{"type":"register","sdk_key":` + quote(key) + `,"since":` + strconv.FormatUint(last, 10)
		if epoch != "" {
			reg += `,"epoch":` + quote(epoch)
		}
		if err := cl.WriteFrame(true, opText, []byte(reg+"}"), true); err != nil {
			return w.cause(err)
		}
	}
	registered := 0
	for {
		e, ok := cl.Next(5 * time.Second)
		if !ok {
			continue // quiet: the watcher ends the session
		}
		switch {
		case e.Err != nil:
			return w.cause(e.Err)
		case e.Op == opClose:
			return w.cause(fmt.Errorf("gateway closed with %d %q", e.Code, e.Reason))
		case e.Op != opText:
			continue
		}
		var m ServerMsg
		if err := json.Unmarshal(e.Data, &m); err != nil {
			return fmt.Errorf("%w: websocket message %q: %w", errSoakProtocol, truncate(e.Data, 100), err)
		}
		switch m.Type {
		case "registered":
			if registered++; registered == len(c.keys) {
				c.established()
			}
		case "message":
			c.message(m.SDKKey, m.Epoch, m.Seq, m.Data)
		case "resync":
			c.resync(m.SDKKey, m.Epoch, m.Seq)
		case "error":
			return fmt.Errorf("%w: error message %s", errSoakProtocol, e.Data)
		}
	}
}

// dialHTTP opens a plain TCP connection to the node's site.
func (c *soakClient) dialHTTP() (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	return d.Dial("tcp", strings.TrimPrefix(c.node.HTTP, "http://"))
}

// sseSession is one event stream of the client's single key, resumed with
// Last-Event-ID once an epoch is known and with ?since=0 before.
func (c *soakClient) sseSession(ctx context.Context) error {
	key := c.keys[0]
	conn, err := c.dialHTTP()
	if err != nil {
		return err
	}
	w := c.watch(ctx, conn)
	defer w.stop()
	defer conn.Close()
	c.sessions.Add(1)

	epoch, last := c.position(key)
	q := url.Values{"sdk_key": {key}}
	var hdr string
	if epoch == "" {
		q.Set("since", strconv.FormatUint(last, 10))
	} else {
		hdr = "Last-Event-ID: " + epoch + ":" + strconv.FormatUint(last, 10) + "\r\n"
	}
	target := route + "?" + q.Encode()
	reqText := "GET " + target + " HTTP/1.1\r\nHost: " + conn.RemoteAddr().String() +
		"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n" + hdr + "\r\n"
	if _, err := io.WriteString(conn, reqText); err != nil {
		return w.cause(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return w.cause(fmt.Errorf("reading the sse answer: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%w: GET %s: %s %q %q", errSoakRefused, target, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	c.established()

	events := bufio.NewReader(resp.Body)
	var id, event string
	var data []byte
	hasData := false
	for {
		line, err := events.ReadString('\n')
		if err != nil {
			return w.cause(fmt.Errorf("sse stream: %w", err))
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" { // dispatch
			if err := c.sseEvent(key, id, event, data, hasData); err != nil {
				return err
			}
			event, data, hasData = "", data[:0], false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment: heartbeat or prelude
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value // the last event id persists across events, as in EventSource
		case "event":
			event = value
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
		}
	}
}

// sseEvent handles one dispatched SSE event.
func (c *soakClient) sseEvent(key, id, event string, data []byte, hasData bool) error {
	if event == "resync" {
		var r struct {
			Epoch string `json:"epoch"`
			Seq   uint64 `json:"seq"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("%w: resync data %q: %w", errSoakProtocol, truncate(data, 100), err)
		}
		c.resync(key, r.Epoch, r.Seq)
		return nil
	}
	if !hasData && id == "" {
		return nil // e.g. the prelude's retry: EventSource dispatches nothing
	}
	epoch, seq, err := soakEventID(id)
	if err != nil {
		return fmt.Errorf("%w: event %q id %q: %w", errSoakProtocol, event, id, err)
	}
	if !hasData {
		// An id-only event names the stream's position; EventSource
		// dispatches nothing for it.
		c.observe(key, epoch)
		return nil
	}
	c.message(key, epoch, seq, data)
	return nil
}

// errSoakEventID is returned for an SSE id that is not "<epoch>:<seq>".
var errSoakEventID = errors.New("not <epoch>:<seq>")

// soakEventID splits an SSE id "<epoch>:<seq>"; the seq follows the last
// colon.
func soakEventID(id string) (string, uint64, error) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", 0, errSoakEventID
	}
	seq, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, errSoakEventID
	}
	return id[:i], seq, nil
}

// soakPollAnswer is a long-poll answer.
type soakPollAnswer struct {
	Keys map[string]struct {
		Epoch    string `json:"epoch"`
		Seq      uint64 `json:"seq"`
		Resync   bool   `json:"resync"`
		Messages []struct {
			Seq  uint64          `json:"seq"`
			Data json.RawMessage `json:"data"`
		} `json:"messages"`
	} `json:"keys"`
}

// soakPollWait is the wait a soak poll asks for: the soak's publisher
// answers it long before, and the soak's end closes it.
const soakPollWait = "10s"

// pollURL is the long-poll query for the client's keys at their positions.
func (c *soakClient) pollURL() string {
	q := url.Values{"wait": {soakPollWait}}
	for _, key := range c.keys {
		q.Add("sdk_key", key)
		epoch, last := c.position(key)
		sinceName, epochName := "since", "epoch"
		if len(c.keys) > 1 {
			sinceName, epochName = "since."+key, "epoch."+key
		}
		q.Set(sinceName, strconv.FormatUint(last, 10))
		if epoch != "" {
			q.Set(epochName, epoch)
		}
	}
	return route + "?" + q.Encode()
}

// pollSession is one keep-alive connection carrying long polls back to
// back, each from the positions the answers before it left.
func (c *soakClient) pollSession(ctx context.Context) error {
	conn, err := c.dialHTTP()
	if err != nil {
		return err
	}
	w := c.watch(ctx, conn)
	defer w.stop()
	defer conn.Close()
	c.sessions.Add(1)
	br := bufio.NewReader(conn)
	for {
		target := c.pollURL()
		reqText := "GET " + target + " HTTP/1.1\r\nHost: " + conn.RemoteAddr().String() + "\r\nAccept: application/json\r\n\r\n"
		if _, err := io.WriteString(conn, reqText); err != nil {
			return w.cause(err)
		}
		c.established()
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			return w.cause(fmt.Errorf("reading the poll answer: %w", err))
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return w.cause(fmt.Errorf("reading the poll body: %w", err))
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w: GET %s: %s %q", errSoakRefused, target, resp.Status, truncate(body, 300))
		}
		var ans soakPollAnswer
		if err := json.Unmarshal(body, &ans); err != nil {
			return fmt.Errorf("%w: poll answer %q: %w", errSoakProtocol, truncate(body, 200), err)
		}
		for _, key := range c.keys {
			k, ok := ans.Keys[key]
			if !ok {
				return fmt.Errorf("%w: poll answer without key %q: %q", errSoakProtocol, key, truncate(body, 200))
			}
			if k.Resync {
				c.resync(key, k.Epoch, k.Seq)
				continue
			}
			c.observe(key, k.Epoch)
			for _, m := range k.Messages {
				c.message(key, k.Epoch, m.Seq, m.Data)
			}
		}
		if resp.Close {
			return errors.New("gateway closed the keep-alive connection")
		}
	}
}

// dialSoakStallers opens count WebSocket clients following key that never
// read, with a small receive window: a stalled mobile client. The gateway
// must close each as a slow consumer (4429) without holding up anyone else.
//
// They also follow a key of their own that gets 5.6 MB of large messages at
// once: that fills the socket buffers the kernel grants them (autotuned up
// to tcp_wmem's 4 MiB: a receive window of zero does not stop it), so that
// the soak's small messages then fill their queues within seconds. The messages are shared by every queue and held by the
// key's history from before the warm-up on, so they weigh the same in the
// memory figures of the start and of the end.
func dialSoakStallers(t testing.TB, n *Node, key string, count int) []*Client {
	t.Helper()
	if count == 0 {
		return nil
	}
	pad := testKey(t, "stall-pad")
	var out []*Client
	for range count {
		out = append(out, DialWith(t, n.WSURL(route+"?sdk_key="+url.QueryEscape(key)+"&sdk_key="+url.QueryEscape(pad)),
			DialOpts{NoReader: true, RecvBuf: 4096}))
	}
	eventually(t, msgTimeout, func() (bool, string) {
		_, ki, b := n.Key(t, pad)
		return ki.Followers == count, fmt.Sprintf("stall key: %s, want %d followers", b, count)
	})
	data := `"` + strings.Repeat("x", 32<<10) + `"`
	for range 11 { // 11 × 16 × 32 KiB, each body under the admin's 1 MiB limit
		var body []byte
		for i := range 16 {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"sdk_key":`+quote(pad)+`,"data":`+data+`}`...)
		}
		if _, err := n.TryPublishBody(append(append([]byte{'['}, body...), ']')); err != nil {
			t.Fatalf("padding the stallers: %v", err)
		}
	}
	return out
}

// checkSoakStallers waits until the gateway closed every staller as a slow
// consumer, then reads what each was sent: its backlog, then close 4429 or,
// when the close frame found no room in a socket nobody read before the
// gateway's close grace ran out, the end of the connection.
func checkSoakStallers(t testing.TB, n *Node, stallers []*Client) {
	t.Helper()
	if len(stallers) == 0 {
		return
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		st := n.Stats(t)
		return st.SlowConsumerCloses >= uint64(len(stallers)), fmt.Sprintf("slow_consumer_closes %d, want at least %d stallers", st.SlowConsumerCloses, len(stallers))
	})
	codes := map[int]int{}
	for i, s := range stallers {
		s.StartReader()
		deadline := time.Now().Add(30 * time.Second)
		ended := false
		for !ended && time.Now().Before(deadline) {
			e, ok := s.Next(msgTimeout)
			switch {
			case !ok:
				t.Fatalf("staller %d: nothing more after %v and no close", i, msgTimeout)
			case e.Err != nil:
				codes[0]++ // the end of the connection without a close frame
				ended = true
			case e.Op == opClose:
				if e.Code != 4429 {
					t.Fatalf("staller %d: closed with %d, want 4429", i, e.Code)
				}
				codes[e.Code]++
				ended = true
			}
		}
		if !ended {
			t.Fatalf("staller %d: still open 30s after the gateway counted it closed", i)
		}
		s.Close()
	}
	t.Logf("soak: %d stallers closed as slow consumers (%d with a 4429 frame, %d with the connection's end)", len(stallers), codes[4429], codes[0])
}

// settledRSS forces two collections in caddy (the admin endpoint's pprof
// heap page with gc=1; objects with finalizers, closed sockets, go in the
// second) and answers its RSS in KiB once four samples 250ms apart lie
// within 1% (or 512 KiB) of each other, or after 15s.
func settledRSS(t testing.TB, n *Node) int64 {
	t.Helper()
	for range 2 {
		if status, b := n.AdminDo(t, http.MethodGet, "/debug/pprof/heap?gc=1", "", nil); status != http.StatusOK {
			t.Fatalf("forcing a GC in caddy: %d %s", status, truncate(b, 200))
		}
	}
	var window []int64
	deadline := time.Now().Add(15 * time.Second)
	for {
		window = append(window, n.rssKiB(t))
		if len(window) > 4 {
			window = window[1:]
		}
		if len(window) == 4 {
			lo, hi := slices.Min(window), slices.Max(window)
			if hi-lo <= max(hi/100, 512) {
				return window[3]
			}
		}
		if time.Now().After(deadline) {
			return window[len(window)-1]
		}
		time.Sleep(250 * time.Millisecond) // pacing the samples, not synchronisation
	}
}
