package gateway

import (
	"testing"
	"unsafe"
)

// TestSessionSize guards the per-connection footprint of a native
// WebSocket: every idle connection holds one wsSession, so a field that
// pushes it past its malloc size class (80) costs every connection 16 B.
func TestSessionSize(t *testing.T) {
	const want = 80
	if got := unsafe.Sizeof(wsSession{}); got > want {
		t.Fatalf("unsafe.Sizeof(wsSession{}) = %d, want ≤ %d: pack new fields or put them behind a pointer an idle session leaves nil", got, want)
	}
}
