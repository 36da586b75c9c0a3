package redis

import (
	"errors"
	"strconv"
	"strings"

	"github.com/pushgateway/push_gateway/hub"
)

// Pub/sub payloads, as the scripts in scripts.go build them:
//
//	m\n<epoch>\n<seq>\n<ts>\n<event>\n<data>   a published message
//	d\n<epoch>                                  the key was dropped (epoch: the one it had, may be empty)
//
// Epochs, seqs, timestamps and events hold no newline (the hub validates
// events; epochs are ours), so the first five newlines split the fields and
// data, last, may hold anything.

// payload kinds.
const (
	kindMessage = 'm'
	kindDrop    = 'd'
)

// errBadPayload is returned for a pub/sub payload this package did not
// write.
var errBadPayload = errors.New("malformed pub/sub payload")

// parsePayload reads a payload received on key's channel. drop is true for
// a drop notice, whose entry carries only the dropped epoch.
func parsePayload(key, p string) (e hub.Entry, drop bool, err error) {
	kind, rest, ok := strings.Cut(p, "\n")
	if !ok || len(kind) != 1 {
		return e, false, errBadPayload
	}
	switch kind[0] {
	case kindDrop:
		// The epoch the state had, if any: a node drops only that.
		return hub.Entry{Key: key, Epoch: rest}, true, nil
	case kindMessage:
	default:
		return e, false, errBadPayload
	}
	var f [4]string
	for i := range f {
		if f[i], rest, ok = strings.Cut(rest, "\n"); !ok {
			return e, false, errBadPayload
		}
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || seq == 0 || f[0] == "" {
		return e, false, errBadPayload
	}
	ts, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return e, false, errBadPayload
	}
	return hub.Entry{Key: key, Epoch: f[0], Seq: seq, Event: f[3], Data: []byte(rest), TS: ts}, false, nil
}
