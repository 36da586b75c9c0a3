// Package protocol is push_gateway's native WebSocket protocol: the parser
// of client messages (register, unregister, ping, ack), the encoders of
// gateway messages (registered, message, resync, pong, error), the server's
// WebSocket frames and the close codes of the contract.
//
// Encoders append to a caller's buffer and use neither reflection nor fmt:
// AppendMessage runs once per published message (through the Native
// format, shared by every native follower), ParseClient once per client
// message.
//
// The package starts no goroutines and holds no state besides the Native
// format registered at init; every function is goroutine-safe. Returned
// frames that are documented as shared must not be modified.
package protocol
