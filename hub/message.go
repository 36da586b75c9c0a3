package hub

import (
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// maxFormats bounds the wire formats a process registers; each Message
// carries one lazily filled slot per format.
const maxFormats = 8

// Message is one published message. The hub creates it in Publish and never
// changes its exported fields afterwards; followers, history and every
// transport share the same value and must treat it, and Data, as read-only.
type Message struct {
	Key   string // SDK key
	Epoch string // the key's epoch when it was published
	Seq   uint64 // 1, 2, 3, ... per key and epoch
	Event string // event name, DefaultEvent unless the publisher named one
	Data  []byte // the publisher's JSON, byte for byte
	TS    int64  // publish time, Unix milliseconds

	// encoded holds one encoding per Format, built by the first follower
	// that needs it (Encoded).
	encoded [maxFormats]atomic.Pointer[[]byte]

	// History bookkeeping, guarded by the lock of the shard holding Key.
	// Followers never read these fields.
	prev, next *Message  // the shard's publish-order list, oldest first
	ks         *keyState // the key state whose history holds the message; nil once removed
	order      uint64    // hub-wide publish order, for oldest-first eviction
	size       int64     // bytes counted against the global cap
	live       int64     // Unix ns while fanned out live, else 0 (stamp.go)
}

// Format is a wire encoding of messages (native WebSocket frame, SSE event,
// Socket.IO packet, ...). Transports register theirs with NewFormat at init.
type Format struct {
	id     int
	name   string
	encode func(*Message) []byte
}

var formats struct {
	mu sync.Mutex
	n  int
}

// NewFormat registers a wire format. encode turns a message into the bytes
// written as-is to every follower using the format; it must not keep m or
// modify m.Data. NewFormat is meant for package initialisation and panics
// when more than 8 formats are registered or encode is nil.
func NewFormat(name string, encode func(m *Message) []byte) *Format {
	if encode == nil {
		panic("hub: NewFormat " + name + ": nil encode func")
	}
	formats.mu.Lock()
	defer formats.mu.Unlock()
	if formats.n >= maxFormats {
		panic("hub: NewFormat " + name + ": more than 8 formats")
	}
	f := &Format{id: formats.n, name: name, encode: encode}
	formats.n++
	return f
}

// Name returns the name given to NewFormat.
func (f *Format) Name() string { return f.name }

// Encoded returns m encoded in format f. The first call per format encodes;
// every later call, from any goroutine, returns the same bytes, which the
// caller must not modify. Two callers racing on the first call may both
// encode, but both get the one encoding that was stored.
func (m *Message) Encoded(f *Format) []byte {
	slot := &m.encoded[f.id]
	if p := slot.Load(); p != nil {
		return *p
	}
	b := f.encode(m)
	if slot.CompareAndSwap(nil, &b) {
		return b
	}
	return *slot.Load()
}

// ValidKey reports whether key is acceptable as an SDK key: non-empty, at
// most MaxKeyLen bytes, valid UTF-8 and free of control characters. The
// error wraps ErrBadKey.
func ValidKey(key string) error {
	if !validName(key, MaxKeyLen) {
		return ErrBadKey
	}
	return nil
}

// ValidEvent is ValidKey's counterpart for event names: the error wraps
// ErrBadEvent. Publishers check whole batches with it before publishing any.
func ValidEvent(event string) error {
	if !validName(event, MaxEventLen) {
		return ErrBadEvent
	}
	return nil
}

// validName accepts 1..maxLen bytes of UTF-8 without C0/C1 control
// characters or DEL: names end up in JSON strings, SSE lines and log fields,
// where such bytes either break framing or hide what the name is.
func validName(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if r >= 0x80 && r <= 0x9f {
			return false
		}
		i += size
	}
	return true
}
