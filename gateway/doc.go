// Package gateway serves push_gateway's client endpoint: it picks the
// transport a request asks for, upgrades WebSockets with gobwas/ws, hands the
// hijacked connection to the netpoll poller, and runs the native protocol
// (register, unregister, ping, ack) against the hub.
//
// An Engine is one process's gateway. It owns the hub, the poller and every
// connection, and is goroutine-safe. Its goroutines are the poller's, the
// hub's and one announcing the node to the registry (nodes.go), started by
// New and stopped by Shutdown (the announcer first: a stopping node leaves
// the node list before it closes its clients with 1001); a connection owns
// none. With shedding configured, one more goroutine, the monitor (shed.go),
// runs from New or the Configure that enables it until Shutdown or the
// Configure that disables it. In cluster mode the broker's goroutines
// belong to the broker.
//
// A WebSocket session is driven from two sides: netpoll workers call its
// OnRead and the timing wheel its OnTimer (decoding frames, heartbeats, idle
// timeouts), while publishers call its Deliver and Notify through the hub
// (queueing frames that were encoded once per message). Neither side blocks
// on the client.
//
// Every request opening a connection is first admitted against the node's
// limits (limits.go: connection caps, the upgrade rate); a connection that
// outlives its request keeps its admission until it ends.
package gateway
