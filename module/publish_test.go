package module

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

func TestParsePublish(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []publishMessage
		wantErr string // substring of the error; "" means success
	}{
		{
			name: "one key",
			body: `{"sdk_key":"K","event":"update","data":{"a":1}}`,
			want: []publishMessage{{Keys: []string{"K"}, Event: "update", Data: json.RawMessage(`{"a":1}`)}},
		},
		{
			name: "event defaults to update and data to null",
			body: `{"sdk_key":"K"}`,
			want: []publishMessage{{Keys: []string{"K"}, Event: "update", Data: json.RawMessage(`null`)}},
		},
		{
			name: "data kept byte for byte",
			body: ` {"data": { "b" : [1, 2.50, "\u00e9"] } , "sdk_key":"K"} ` + "\n",
			want: []publishMessage{{Keys: []string{"K"}, Event: "update", Data: json.RawMessage(`{ "b" : [1, 2.50, "\u00e9"] }`)}},
		},
		{
			name: "empty string data as FeatureProbe publishes it",
			body: `{"sdk_keys":["server-K","client-K"],"data":""}`,
			want: []publishMessage{{Keys: []string{"server-K", "client-K"}, Event: "update", Data: json.RawMessage(`""`)}},
		},
		{
			name: "explicit null data",
			body: `{"sdk_key":"K","data":null}`,
			want: []publishMessage{{Keys: []string{"K"}, Event: "update", Data: json.RawMessage(`null`)}},
		},
		{
			name: "array of messages in order",
			body: `[{"sdk_key":"A","event":"e1","data":1},{"sdk_keys":["B","C"],"data":"x"}]`,
			want: []publishMessage{
				{Keys: []string{"A"}, Event: "e1", Data: json.RawMessage(`1`)},
				{Keys: []string{"B", "C"}, Event: "update", Data: json.RawMessage(`"x"`)},
			},
		},
		{name: "empty body", body: "", wantErr: "body is empty"},
		{name: "blank body", body: " \n", wantErr: "body is empty"},
		{name: "key not UTF-8", body: "{\"sdk_key\":\"a\xffb\",\"data\":1}", wantErr: "not valid UTF-8"},
		{name: "data not UTF-8", body: "{\"sdk_key\":\"k\",\"data\":\"\xc3\"}", wantErr: "not valid UTF-8"},
		{name: "not an object", body: `"K"`, wantErr: "JSON object or an array"},
		{name: "empty array", body: `[]`, wantErr: "no message"},
		{name: "array of non-objects", body: `[1]`, wantErr: "message 0: want a JSON object"},
		{name: "second message bad", body: `[{"sdk_key":"A"},{"sdk_key":""}]`, wantErr: "message 1: sdk key"},
		{name: "unknown field", body: `{"sdk_key":"K","sdkkey":"K"}`, wantErr: `unknown field "sdkkey"`},
		{name: "field names match exactly", body: `{"SDK_KEY":"K"}`, wantErr: `unknown field "SDK_KEY"`},
		{name: "field twice", body: `{"sdk_key":"K","sdk_key":"L"}`, wantErr: `field "sdk_key" given twice`},
		{
			name: "confirm",
			body: `{"sdk_key":"K","confirm":"2s"}`,
			want: []publishMessage{{Keys: []string{"K"}, Event: "update", Data: json.RawMessage(`null`), Confirm: 2 * time.Second}},
		},
		{
			name: "confirm per message",
			body: `[{"sdk_key":"A","confirm":"1500ms"},{"sdk_key":"B"}]`,
			want: []publishMessage{
				{Keys: []string{"A"}, Event: "update", Data: json.RawMessage(`null`), Confirm: 1500 * time.Millisecond},
				{Keys: []string{"B"}, Event: "update", Data: json.RawMessage(`null`)},
			},
		},
		{name: "confirm at the cap", body: `{"sdk_key":"K","confirm":"30s"}`, want: []publishMessage{
			{Keys: []string{"K"}, Event: "update", Data: json.RawMessage(`null`), Confirm: maxConfirm}}},
		{name: "confirm over the cap", body: `{"sdk_key":"K","confirm":"30.001s"}`, wantErr: "at most 30s"},
		{name: "confirm zero", body: `{"sdk_key":"K","confirm":"0s"}`, wantErr: "confirm: want a duration"},
		{name: "confirm negative", body: `{"sdk_key":"K","confirm":"-1s"}`, wantErr: "confirm: want a duration"},
		{name: "confirm without unit", body: `{"sdk_key":"K","confirm":"2"}`, wantErr: "confirm: want a duration"},
		{name: "confirm a number", body: `{"sdk_key":"K","confirm":2}`, wantErr: "confirm: want a duration"},
		{name: "confirm null", body: `{"sdk_key":"K","confirm":null}`, wantErr: "confirm: want a duration"},
		{name: "no key", body: `{"data":1}`, wantErr: "sdk_key or sdk_keys is required"},
		{name: "both key forms", body: `{"sdk_key":"K","sdk_keys":["L"]}`, wantErr: "not both"},
		{name: "empty key", body: `{"sdk_key":""}`, wantErr: "invalid sdk key"},
		{name: "null key", body: `{"sdk_key":null}`, wantErr: "invalid sdk key"},
		{name: "key with control character", body: `{"sdk_key":"a\nb"}`, wantErr: "invalid sdk key"},
		{name: "key too long", body: `{"sdk_key":"` + strings.Repeat("k", hub.MaxKeyLen+1) + `"}`, wantErr: "invalid sdk key"},
		{name: "key not a string", body: `{"sdk_key":42}`, wantErr: "sdk_key: want a string"},
		{name: "empty key list", body: `{"sdk_keys":[]}`, wantErr: "sdk_keys is empty"},
		{name: "key list of numbers", body: `{"sdk_keys":[1]}`, wantErr: "sdk_keys: want an array of strings"},
		{name: "bad key in list", body: `{"sdk_keys":["ok",""]}`, wantErr: "invalid sdk key"},
		{name: "event with control character", body: `{"sdk_key":"K","event":"a\u0000"}`, wantErr: "invalid event name"},
		{name: "event too long", body: `{"sdk_key":"K","event":"` + strings.Repeat("e", hub.MaxEventLen+1) + `"}`, wantErr: "invalid event name"},
		{name: "malformed data", body: `{"sdk_key":"K","data":{"a":}}`, wantErr: "data:"},
		{name: "truncated object", body: `{"sdk_key":"K"`, wantErr: "bad publish body"},
		{name: "trailing data", body: `{"sdk_key":"K"} {}`, wantErr: "unexpected data after the JSON value"},
		{name: "trailing garbage", body: `{"sdk_key":"K"}x`, wantErr: "unexpected data after the JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePublish([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("parsePublish(%q) = %+v, want error containing %q", tt.body, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parsePublish(%q) error = %q, want it to contain %q", tt.body, err, tt.wantErr)
				}
				if !errors.Is(err, errBadPublish) {
					t.Fatalf("error %q does not wrap errBadPublish", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePublish(%q): %v", tt.body, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parsePublish(%q) =\n%+v\nwant\n%+v", tt.body, got, tt.want)
			}
		})
	}
}

func TestParsePublishBadConfirmIsSentinel(t *testing.T) {
	_, err := parsePublish([]byte(`{"sdk_key":"K","confirm":"2 s"}`))
	if !errors.Is(err, ErrBadConfirm) || !errors.Is(err, errBadPublish) {
		t.Fatalf("error %v does not wrap ErrBadConfirm and errBadPublish", err)
	}
}

// FuzzParsePublish checks that the parser never panics and that whatever it
// accepts can be published as is: valid keys and events, and data that is
// one valid JSON value.
func FuzzParsePublish(f *testing.F) {
	for _, seed := range []string{
		`{"sdk_key":"K","event":"update","data":{"a":1}}`,
		`{"sdk_keys":["A","B"],"data":""}`,
		`[{"sdk_key":"A"},{"sdk_key":"B","event":"x","data":[1,2,3]}]`,
		`{"sdk_key":"K","data":null}`,
		`{"sdk_key":"K","confirm":"2s"}`,
		`[{"sdk_key":"K","confirm":"30s"},{"sdk_key":"L","confirm":"1h"}]`,
		`{"sdk_key":"K","confirm":"1e3ms"}`,
		`{"sdk_key":"\u00e9\ud83d\ude00","data":"\u0000"}`,
		`[]`, `{}`, `[[]]`, `{"sdk_key":"K"} {}`, `{"data":1e999,"sdk_key":"K"}`,
		"\xff", `{"sdk_key":"\xff"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := parsePublish(body)
		if err != nil {
			if msgs != nil {
				t.Fatalf("error %v with messages %+v", err, msgs)
			}
			if !errors.Is(err, errBadPublish) {
				t.Fatalf("error %q does not wrap errBadPublish", err)
			}
			return
		}
		if len(msgs) == 0 {
			t.Fatal("accepted a body without messages")
		}
		for _, m := range msgs {
			if len(m.Keys) == 0 {
				t.Fatalf("accepted a message without keys: %+v", m)
			}
			for _, k := range m.Keys {
				if err := hub.ValidKey(k); err != nil {
					t.Fatalf("accepted invalid key %q", k)
				}
			}
			if hub.ValidEvent(m.Event) != nil {
				t.Fatalf("accepted invalid event %q", m.Event)
			}
			if !json.Valid(m.Data) {
				t.Fatalf("accepted invalid data %q", m.Data)
			}
			if m.Confirm < 0 || m.Confirm > maxConfirm {
				t.Fatalf("accepted confirm %v", m.Confirm)
			}
		}
	})
}
