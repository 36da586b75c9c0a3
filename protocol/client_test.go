package protocol_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
)

func TestParseClient(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want protocol.ClientMessage
	}{
		{name: "register", in: `{"type":"register","sdk_key":"K"}`,
			want: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "K"}},
		{name: "register resume", in: `{"type":"register","sdk_key":"K","since":42,"epoch":"E"}`,
			want: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "K", Since: 42, HasSince: true, Epoch: "E"}},
		{name: "since zero", in: `{"type":"register","sdk_key":"K","since":0}`,
			want: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "K", HasSince: true}},
		{name: "since max uint64", in: `{"type":"register","sdk_key":"K","since":18446744073709551615}`,
			want: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "K", Since: 1<<64 - 1, HasSince: true}},
		{name: "since and epoch null", in: `{"type":"register","sdk_key":"K","since":null,"epoch":null}`,
			want: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "K"}},
		{name: "fields in any order, whitespace", in: " \r\n\t{ \"epoch\" : \"E\" ,\n\"since\": 7 , \"sdk_key\":\"K\", \"type\" :\"register\" }\n ",
			want: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "K", Since: 7, HasSince: true, Epoch: "E"}},
		{name: "unregister", in: `{"type":"unregister","sdk_key":"K"}`,
			want: protocol.ClientMessage{Type: protocol.TypeUnregister, SDKKey: "K"}},
		{name: "ping", in: `{"type":"ping"}`, want: protocol.ClientMessage{Type: protocol.TypePing}},
		{name: "ping with extra key", in: `{"type":"ping","sdk_key":"K"}`,
			want: protocol.ClientMessage{Type: protocol.TypePing, SDKKey: "K"}},
		{name: "ack", in: `{"type":"ack","sdk_key":"K","seq":43}`,
			want: protocol.ClientMessage{Type: protocol.TypeAck, SDKKey: "K", Seq: 43}},
		{name: "ack seq zero", in: `{"type":"ack","sdk_key":"K","seq":0}`,
			want: protocol.ClientMessage{Type: protocol.TypeAck, SDKKey: "K"}},
		{name: "unknown fields skipped", in: `{"v":2,"type":"ping","x":{"a":[1,-2.5e+3,true,false,null,"s",{},[]],"b":{"c":"\u00e9"}},"y":[],"z":0}`,
			want: protocol.ClientMessage{Type: protocol.TypePing}},
		{name: "escaped strings", in: `{"type":"register","sdk_key":"K\u00e9\ud83d\ude00\/x","epoch":"a\"b"}`,
			want: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "Ké😀/x", Epoch: `a"b`}},
		{name: "escaped field name", in: `{"\u0074ype":"ping"}`, want: protocol.ClientMessage{Type: protocol.TypePing}},
		{name: "lone surrogate becomes U+FFFD", in: `{"type":"register","sdk_key":"a\ud800b"}`,
			want: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "a\ufffdb"}},
		{name: "utf8 key", in: `{"type":"register","sdk_key":"ключ"}`,
			want: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "ключ"}},
		{name: "unknown field 32 deep", in: `{"type":"ping","x":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`,
			want: protocol.ClientMessage{Type: protocol.TypePing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.ParseClient([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseClient(%s): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseClient(%s) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseClientErrors(t *testing.T) {
	deep := strings.Repeat("[", 64<<10)
	tests := []struct {
		name    string
		in      string
		message string // a substring of the error message
		badKey  bool   // the error wraps hub.ErrBadKey
	}{
		{name: "empty", in: "", message: "empty message"},
		{name: "blank", in: "  \n", message: "empty message"},
		{name: "not JSON", in: "hello", message: "must be a JSON object"},
		{name: "null", in: "null", message: "must be a JSON object"},
		{name: "array", in: `[{"type":"ping"}]`, message: "must be a JSON object"},
		{name: "string", in: `"ping"`, message: "must be a JSON object"},
		{name: "number", in: `42`, message: "must be a JSON object"},
		{name: "unterminated object", in: `{"type":"ping"`, message: "missing '}'"},
		{name: "open brace only", in: `{`, message: "at the end of the message"},
		{name: "missing type", in: `{"sdk_key":"K"}`, message: `missing "type"`},
		{name: "empty object", in: `{}`, message: `missing "type"`},
		{name: "type not string", in: `{"type":1}`, message: `"type" must be a string`},
		{name: "unknown type", in: `{"type":"subscribe","sdk_key":"K"}`, message: `unknown type "subscribe"`},
		{name: "long unknown type cut", in: `{"type":"` + strings.Repeat("x", 100) + `"}`, message: `"...: want`},
		{name: "register without key", in: `{"type":"register"}`, message: `register needs "sdk_key"`},
		{name: "unregister without key", in: `{"type":"unregister"}`, message: `unregister needs "sdk_key"`},
		{name: "key not string", in: `{"type":"register","sdk_key":42}`, message: `"sdk_key" must be a string`},
		{name: "key null", in: `{"type":"register","sdk_key":null}`, message: `"sdk_key" must be a string`},
		{name: "empty key", in: `{"type":"register","sdk_key":""}`, message: `invalid "sdk_key"`, badKey: true},
		{name: "key with control char", in: `{"type":"register","sdk_key":"a\u0001"}`, message: `invalid "sdk_key"`, badKey: true},
		{name: "key too long", in: `{"type":"register","sdk_key":"` + strings.Repeat("k", hub.MaxKeyLen+1) + `"}`, message: `invalid "sdk_key"`, badKey: true},
		{name: "since negative", in: `{"type":"register","sdk_key":"K","since":-1}`, message: `"since" must be a non-negative integer`},
		{name: "since fraction", in: `{"type":"register","sdk_key":"K","since":4.2}`, message: `"since" must be a non-negative integer`},
		{name: "since exponent", in: `{"type":"register","sdk_key":"K","since":1e3}`, message: `"since" must be a non-negative integer`},
		{name: "since string", in: `{"type":"register","sdk_key":"K","since":"42"}`, message: `"since" must be a non-negative integer`},
		{name: "since bool", in: `{"type":"register","sdk_key":"K","since":true}`, message: `"since" must be a non-negative integer`},
		{name: "since leading zero", in: `{"type":"register","sdk_key":"K","since":042}`, message: "leading zero"},
		{name: "since overflow", in: `{"type":"register","sdk_key":"K","since":18446744073709551616}`, message: "too large"},
		{name: "seq negative", in: `{"type":"ack","sdk_key":"K","seq":-5}`, message: `"seq" must be a non-negative integer`},
		{name: "ack without seq", in: `{"type":"ack","sdk_key":"K"}`, message: `ack needs "seq"`},
		{name: "ack seq null", in: `{"type":"ack","sdk_key":"K","seq":null}`, message: `ack needs "seq"`},
		{name: "ack without key", in: `{"type":"ack","seq":1}`, message: `ack needs "sdk_key"`},
		{name: "epoch not string", in: `{"type":"register","sdk_key":"K","epoch":5}`, message: `"epoch" must be a string`},
		{name: "epoch too long", in: `{"type":"register","sdk_key":"K","epoch":"` + strings.Repeat("e", 129) + `"}`, message: "longer than 128"},
		{name: "trailing garbage", in: `{"type":"ping"}x`, message: "after the JSON object"},
		{name: "two objects", in: `{"type":"ping"}{"type":"ping"}`, message: "after the JSON object"},
		{name: "trailing comma", in: `{"type":"ping",}`, message: "expected a field name"},
		{name: "missing colon", in: `{"type" "ping"}`, message: "expected ':'"},
		{name: "missing comma", in: `{"type":"ping" "x":1}`, message: "expected ',' or '}'"},
		{name: "single quotes", in: `{'type':'ping'}`, message: "expected a field name"},
		{name: "duplicate type", in: `{"type":"ping","type":"ping"}`, message: `duplicate field "type"`},
		{name: "duplicate key", in: `{"type":"register","sdk_key":"a","sdk_key":"b"}`, message: `duplicate field "sdk_key"`},
		{name: "invalid escape", in: `{"type":"p\ing"}`, message: "invalid escape"},
		{name: "bad unicode escape", in: `{"type":"\u12"}`, message: `invalid \u escape`},
		{name: "raw control char", in: "{\"type\":\"pi\nng\"}", message: "control character"},
		{name: "invalid utf8", in: "{\"type\":\"ping\",\"x\":\"\xff\"}", message: "not valid UTF-8"},
		{name: "unterminated string", in: `{"type":"ping`, message: "unterminated string"},
		{name: "bad literal in unknown field", in: `{"type":"ping","x":tru}`, message: "invalid literal"},
		{name: "bad number in unknown field", in: `{"type":"ping","x":-}`, message: "invalid number"},
		{name: "bad fraction in unknown field", in: `{"type":"ping","x":1.}`, message: "invalid number"},
		{name: "mismatched brackets", in: `{"type":"ping","x":[1}`, message: "expected ','"},
		{name: "unknown field too deep", in: `{"type":"ping","x":` + strings.Repeat("[", 33) + strings.Repeat("]", 33) + `}`, message: "nested deeper"},
		{name: "64 KiB of brackets in a field", in: `{"type":"ping","x":` + deep, message: "nested deeper"},
		{name: "64 KiB of brackets", in: deep, message: "must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := protocol.ParseClient([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseClient accepted %q as %+v", tt.in, m)
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
				t.Fatalf("error %T %v, want *protocol.Error with code bad_request", err, err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("error %q, want it to contain %q", err, tt.message)
			}
			if got := errors.Is(err, hub.ErrBadKey); got != tt.badKey {
				t.Fatalf("errors.Is(err, hub.ErrBadKey) = %v, want %v", got, tt.badKey)
			}
		})
	}
}

func TestAppendClientMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    protocol.ClientMessage
	}{
		{name: "register", m: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "K"}},
		{name: "resume", m: protocol.ClientMessage{Type: protocol.TypeRegister, SDKKey: "K\"\\", Since: 9, HasSince: true, Epoch: "e\n"}},
		{name: "ack zero", m: protocol.ClientMessage{Type: protocol.TypeAck, SDKKey: "K"}},
		{name: "ping", m: protocol.ClientMessage{Type: protocol.TypePing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := protocol.AppendClientMessage(nil, tt.m)
			if !json.Valid(b) {
				t.Fatalf("invalid JSON %s", b)
			}
			got, err := protocol.ParseClient(b)
			if err != nil || got != tt.m {
				t.Fatalf("round trip of %s: %+v %v, want %+v", b, got, err, tt.m)
			}
		})
	}
}

func TestTypeString(t *testing.T) {
	tests := []struct {
		name string
		t    protocol.Type
		want string
	}{
		{name: "register", t: protocol.TypeRegister, want: "register"},
		{name: "ack", t: protocol.TypeAck, want: "ack"},
		{name: "zero", t: 0, want: "Type(0)"},
		{name: "out of range", t: 99, want: "Type(99)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.t.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
