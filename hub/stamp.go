package hub

import "time"

// Publish→write latency. A message carries the time this node started
// fanning it out (Unix nanoseconds, read once per message), but only while
// it does: applyLocked sets the stamp before its follower loop and clears it
// after, both under the key's shard lock. Deliver runs under that lock too,
// so a follower sees the stamp on live deliveries and 0 on replays (Follow
// replays history under the same lock, never during a fan-out): a resumed
// client's minutes-old history is not mistaken for lag.
//
// The wall clock, not a monotonic one, so that the netpoll writer and the
// shedding monitor, which stamp with time.Now().UnixNano() too, can compare
// against it without sharing a clock value; a clock step shows as one
// batch of skewed samples (negative waits are clamped to 0 by the reader).

// LiveStamp returns the time this node began fanning m out (Unix ns) while
// the hub delivers it live, and 0 otherwise (replays, or outside Deliver).
// Only Follower.Deliver may call it: the stamp is guarded by the shard lock
// Deliver is called under.
func (m *Message) LiveStamp() int64 { return m.live }

// liveStamp returns the stamp for a fan-out to n followers: no clock read
// when nobody follows the key.
func liveStamp(n int) int64 {
	if n == 0 {
		return 0
	}
	return time.Now().UnixNano()
}
