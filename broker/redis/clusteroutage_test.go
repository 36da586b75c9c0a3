package redis

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestClusterNodeOutage kills one master of three: keys on the other two
// keep working (the broker's pub/sub connection moves if it was on the
// dead one), and when the node comes back empty its keys get new epochs.
func TestClusterNodeOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster failure detection takes seconds")
	}
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	b, sink := newBroker(t, c.URL(), 10, 0)
	keys := make([]string, 30)
	epochs := map[string]string{}
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		b.Track(keys[i])
	}
	for _, k := range keys {
		epochs[k] = sink.waitSync(t, k, 1).Epoch
	}
	victim := c.Nodes[1]
	victim.Kill(t)

	// Every key either publishes or fails with ErrUnavailable; the keys of
	// the live nodes must publish, and their message must come through.
	deadline := time.Now().Add(30 * time.Second)
	var live []string
	for len(live) == 0 || len(live) == len(keys) {
		live = live[:0]
		for _, k := range keys {
			if _, err := b.Publish(ctxT(t), k, "update", []byte("during")); err == nil {
				live = append(live, k)
			} else if !isUnavailable(err) {
				t.Fatalf("Publish(%s): %v", k, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d keys publish with one node of three down", len(live), len(keys))
		}
	}
	for _, k := range live {
		// The message comes live (Apply) or, when the pub/sub connection
		// was re-established meanwhile, in the refill that follows (Sync).
		sink.waitUntil(t, "message of "+k, func() bool {
			for _, e := range sink.applies {
				if e.Key == k && e.Epoch == epochs[k] {
					return true
				}
			}
			for _, s := range sink.syncsOfLocked(k) {
				for _, e := range s.History {
					if e.Epoch == epochs[k] {
						return true
					}
				}
			}
			return false
		})
	}

	victim.Restart(t) // empty, with its slots
	c.WaitOK(t)
	for _, k := range keys {
		if e := publishRetry(t, b, k); e.Epoch != epochs[k] && e.Seq != 1 {
			t.Fatalf("key %s: %+v, want seq 1 in a new epoch or the old epoch %q", k, e, epochs[k])
		}
	}
	// Messages published on the restarted node reach this node too.
	sink.waitUntil(t, "every key's message after the restart", func() bool {
		n := 0
		for _, e := range sink.applies {
			if string(e.Data) == "after" {
				n++
			}
		}
		return n == len(keys)
	})
}

func isUnavailable(err error) bool {
	return err != nil && errors.Is(err, hub.ErrUnavailable)
}

// publishRetry publishes until Redis takes it (a cluster settling).
func publishRetry(tb testing.TB, b *Broker, key string) hub.Entry {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		e, err := b.Publish(ctxT(tb), key, "update", []byte("after"))
		if err == nil {
			return e
		}
		if time.Now().After(deadline) {
			tb.Fatalf("Publish(%s): %v", key, err)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the cluster: nothing to wait on
	}
}
