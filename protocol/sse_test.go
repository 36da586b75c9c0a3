package protocol

import (
	"errors"
	"testing"

	"github.com/pushgateway/push_gateway/hub"
)

func TestAppendSSEMessage(t *testing.T) {
	tests := []struct {
		name, event, data, want string
	}{
		{"compact json", "update", `{"a":1}`, "id: E-1:7\nevent: update\ndata: {\"a\":1}\n\n"},
		{"empty data is null", "update", ``, "id: E-1:7\nevent: update\ndata: null\n\n"},
		{"LF splits", "x", "{\n\"a\":1\n}", "id: E-1:7\nevent: x\ndata: {\ndata: \"a\":1\ndata: }\n\n"},
		{"CRLF is one break", "x", "[1,\r\n2]", "id: E-1:7\nevent: x\ndata: [1,\ndata: 2]\n\n"},
		{"lone CR splits", "x", "[1,\r2]", "id: E-1:7\nevent: x\ndata: [1,\ndata: 2]\n\n"},
		{"trailing LF keeps an empty line", "x", "1\n", "id: E-1:7\nevent: x\ndata: 1\ndata: \n\n"},
		{"leading space kept", "x", " 1", "id: E-1:7\nevent: x\ndata:  1\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &hub.Message{Key: "K", Epoch: "E-1", Seq: 7, Event: tt.event, Data: []byte(tt.data)}
			if got := string(AppendSSEMessage(nil, m)); got != tt.want {
				t.Fatalf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestSSEFormatShared checks that the encoding is built once and that its
// capacity is sealed, so no follower can write into the shared bytes.
func TestSSEFormatShared(t *testing.T) {
	m := &hub.Message{Key: "K", Epoch: "E", Seq: 1, Event: "update", Data: []byte(`{}`)}
	a, b := m.Encoded(SSE), m.Encoded(SSE)
	if &a[0] != &b[0] {
		t.Fatal("second Encoded built a new slice")
	}
	if cap(a) != len(a) {
		t.Fatalf("cap %d > len %d: appends would write into the shared buffer", cap(a), len(a))
	}
	if want := "id: E:1\nevent: update\ndata: {}\n\n"; string(a) != want {
		t.Fatalf("got %q, want %q", a, want)
	}
}

func TestSSEControlEvents(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"resync", AppendSSEResync(nil, "E-2", 43), "id: E-2:43\nevent: resync\ndata: {\"epoch\":\"E-2\",\"seq\":43}\n\n"},
		{"resync escapes epoch", AppendSSEResync(nil, `a"b`, 0), "id: a\"b:0\nevent: resync\ndata: {\"epoch\":\"a\\\"b\",\"seq\":0}\n\n"},
		{"position", AppendSSEPosition(nil, "E", 0), "id: E:0\n\n"},
		{"prelude", AppendSSEPrelude(nil, 2000), ": push_gateway\nretry: 2000\n\n"},
		{"comment", AppendSSEComment(nil, "a\nb\rc"), ": a b c\n"},
		{"heartbeat", SSEHeartbeat, ": hb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestParseSSEID(t *testing.T) {
	tests := []struct {
		id    string
		epoch string
		seq   uint64
		err   error
	}{
		{"E-1:43", "E-1", 43, nil},
		{"a:b:7", "a:b", 7, nil},
		{"E:0", "E", 0, nil},
		{"E:18446744073709551615", "E", 18446744073709551615, nil},
		{"E", "", 0, ErrBadEventID},
		{":5", "", 0, ErrBadEventID},
		{"E:", "", 0, ErrBadEventID},
		{"E:-1", "", 0, ErrBadEventID},
		{"E:x", "", 0, ErrBadEventID},
		{"E:18446744073709551616", "", 0, ErrBadEventID},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			epoch, seq, err := ParseSSEID(tt.id)
			if !errors.Is(err, tt.err) || epoch != tt.epoch || seq != tt.seq {
				t.Fatalf("ParseSSEID(%q) = %q, %d, %v; want %q, %d, %v", tt.id, epoch, seq, err, tt.epoch, tt.seq, tt.err)
			}
		})
	}
}

func BenchmarkEncodeSSE(b *testing.B) {
	m := &hub.Message{Key: "K", Epoch: "E-1", Seq: 1234, Event: "update", Data: []byte(`{"toggles":{"a":true,"b":false}}`)}
	b.ReportAllocs()
	for b.Loop() {
		_ = encodeSSE(m)
	}
}
