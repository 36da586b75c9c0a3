package hub

// coverLocked applies the resume rule: it reports whether the history of ks
// covers everything after since in epoch, and the ring index of the first
// message to hand out. The caller holds the key's shard lock.
//
// A since from another epoch cannot be trusted, since 0 included: that epoch
// may have held messages this one never saw. Only a client that names no
// epoch and has nothing (since 0) may take the history as is. A since beyond
// the newest seq is a client's error or another node's history: resync.
func (ks *keyState) coverLocked(since uint64, epoch string) (from int, ok bool) {
	first := ks.seq - uint64(ks.hist.n) // history holds first+1 .. ks.seq
	if epoch != ks.epoch && (since != 0 || epoch != "") {
		return 0, false
	}
	if since < first || since > ks.seq {
		return 0, false
	}
	return int(since - first), true
}

// ReadResult is a key's history after a client's position.
type ReadResult struct {
	Epoch    string     // the key's epoch
	Seq      uint64     // the key's newest seq
	Messages []*Message // held messages after since, in seq order; nil on resync
	Resync   bool       // history cannot cover since in that epoch
}

// Read returns what a client at (since, epoch) is missing of key, by the
// same rule Follow applies: the messages after since, or Resync. It creates
// the key's state when absent, so that the client learns an epoch to resume
// from. Transports without a standing connection (long poll) use it.
func (h *Hub) Read(key string, since uint64, epoch string) (ReadResult, error) {
	if err := ValidKey(key); err != nil {
		return ReadResult{}, err
	}
	if h.closed.Load() {
		return ReadResult{}, ErrClosed
	}
	sh := h.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := h.keyStateLocked(sh, key)
	if ks.mir != nil && !ks.mir.synced {
		var err error
		if ks, err = h.waitSyncedLocked(sh, ks); err != nil {
			return ReadResult{}, err
		}
	}
	defer h.deleteIfEmptyLocked(sh, ks)
	r := ReadResult{Epoch: ks.epoch, Seq: ks.seq}
	from, ok := ks.coverLocked(since, epoch)
	if !ok {
		r.Resync = true
		return r, nil
	}
	if n := ks.hist.n - from; n > 0 {
		r.Messages = make([]*Message, 0, n)
		for i := from; i < ks.hist.n; i++ {
			r.Messages = append(r.Messages, ks.hist.at(i))
		}
	}
	return r, nil
}
