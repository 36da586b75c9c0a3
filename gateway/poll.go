package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
)

// DefaultPollWait is how long a long poll that names no `wait` is held.
const DefaultPollWait = 25 * time.Second

// errBadPoll marks every error of parsePoll: the request is answered 400.
var errBadPoll = errors.New("bad poll request")

// pollFormat is a message as a long-poll answer lists it,
// {"seq":44,"event":"update","data":…,"ts":…}: encoded once per message and
// shared by every poll answer that carries it.
var pollFormat = hub.NewFormat("poll", func(m *hub.Message) []byte {
	return appendPollMessage(make([]byte, 0, 48+len(m.Event)+len(m.Data)), m)
})

func appendPollMessage(dst []byte, m *hub.Message) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, m.Seq, 10)
	dst = append(dst, `,"event":`...)
	dst = protocol.AppendString(dst, m.Event)
	dst = append(dst, `,"data":`...)
	if len(m.Data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, m.Data...)
	}
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, m.TS, 10)
	return append(dst, '}')
}

// testHookPollHold, when set by a test, runs between the history read that
// found nothing and the hold: where a publish must not be lost.
var testHookPollHold func()

// pollKey is one key of a poll request and the client's position in it.
type pollKey struct {
	key   string
	since uint64
	epoch string
}

// pollRequest is a parsed long-poll query.
type pollRequest struct {
	keys []pollKey
	wait time.Duration
	cid  string // client id for acknowledgements; "" for none
}

// parsePoll reads a long-poll query:
//
//	sdk_key=K&since=N&epoch=E&wait=25s&cid=C
//	sdk_key=K1&sdk_key=K2&since.K1=N&epoch.K1=E&since.K2=…&wait=25s&cid=C
//
// The plain since/epoch are for a single key; with several keys they would
// be ambiguous and are refused. A missing since is 0 (no history seen). The
// wait defaults to DefaultPollWait and is capped by maxWait. Parameters it
// does not know (a cache buster) are ignored. Every error wraps errBadPoll.
func parsePoll(q url.Values, maxKeys int, maxWait time.Duration) (pollRequest, error) {
	req, err := parsePollQuery(q, maxKeys, maxWait)
	if err != nil {
		return pollRequest{}, fmt.Errorf("%w: %w", errBadPoll, err)
	}
	return req, nil
}

func parsePollQuery(q url.Values, maxKeys int, maxWait time.Duration) (pollRequest, error) {
	var req pollRequest
	names := q["sdk_key"]
	if len(names) == 0 {
		return req, errors.New("sdk_key is required")
	}
	if maxKeys > 0 && len(names) > maxKeys {
		return req, fmt.Errorf("%d sdk keys, at most %d allowed", len(names), maxKeys)
	}
	req.keys = make([]pollKey, len(names))
	for i, k := range names {
		if err := hub.ValidKey(k); err != nil {
			return req, fmt.Errorf("sdk_key %q: %w", pollClip(k), err)
		}
		for _, prev := range names[:i] {
			if prev == k {
				return req, fmt.Errorf("sdk_key %q given twice", pollClip(k))
			}
		}
		req.keys[i].key = k
	}
	for name, vals := range q {
		var (
			key     string
			isSince bool
		)
		switch {
		case name == "since" || name == "epoch":
			if len(names) > 1 {
				return req, fmt.Errorf("%s is ambiguous with several sdk keys: use %s.<sdk_key>", name, name)
			}
			key, isSince = names[0], name == "since"
		case strings.HasPrefix(name, "since."):
			key, isSince = name[len("since."):], true
		case strings.HasPrefix(name, "epoch."):
			key = name[len("epoch."):]
		default:
			continue
		}
		pk := req.find(key)
		if pk == nil {
			return req, fmt.Errorf("%s: sdk key %q is not requested", pollClip(name), pollClip(key))
		}
		if len(vals) != 1 {
			return req, fmt.Errorf("%s given %d times", pollClip(name), len(vals))
		}
		if !isSince {
			pk.epoch = vals[0]
			continue
		}
		n, err := strconv.ParseUint(vals[0], 10, 64)
		if err != nil {
			return req, fmt.Errorf("%s %q: want a non-negative integer", pollClip(name), pollClip(vals[0]))
		}
		pk.since = n
	}
	// since and since.K for the one key is the same position given twice.
	if len(names) == 1 {
		for _, p := range []string{"since", "epoch"} {
			if q.Has(p) && q.Has(p+"."+names[0]) {
				return req, fmt.Errorf("%s given twice (as %s and %s.%s)", p, p, p, pollClip(names[0]))
			}
		}
	}

	req.wait = DefaultPollWait
	if vals, ok := q["wait"]; ok {
		if len(vals) != 1 {
			return req, fmt.Errorf("wait given %d times", len(vals))
		}
		d, err := time.ParseDuration(vals[0])
		if err != nil || d < 0 {
			return req, fmt.Errorf("wait %q: want a duration like 25s", pollClip(vals[0]))
		}
		req.wait = d
	}
	req.wait = min(req.wait, maxWait)

	if vals, ok := q["cid"]; ok {
		if len(vals) != 1 {
			return req, fmt.Errorf("cid given %d times", len(vals))
		}
		// A cid follows the rules of a key: bounded and printable.
		if err := hub.ValidKey(vals[0]); err != nil {
			return req, fmt.Errorf("cid %q: must be 1 to %d printable bytes", pollClip(vals[0]), hub.MaxKeyLen)
		}
		req.cid = vals[0]
	}
	return req, nil
}

func (r *pollRequest) find(key string) *pollKey {
	for i := range r.keys {
		if r.keys[i].key == key {
			return &r.keys[i]
		}
	}
	return nil
}

// pollWaiter is a held poll as the hub sees it: anything worth answering
// for wakes the request's goroutine, which then reads the answer from
// history. It never fails, so the hub never counts it a slow consumer.
type pollWaiter struct {
	wake chan struct{} // capacity 1: one pending wake-up is enough
}

func (p *pollWaiter) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Deliver wakes the request for a published (or replayed) message.
func (p *pollWaiter) Deliver(*hub.Message) bool { p.signal(); return true }

// Notify wakes the request on resync; registered says nothing new.
func (p *pollWaiter) Notify(n hub.Notice) bool {
	if n.Kind == hub.NoticeResync {
		p.signal()
	}
	return true
}

// Close wakes the request: the key was dropped (its answer is a resync) or
// the hub is shutting down (the answer is a 503).
func (p *pollWaiter) Close(hub.Reason) { p.signal() }

var _ hub.Follower = (*pollWaiter)(nil)

// servePoll serves long polling: it answers at once when a key has messages
// after the client's since or needs a resync, and otherwise holds the
// request until one does, until wait runs out or until the client leaves.
// A held request is this goroutine (the HTTP server's) parked on a channel
// and a subscription: no busy loop, no goroutine of its own.
//
// The answer is built from history (hub.Read) both times: the waiter only
// says when to build it.
func (e *Engine) servePoll(w http.ResponseWriter, r *http.Request, route *Route) error {
	set := route.get()
	req, err := parsePoll(r.URL.Query(), set.MaxKeysPerConn, set.PollMaxWait)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	if err := e.admitPoll(w, r, req.keys); err != nil { // key policy (keypolicy.go)
		return err
	}
	if e.closing.Load() {
		return writeError(w, http.StatusServiceUnavailable, "the gateway is shutting down")
	}
	if r.Method == http.MethodHead {
		req.wait = 0 // a HEAD gets no body: holding it would tell nothing
	}
	// Coming back past a seq acknowledges it for the client id: the answer
	// that carried it reached the client. (AckClient ignores other epochs.)
	for _, k := range req.keys {
		if k.since > 0 {
			e.hub.AckClient(req.cid, k.key, k.epoch, k.since)
		}
	}
	body, ready, err := e.pollAnswer(make([]byte, 0, 256), req.keys)
	if err == nil && !ready && req.wait > 0 {
		if testHookPollHold != nil {
			testHookPollHold()
		}
		if err := e.pollHold(r, &req); err != nil {
			return err // the client left: nobody to answer
		}
		// The same code path builds every answer, from history.
		body, _, err = e.pollAnswer(body[:0], req.keys)
	}
	if err != nil {
		return e.pollFailed(w, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(body)
	return err
}

// pollHold parks the request until a key has news, req.wait passes or the
// client goes away (then it returns the context's error). Follow replays
// and resyncs under the hub's lock, so a message published after the first
// answer read the history still wakes the waiter: no wake-up is lost.
func (e *Engine) pollHold(r *http.Request, req *pollRequest) error {
	e.conns.Poll.Add(1)
	defer e.conns.Poll.Add(-1)
	wt := &pollWaiter{wake: make(chan struct{}, 1)}
	sub := e.hub.Subscribe(wt)
	defer sub.Close()
	sub.SetMaxKeys(-1) // parsePoll bounded the keys by the route's limit
	sub.SetClientID(req.cid)
	for _, k := range req.keys {
		if err := sub.Follow(k.key, k.since, k.epoch, true); err != nil {
			// Closed (shutdown): the answer's Read reports it.
			return nil
		}
	}
	t := time.NewTimer(req.wait)
	defer t.Stop()
	select {
	case <-wt.wake:
	case <-t.C:
	case <-r.Context().Done():
		return r.Context().Err()
	}
	return nil
}

// pollAnswer appends the answer for keys to dst, from the hub's history:
//
//	{"keys":{"K":{"epoch":"E","seq":45,"messages":[…],"resync":false},…}}
//
// ready reports whether any key has messages or needs a resync: an answer
// worth sending before the wait is over.
func (e *Engine) pollAnswer(dst []byte, keys []pollKey) (out []byte, ready bool, err error) {
	dst = append(dst, `{"keys":{`...)
	for i, k := range keys {
		res, err := e.hub.Read(k.key, k.since, k.epoch)
		if err != nil {
			return nil, false, err
		}
		ready = ready || res.Resync || len(res.Messages) > 0
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = protocol.AppendString(dst, k.key)
		dst = append(dst, `:{"epoch":`...)
		dst = protocol.AppendString(dst, res.Epoch)
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, res.Seq, 10)
		dst = append(dst, `,"messages":[`...)
		for j, m := range res.Messages {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, m.Encoded(pollFormat)...)
		}
		dst = append(dst, `],"resync":`...)
		dst = strconv.AppendBool(dst, res.Resync)
		dst = append(dst, '}')
	}
	return append(dst, "}}"...), ready, nil
}

// pollFailed answers a hub error: a closed hub, or in cluster mode a store
// that could not be read (keys were validated). Both are worth a retry.
func (e *Engine) pollFailed(w http.ResponseWriter, err error) error {
	if errors.Is(err, hub.ErrClosed) {
		return writeError(w, http.StatusServiceUnavailable, "the gateway is shutting down")
	}
	if errors.Is(err, hub.ErrUnavailable) {
		w.Header().Set("Retry-After", "1")
		return writeError(w, http.StatusServiceUnavailable, err.Error())
	}
	return writeError(w, http.StatusInternalServerError, err.Error())
}

// pollClip shortens s for an error message: a query may be long.
func pollClip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
