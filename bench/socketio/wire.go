package main

import (
	"bytes"

	"github.com/pushgateway/push_gateway/bench/internal/clientfleet"
)

// packetKind is what a client does with a server's text message.
type packetKind int

const (
	pktOther        packetKind = iota // ignored
	pktOpen                           // Engine.IO open: connect to the namespace
	pktPing                           // Engine.IO ping: answer pong
	pktClose                          // Engine.IO close
	pktConnected                      // namespace connect acknowledged: register
	pktConnectError                   // namespace connect refused
	pktDisconnect                     // namespace disconnect
	pktRegistered                     // the `update ""` that answers register
	pktUpdate                         // a broadcast: `update` with the stamped data
)

// classify reads an Engine.IO text message of a client of namespace ns
// ("/realtime") and answers its kind; for pktUpdate also the data's
// broadcast index "i" and stamp "t" (unix ns).
func classify(msg []byte, ns string) (kind packetKind, idx uint64, stamp int64) {
	if len(msg) == 0 {
		return pktOther, 0, 0
	}
	switch msg[0] {
	case '0':
		return pktOpen, 0, 0
	case '1':
		return pktClose, 0, 0
	case '2':
		return pktPing, 0, 0
	case '4':
	default:
		return pktOther, 0, 0
	}
	// A Socket.IO packet: type, then "<ns>," unless ns is "/".
	if len(msg) < 2 {
		return pktOther, 0, 0
	}
	typ := msg[1]
	rest := msg[2:]
	if ns != "/" {
		var ok bool
		if rest, ok = bytes.CutPrefix(rest, []byte(ns+",")); !ok {
			if typ == '1' && bytes.Equal(rest, []byte(ns)) {
				return pktDisconnect, 0, 0
			}
			return pktOther, 0, 0
		}
	}
	switch typ {
	case '0':
		return pktConnected, 0, 0
	case '1':
		return pktDisconnect, 0, 0
	case '4':
		return pktConnectError, 0, 0
	case '2':
	default:
		return pktOther, 0, 0
	}
	arg, ok := bytes.CutPrefix(rest, []byte(`["update",`))
	if !ok {
		return pktOther, 0, 0
	}
	if bytes.Equal(arg, []byte(`""]`)) {
		return pktRegistered, 0, 0
	}
	i, ok1 := clientfleet.UintAfter(arg, `"i":`)
	t, ok2 := clientfleet.UintAfter(arg, `"t":`)
	if !ok1 || !ok2 {
		return pktOther, 0, 0
	}
	return pktUpdate, i, int64(t)
}
