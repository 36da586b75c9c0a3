package redis

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushgateway/push_gateway/hub"
	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestSentinelFailover kills the master: Sentinel promotes the replica,
// which holds the history, and the broker carries on in the same epoch with
// no gap once publishes succeed again.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a failover takes several seconds")
	}
	t.Parallel()
	master := redistest.Start(t)
	replica := redistest.Start(t, redistest.WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(master.Port)))
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(replica.Do(t, "INFO", "replication"), "master_link_status:up") {
		if time.Now().After(deadline) {
			t.Fatal("replica never linked")
		}
		time.Sleep(20 * time.Millisecond) // polling replication: nothing to wait on
	}
	sentinel := redistest.StartSentinel(t, master, "mm")
	b, sink := newBroker(t, sentinel.URL(), 100, 0)
	const key = "failover"
	b.Track(key)
	epoch := sink.waitSync(t, key, 1).Epoch
	for range 3 {
		publish(t, b, key, "x")
	}
	if got := master.Do(t, "WAIT", "1", "5000"); got != "1" {
		t.Fatalf("WAIT = %s replicas", got)
	}
	master.Kill(t)

	deadline = time.Now().Add(60 * time.Second)
	var e hub.Entry
	for {
		var err error
		e, err = b.Publish(ctxT(t), key, "update", []byte("y"))
		if err == nil {
			break
		}
		if !errors.Is(err, hub.ErrUnavailable) {
			t.Fatalf("Publish during failover: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // waiting for Sentinel: nothing to wait on
	}
	if e.Epoch != epoch || e.Seq != 4 {
		t.Fatalf("publish after failover = %+v, want seq 4 in %q", e, epoch)
	}
	sink.waitUntil(t, "seqs 1..4", func() bool { return len(sink.seenLocked(key, epoch)) == 4 })
	if got := sink.seen(key, epoch); !slices.Equal(got, seqs(1, 4)) {
		t.Fatalf("seqs %v", got)
	}
}
