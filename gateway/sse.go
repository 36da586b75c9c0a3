package gateway

import "net/http"

// serveSSE serves Server-Sent Events. TODO(sse): being written.
func (e *Engine) serveSSE(w http.ResponseWriter, r *http.Request, route *Route) error {
	return writeError(w, http.StatusNotImplemented, "the sse transport is not available in this build")
}
