package netpoll

import (
	"testing"
	"unsafe"
)

// TestConnSize guards the per-connection footprint: every idle connection
// is one Conn, so a field that pushes it past a malloc size class costs
// every connection the whole step (16 B at this size).
func TestConnSize(t *testing.T) {
	const want = 96
	if got := unsafe.Sizeof(Conn{}); got > want {
		t.Fatalf("unsafe.Sizeof(Conn{}) = %d, want ≤ %d: keep idle connections small (pack new fields, or put them behind a pointer an idle connection leaves nil)", got, want)
	}
}
