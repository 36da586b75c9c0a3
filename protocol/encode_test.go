package protocol_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
)

// decode parses b with encoding/json, failing on invalid JSON.
func decode(tb testing.TB, b []byte) map[string]any {
	tb.Helper()
	var v map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		tb.Fatalf("invalid JSON %q: %v", b, err)
	}
	if d.More() {
		tb.Fatalf("trailing data in %q", b)
	}
	return v
}

func TestEncoders(t *testing.T) {
	msg := &hub.Message{Key: "K", Epoch: "E", Seq: 44, Event: "update", Data: []byte(`{"a":[1,2]}`), TS: 1732300000123}
	tests := []struct {
		name  string
		got   []byte
		exact string // when set, the exact bytes
		want  map[string]any
	}{
		{
			name:  "message",
			got:   protocol.AppendMessage(nil, msg),
			exact: `{"type":"message","sdk_key":"K","epoch":"E","seq":44,"event":"update","data":{"a":[1,2]},"ts":1732300000123}`,
		},
		{
			name: "message with empty data",
			got:  protocol.AppendMessage(nil, &hub.Message{Key: "K", Epoch: "E", Seq: 1, Event: "e"}),
			want: map[string]any{"type": "message", "sdk_key": "K", "epoch": "E", "seq": json.Number("1"), "event": "e", "data": nil, "ts": json.Number("0")},
		},
		{
			name: "message escaping",
			got:  protocol.AppendMessage([]byte("prefix"), &hub.Message{Key: "k\"\\\n\x01é\u2028", Epoch: "\xff", Seq: 1<<64 - 1, Event: "<&>", Data: []byte(`"s"`), TS: -1})[len("prefix"):],
			want: map[string]any{"type": "message", "sdk_key": "k\"\\\n\x01é\u2028", "epoch": "\ufffd", "seq": json.Number("18446744073709551615"),
				"event": "<&>", "data": "s", "ts": json.Number("-1")},
		},
		{
			name:  "registered",
			got:   protocol.AppendRegistered(nil, "K", "E", 43),
			exact: `{"type":"registered","sdk_key":"K","epoch":"E","seq":43}`,
		},
		{
			name:  "resync",
			got:   protocol.AppendResync(nil, "K", "E", 43),
			exact: `{"type":"resync","sdk_key":"K","epoch":"E","seq":43}`,
		},
		{
			name:  "notice registered",
			got:   protocol.AppendNotice(nil, hub.Notice{Kind: hub.NoticeRegistered, Key: "K", Epoch: "E", Seq: 0}),
			exact: `{"type":"registered","sdk_key":"K","epoch":"E","seq":0}`,
		},
		{
			name:  "notice resync",
			got:   protocol.AppendNotice(nil, hub.Notice{Kind: hub.NoticeResync, Key: "K", Epoch: "E", Seq: 7}),
			exact: `{"type":"resync","sdk_key":"K","epoch":"E","seq":7}`,
		},
		{name: "pong", got: protocol.AppendPong(nil), exact: `{"type":"pong"}`},
		{
			name:  "error",
			got:   protocol.AppendError(nil, protocol.CodeBadRequest, `bad "thing"`),
			exact: `{"type":"error","code":"bad_request","message":"bad \"thing\""}`,
		},
		{name: "string controls", got: protocol.AppendString(nil, "\t\r\n\b\x1f"), exact: `"\t\r\n\u0008\u001f"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.exact != "" {
				if string(tt.got) != tt.exact {
					t.Fatalf("got  %s\nwant %s", tt.got, tt.exact)
				}
				if !json.Valid(tt.got) {
					t.Fatalf("invalid JSON %s", tt.got)
				}
				return
			}
			if v := decode(t, tt.got); !reflect.DeepEqual(v, tt.want) {
				t.Fatalf("decoded %#v\nwant    %#v", v, tt.want)
			}
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		s    string
	}{
		{name: "plain", s: "sdk-key"},
		{name: "empty", s: ""},
		{name: "all ascii controls", s: "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x1f\x7f"},
		{name: "quotes and backslashes", s: `"\"\\`},
		{name: "multibyte", s: "日本語 😀 é"},
		{name: "line separators", s: "a\u2028b\u2029c"},
		{name: "invalid utf8", s: "a\xffb\xc3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := protocol.AppendString(nil, tt.s)
			var got string
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("invalid JSON %q: %v", b, err)
			}
			want, _ := json.Marshal(tt.s)
			var wantS string
			_ = json.Unmarshal(want, &wantS)
			if got != wantS {
				t.Fatalf("decoded %q, encoding/json round trip gives %q", got, wantS)
			}
		})
	}
}
