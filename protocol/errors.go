package protocol

// Error codes sent in {"type":"error","code":...} messages.
const (
	// CodeBadRequest: the client's message is malformed (close 4400).
	CodeBadRequest = "bad_request"
)

// Error is a client message the parser refused. Message is written for the
// client's developer and is sent as is in the error message before the
// gateway closes the connection.
type Error struct {
	Code    string
	Message string
	err     error // cause, e.g. hub.ErrBadKey
}

// Error returns Message, so that err.Error() is fit for an error frame.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause, so that errors.Is(err, hub.ErrBadKey) works.
func (e *Error) Unwrap() error { return e.err }

func badRequest(msg string) *Error { return &Error{Code: CodeBadRequest, Message: msg} }
