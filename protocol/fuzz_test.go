package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
)

// FuzzParseClient: the parser never panics; whatever it accepts is valid
// JSON, carries a valid key where one is needed, and survives a round trip
// through AppendClientMessage unchanged; whatever it refuses is a
// *protocol.Error.
func FuzzParseClient(f *testing.F) {
	for _, seed := range []string{
		`{"type":"register","sdk_key":"K"}`,
		`{"type":"register","sdk_key":"K","since":42,"epoch":"E"}`,
		`{"type":"register","sdk_key":"K","since":null,"epoch":null}`,
		`{"type":"unregister","sdk_key":"K"}`,
		`{"type":"ping"}`,
		`{"type":"ack","sdk_key":"K","seq":43}`,
		`{"type":"ping","x":{"a":[1,-2.5e+3,true,false,null,"s",{},[]]}}`,
		`{"type":"register","sdk_key":"K\u00e9\ud83d\ude00","epoch":"a\"b"}`,
		`{"\u0074ype":"ping"}`,
		`[[[[[[[[[[`,
		`{"type":"ping"}x`,
		`{"type":"register","sdk_key":"K","since":18446744073709551616}`,
		"{\"type\":\"ping\",\"x\":\"\xff\"}",
		``,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := protocol.ParseClient(data)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code == "" || pe.Message == "" {
				t.Fatalf("error %T %v is not a complete *protocol.Error", err, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if m.Type != protocol.TypePing {
			if err := hub.ValidKey(m.SDKKey); err != nil {
				t.Fatalf("accepted invalid key %q", m.SDKKey)
			}
		}
		b := protocol.AppendClientMessage(nil, m)
		again, err := protocol.ParseClient(b)
		if err != nil {
			t.Fatalf("re-encoded %q refused: %v", b, err)
		}
		if again != m {
			t.Fatalf("round trip changed %+v into %+v via %q", m, again, b)
		}
	})
}

// FuzzAppendMessage: for any key, epoch and event strings and any valid
// JSON data, AppendMessage produces valid JSON that decodes to the same
// values (strings as encoding/json would carry them), and the Native frame
// wraps exactly that JSON.
func FuzzAppendMessage(f *testing.F) {
	f.Add("K", "E", "update", []byte(`{"a":1}`), uint64(44), int64(1732300000123))
	f.Add("k\"\\\n", "\xff", "\u2028", []byte(` [1, 2] `), uint64(0), int64(-1))
	f.Add("", "", "", []byte(``), uint64(1<<64-1), int64(0))
	f.Fuzz(func(t *testing.T, key, epoch, event string, data []byte, seq uint64, ts int64) {
		if !json.Valid(data) {
			// Publishers' data is validated JSON; turn anything else
			// into some, keeping the fuzzer's bytes in play.
			data, _ = json.Marshal(string(data))
		}
		m := &hub.Message{Key: key, Epoch: epoch, Event: event, Data: data, Seq: seq, TS: ts}
		b := protocol.AppendMessage(nil, m)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON %q", b)
		}
		var got struct {
			Type   string          `json:"type"`
			SDKKey string          `json:"sdk_key"`
			Epoch  string          `json:"epoch"`
			Seq    json.Number     `json:"seq"`
			Event  string          `json:"event"`
			Data   json.RawMessage `json:"data"`
			TS     json.Number     `json:"ts"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("decoding %q: %v", b, err)
		}
		wantData := bytes.Trim(data, " \t\r\n")
		if len(wantData) == 0 {
			wantData = []byte("null")
		}
		switch {
		case got.Type != "message":
			t.Fatalf("type %q", got.Type)
		case got.SDKKey != viaJSON(key), got.Epoch != viaJSON(epoch), got.Event != viaJSON(event):
			t.Fatalf("strings changed: %q %q %q from %q %q %q", got.SDKKey, got.Epoch, got.Event, key, epoch, event)
		case string(got.Seq) != strconv.FormatUint(seq, 10), string(got.TS) != strconv.FormatInt(ts, 10):
			t.Fatalf("numbers %s %s, want %d %d", got.Seq, got.TS, seq, ts)
		case !bytes.Equal(got.Data, wantData):
			t.Fatalf("data %q, want %q", got.Data, wantData)
		}
		frame := protocol.TextFrame(nil, b)
		if fr := readFrame(t, frame); !bytes.Equal(fr.Payload, b) {
			t.Fatal("text frame payload differs")
		}
	})
}

// viaJSON is what s becomes through encoding/json (invalid UTF-8 turns into
// U+FFFD).
func viaJSON(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}
