package protocol_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/pushgateway/push_gateway/protocol"
)

// FuzzParseSSEID: ParseSSEID (a client's Last-Event-ID) never panics;
// it refuses with ErrBadEventID; an id it accepts is "<epoch>:<seq>" with
// a non-empty epoch, and the id the gateway would send for that position
// parses back to it.
func FuzzParseSSEID(f *testing.F) {
	for _, s := range []string{
		"4gt27p6t-1s:44", "e:0", "a:b:7", ":7", "e:", "e:-1", "e:+1", "e:007",
		"e:18446744073709551615", "e:18446744073709551616", "garbage", "", "\xff:1", "e:1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		epoch, seq, err := protocol.ParseSSEID(id)
		if err != nil {
			if !errors.Is(err, protocol.ErrBadEventID) {
				t.Fatalf("error %v is not ErrBadEventID", err)
			}
			return
		}
		if epoch == "" || !strings.HasPrefix(id, epoch+":") {
			t.Fatalf("%q parsed to epoch %q", id, epoch)
		}
		if n, perr := strconv.ParseUint(id[len(epoch)+1:], 10, 64); perr != nil || n != seq {
			t.Fatalf("%q parsed to seq %d", id, seq)
		}
		line := string(protocol.AppendSSEID(nil, epoch, seq))
		again := strings.TrimSuffix(strings.TrimPrefix(line, "id: "), "\n")
		e2, s2, err := protocol.ParseSSEID(again)
		if err != nil || e2 != epoch || s2 != seq {
			t.Fatalf("id line %q for (%q, %d) parses to (%q, %d, %v)", line, epoch, seq, e2, s2, err)
		}
	})
}
