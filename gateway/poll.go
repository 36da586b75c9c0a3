package gateway

import "net/http"

// servePoll serves long polling. TODO(poll): being written.
func (e *Engine) servePoll(w http.ResponseWriter, r *http.Request, route *Route) error {
	return writeError(w, http.StatusNotImplemented, "the long-poll transport is not available in this build")
}
