package main

// track is one client's position in one key's stream and what it made of
// it. The client owns it: only its session goroutine touches it, except
// for last, which the catch-up check reads atomically through client.
type track struct {
	key       int
	epoch     string // "" until registered
	last      uint64 // newest seq handled (or pulled with a resync)
	lost      uint64 // seqs skipped
	dups      uint64 // seqs received again
	resyncs   uint64
	badResync uint64 // resyncs the history should have covered
	epochBad  uint64 // a new epoch named without a resync
	received  uint64 // messages handled
}

// registered handles the answer to a register. The first one fixes where
// the client started following: nothing before it is owed. A later one
// (a resume) changes nothing: the replay or a resync follows it.
func (t *track) registered(epoch string, seq uint64, first bool) {
	if first {
		t.epoch, t.last = epoch, seq
	}
}

// message handles message seq of the track's key in epoch.
func (t *track) message(epoch string, seq uint64) {
	if epoch != t.epoch {
		t.epochBad++
		t.epoch = epoch
	}
	switch {
	case seq <= t.last:
		t.dups++
		return
	case seq > t.last+1:
		t.lost += seq - t.last - 1
	}
	t.last = seq
	t.received++
}

// resync handles a resync to seq in epoch: the application pulls full
// state as new as seq. It is allowed when the epoch changed or when the
// seqs after the position (up to seq) exceed history, the messages a key
// keeps: then the history could not reach back.
func (t *track) resync(epoch string, seq uint64, history int) {
	t.resyncs++
	if epoch == t.epoch && seq >= t.last && seq-t.last <= uint64(history) {
		t.badResync++
	}
	t.epoch, t.last = epoch, seq
}
