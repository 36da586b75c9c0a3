package redis

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/pushgateway/push_gateway/hub"
)

// formatPayload builds a message payload as the publish script does.
func formatPayload(e hub.Entry) string {
	return "m\n" + e.Epoch + "\n" + strconv.FormatUint(e.Seq, 10) + "\n" +
		strconv.FormatInt(e.TS, 10) + "\n" + e.Event + "\n" + string(e.Data)
}

func TestParsePayload(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    hub.Entry
		drop    bool
		wantErr bool
	}{
		{name: "message", in: "m\nab-r\n7\n1732300000123\nupdate\n{\"a\":1}",
			want: hub.Entry{Key: "K", Epoch: "ab-r", Seq: 7, TS: 1732300000123, Event: "update", Data: []byte(`{"a":1}`)}},
		{name: "data with newlines", in: "m\ne\n1\n0\nev\nline1\nline2\n",
			want: hub.Entry{Key: "K", Epoch: "e", Seq: 1, Event: "ev", Data: []byte("line1\nline2\n")}},
		{name: "empty data", in: "m\ne\n1\n5\nev\n", want: hub.Entry{Key: "K", Epoch: "e", Seq: 1, TS: 5, Event: "ev", Data: []byte{}}},
		{name: "drop", in: "d\nab-r", drop: true, want: hub.Entry{Key: "K", Epoch: "ab-r"}},
		{name: "drop no epoch", in: "d\n", drop: true, want: hub.Entry{Key: "K"}},
		{name: "empty", in: "", wantErr: true},
		{name: "unknown kind", in: "x\ne\n1\n0\nev\nd", wantErr: true},
		{name: "long kind", in: "mm\ne\n1\n0\nev\nd", wantErr: true},
		{name: "missing data line", in: "m\ne\n1\n0\nev", wantErr: true},
		{name: "seq zero", in: "m\ne\n0\n0\nev\nd", wantErr: true},
		{name: "seq not a number", in: "m\ne\nx\n0\nev\nd", wantErr: true},
		{name: "negative seq", in: "m\ne\n-1\n0\nev\nd", wantErr: true},
		{name: "ts not a number", in: "m\ne\n1\nnow\nev\nd", wantErr: true},
		{name: "empty epoch", in: "m\n\n1\n0\nev\nd", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, drop, err := parsePayload("K", tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parsePayload(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if drop != tt.drop {
				t.Fatalf("drop = %v, want %v", drop, tt.drop)
			}
			if drop && (e.Key != tt.want.Key || e.Epoch != tt.want.Epoch) {
				t.Fatalf("drop notice %q = %+v, want key %q, epoch %q", tt.in, e, tt.want.Key, tt.want.Epoch)
			}
			if err != nil || drop {
				return
			}
			if e.Key != tt.want.Key || e.Epoch != tt.want.Epoch || e.Seq != tt.want.Seq || e.TS != tt.want.TS ||
				e.Event != tt.want.Event || !bytes.Equal(e.Data, tt.want.Data) {
				t.Fatalf("parsePayload(%q) = %+v, want %+v", tt.in, e, tt.want)
			}
			if got := formatPayload(e); got != tt.in {
				t.Fatalf("formatPayload round trip = %q, want %q", got, tt.in)
			}
		})
	}
}

// FuzzParsePayload checks that any payload parses or fails cleanly, and
// that a parsed message formats back to the same bytes.
func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		"m\nab-r\n7\n1732300000123\nupdate\n{\"a\":1}",
		"m\ne\n1\n0\nev\nline1\nline2\n",
		"m\ne\n18446744073709551615\n-1\nev\n",
		"d\nab-r",
		"d\n",
		"",
		"m\n\n\n\n\n",
		"m\ne\n01\n+5\nev\nx",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		e, drop, err := parsePayload("K", p)
		if err != nil || drop {
			return
		}
		if e.Seq == 0 || e.Epoch == "" {
			t.Fatalf("parsePayload(%q) accepted %+v", p, e)
		}
		e2, _, err := parsePayload("K", formatPayload(e))
		if err != nil || e2.Epoch != e.Epoch || e2.Seq != e.Seq || e2.TS != e.TS || e2.Event != e.Event || !bytes.Equal(e2.Data, e.Data) {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", p, e2, err, e)
		}
	})
}
