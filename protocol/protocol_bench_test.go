package protocol_test

import (
	"testing"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/protocol"
)

func BenchmarkParseClient(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   string
	}{
		{name: "register", in: `{"type":"register","sdk_key":"server-7f3a9c2e1b","since":42,"epoch":"q3x9d2kf-1a"}`},
		{name: "ack", in: `{"type":"ack","sdk_key":"server-7f3a9c2e1b","seq":43}`},
		{name: "ping", in: `{"type":"ping"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := []byte(bc.in)
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := protocol.ParseClient(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchMessage() *hub.Message {
	return &hub.Message{Key: "server-7f3a9c2e1b", Epoch: "q3x9d2kf-1a", Seq: 44, Event: "update",
		Data: []byte(`{"toggle":"kill-switch","on":true,"rules":[1,2,3]}`), TS: 1732300000123}
}

func BenchmarkAppendMessage(b *testing.B) {
	m := benchMessage()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(protocol.AppendMessage(nil, m))))
	for b.Loop() {
		buf = protocol.AppendMessage(buf[:0], m)
	}
}

// BenchmarkNativeEncode is the once-per-message cost of the Native format
// on a fresh message each time (Encoded caches per message): 3 allocations,
// the Message itself, the frame buffer and the cache slot's pointer.
func BenchmarkNativeEncode(b *testing.B) {
	tmpl := benchMessage()
	b.ReportAllocs()
	for b.Loop() {
		m := &hub.Message{Key: tmpl.Key, Epoch: tmpl.Epoch, Seq: tmpl.Seq, Event: tmpl.Event, Data: tmpl.Data, TS: tmpl.TS}
		_ = m.Encoded(protocol.Native)
	}
}
