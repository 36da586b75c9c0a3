package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/pushgateway/push_gateway/hub"
)

// maxPublishBody bounds a publish request body, in bytes read (not only the
// Content-Length a client claims).
const maxPublishBody = 1 << 20

// maxConfirm bounds a publish's "confirm" window: the admin request is held
// that long at most.
const maxConfirm = 30 * time.Second

// ErrBadConfirm is returned for a "confirm" that is not a Go duration
// string between 1ms and maxConfirm.
var ErrBadConfirm = errors.New("confirm: want a duration like \"2s\", at most 30s")

// errBadPublish marks every error of parsePublish: the admin route answers
// them with 400.
var errBadPublish = errors.New("bad publish body")

// publishMessage is one message of a publish body: the same event and data
// for each of Keys, in order.
type publishMessage struct {
	Keys    []string
	Event   string
	Data    json.RawMessage // the publisher's JSON, byte for byte; "null" when absent
	Confirm time.Duration   // wait up to this for local followers' acks; 0: no confirmation
}

// parsePublish parses a publish body: one object
//
//	{"sdk_key":"K","event":"update","data":…,"confirm":"2s"}
//
// (or "sdk_keys":[…] instead of "sdk_key"), or a JSON array of such objects.
// "confirm" is optional: a Go duration string, at most maxConfirm.
// Field names match exactly; an unknown or repeated field, a body holding
// no message, or anything after the JSON value is refused. Every key and
// event of an accepted body is valid, so a publish is not refused halfway.
// Every error wraps errBadPublish.
func parsePublish(body []byte) ([]publishMessage, error) {
	msgs, err := parseBody(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadPublish, err)
	}
	return msgs, nil
}

func parseBody(body []byte) ([]publishMessage, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("body is empty")
	}
	// encoding/json turns invalid UTF-8 into U+FFFD without a word: a key
	// sent as "a\xffb" would be published to another key, "a\ufffdb", and
	// data would no longer be the publisher's bytes.
	if !utf8.Valid(trimmed) {
		return nil, errors.New("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var msgs []publishMessage
	switch trimmed[0] {
	case '{':
		m, err := parseMessage(dec)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	case '[':
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		for i := 0; dec.More(); i++ {
			m, err := parseMessage(dec)
			if err != nil {
				return nil, fmt.Errorf("message %d: %w", i, err)
			}
			msgs = append(msgs, m)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, err
		}
		if len(msgs) == 0 {
			return nil, errors.New("body holds no message")
		}
	default:
		return nil, errors.New("body must be a JSON object or an array of objects")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return msgs, nil
}

// parseMessage reads one message object from dec.
func parseMessage(dec *json.Decoder) (publishMessage, error) {
	var m publishMessage
	tok, err := dec.Token()
	if err != nil {
		return m, err
	}
	if tok != json.Delim('{') {
		return m, errors.New("want a JSON object")
	}
	var (
		seen    = make(map[string]bool, 4)
		key     string
		haveKey bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return m, err
		}
		field, _ := tok.(string) // object keys are always strings
		if seen[field] {
			return m, fmt.Errorf("field %q given twice", field)
		}
		seen[field] = true
		switch field {
		case "sdk_key":
			if err := dec.Decode(&key); err != nil {
				return m, fmt.Errorf("sdk_key: want a string")
			}
			haveKey = true
		case "sdk_keys":
			if err := dec.Decode(&m.Keys); err != nil {
				return m, fmt.Errorf("sdk_keys: want an array of strings")
			}
			if len(m.Keys) == 0 {
				return m, errors.New("sdk_keys is empty")
			}
		case "event":
			if err := dec.Decode(&m.Event); err != nil {
				return m, fmt.Errorf("event: want a string")
			}
		case "data":
			if err := dec.Decode(&m.Data); err != nil {
				return m, fmt.Errorf("data: %w", err)
			}
		case "confirm":
			var v string
			if err := dec.Decode(&v); err != nil {
				return m, ErrBadConfirm
			}
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Millisecond || d > maxConfirm {
				return m, fmt.Errorf("%w (got %q)", ErrBadConfirm, clip(v))
			}
			m.Confirm = d
		default:
			return m, fmt.Errorf("unknown field %q", clip(field))
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return m, err
	}

	switch {
	case haveKey && m.Keys != nil:
		return m, errors.New("give sdk_key or sdk_keys, not both")
	case haveKey:
		m.Keys = []string{key}
	case m.Keys == nil:
		return m, errors.New("sdk_key or sdk_keys is required")
	}
	for _, k := range m.Keys {
		if err := hub.ValidKey(k); err != nil {
			return m, fmt.Errorf("sdk key %q: %w", clip(k), err)
		}
	}
	if m.Event == "" {
		m.Event = hub.DefaultEvent
	}
	if err := hub.ValidEvent(m.Event); err != nil {
		return m, fmt.Errorf("event %q: %w", clip(m.Event), err)
	}
	if m.Data == nil {
		m.Data = json.RawMessage("null")
	}
	return m, nil
}

// clip shortens s for an error message: a publisher's mistake may be a
// megabyte long.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return s[:max] + "…"
}
