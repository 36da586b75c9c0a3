package integration

import (
	"testing"

	"github.com/pushgateway/push_gateway/internal/redistest"
)

// TestContractInClusterMode runs the contract's tests again with every node
// in cluster mode on a real Redis: the native protocol, close codes, SSE,
// long poll, Socket.IO, the admin API, publish confirm and DELETE must
// behave the same when seqs, epochs and history live in Redis.
func TestContractInClusterMode(t *testing.T) {
	srv := redistest.Start(t)
	clusterBroker = srv.URL()
	t.Cleanup(func() { clusterBroker = "" })
	tests := []struct {
		name string
		run  func(*testing.T)
	}{
		{name: "native protocol", run: TestNativeProtocol},
		{name: "heartbeat and idle", run: TestHeartbeatAndIdle},
		{name: "close codes", run: TestCloseCodes},
		{name: "sse", run: TestSSE},
		{name: "poll", run: TestPoll},
		{name: "socket.io", run: TestSocketIOGoClient},
		{name: "admin publish", run: TestAdminPublish},
		{name: "admin inspect", run: TestAdminInspect},
		{name: "publish confirm", run: TestPublishConfirm},
		{name: "drop key", run: TestDropKeyEndsEveryTransport},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}
