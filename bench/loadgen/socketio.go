package main

import "bytes"

// packetKind is what a Socket.IO client does with a server's text message.
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
	pktUpdate                         // a live message: `update` with data
)

// sioPacket is a classified server message. For pktUpdate, seq is the
// data's "i" and stamp its "t" (Unix ns), each valid only when its has* is
// set.
type sioPacket struct {
	kind     packetKind
	seq      int64
	stamp    int64
	hasSeq   bool
	hasStamp bool
}

var updateEvent = []byte(`["update",`)

// classify reads an Engine.IO text message to a client of namespace ns
// ("/realtime", or "/" which Socket.IO leaves out of its packets).
func classify(msg []byte, ns string) sioPacket {
	if len(msg) == 0 {
		return sioPacket{}
	}
	switch msg[0] {
	case '0':
		return sioPacket{kind: pktOpen}
	case '1':
		return sioPacket{kind: pktClose}
	case '2':
		return sioPacket{kind: pktPing}
	case '4':
	default:
		return sioPacket{}
	}
	// A Socket.IO packet: type, then "<ns>," unless ns is "/".
	if len(msg) < 2 {
		return sioPacket{}
	}
	typ, rest := msg[1], msg[2:]
	if ns != "/" && ns != "" {
		if !bytes.HasPrefix(rest, []byte(ns)) {
			return sioPacket{}
		}
		rest = rest[len(ns):]
		switch {
		case len(rest) > 0 && rest[0] == ',':
			rest = rest[1:]
		case len(rest) == 0 && typ == '1':
			// "41/realtime" without the comma.
		default:
			return sioPacket{} // another namespace sharing the prefix
		}
	}
	switch typ {
	case '0':
		return sioPacket{kind: pktConnected}
	case '1':
		return sioPacket{kind: pktDisconnect}
	case '4':
		return sioPacket{kind: pktConnectError}
	case '2':
	default:
		return sioPacket{}
	}
	arg, ok := bytes.CutPrefix(rest, updateEvent)
	if !ok {
		return sioPacket{}
	}
	arg = arg[skipSpace(arg, 0):]
	if bytes.HasPrefix(arg, []byte(`""`)) {
		return sioPacket{kind: pktRegistered}
	}
	p := sioPacket{kind: pktUpdate}
	p.seq, p.hasSeq = intField(arg, "i")
	p.stamp, p.hasStamp = intField(arg, "t")
	return p
}

// sioFrames are the masked frames a Socket.IO client sends, built once per
// process (reusing a mask is harmless for a load generator).
type sioFrames struct {
	join []byte // "40<ns>,"
	pong []byte // "3"
}

func newSIOFrames(ns string) *sioFrames {
	return &sioFrames{
		join: clientFrame(opText, []byte("40"+nsPrefix(ns))),
		pong: clientFrame(opText, []byte("3")),
	}
}

// nsPrefix is what precedes a packet's data for namespace ns.
func nsPrefix(ns string) string {
	if ns == "/" || ns == "" {
		return ""
	}
	return ns + ","
}

// registerFrame is the register event for key.
func registerFrame(ns, key string) []byte {
	return clientFrame(opText, []byte(`42`+nsPrefix(ns)+`["register",{"sdk_key":"`+key+`"}]`))
}
