package protocol

// Close codes of the contract, in one place. Transports send them in a
// close frame (CloseFrame), usually after an error message (AppendError).
const (
	// CloseNormal: the client asked to close, or the gateway is done.
	CloseNormal uint16 = 1000
	// CloseGoingAway: the gateway is shutting down; reconnect elsewhere.
	CloseGoingAway uint16 = 1001
	// CloseProtocolError: a WebSocket protocol violation (e.g. an unmasked
	// client frame).
	CloseProtocolError uint16 = 1002
	// CloseInvalidPayload: a text frame that is not UTF-8.
	CloseInvalidPayload uint16 = 1007
	// CloseTooLarge: a message larger than max_message_size.
	CloseTooLarge uint16 = 1009
	// CloseMalformed: a message the parser refused (ParseClient error).
	CloseMalformed uint16 = 4400
	// CloseKeyRefused: an SDK key was refused or dropped by an operator.
	CloseKeyRefused uint16 = 4401
	// CloseIdleTimeout: nothing received for longer than idle_timeout.
	CloseIdleTimeout uint16 = 4408
	// CloseOverLimit: over a limit (keys per connection, slow consumer).
	CloseOverLimit uint16 = 4429
	// CloseOverloaded: the gateway refuses more work for now.
	CloseOverloaded uint16 = 4503
)
