package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDropKeyEndsEveryTransport: DELETE /push_gateway/keys/K ends every
// local connection following K, whatever its transport (CONTRACT "Admin
// routes"): a native WebSocket and a Socket.IO connection close with 4401,
// an SSE stream ends after a key_dropped comment. A follower of another key
// on the same node is untouched.
func TestDropKeyEndsEveryTransport(t *testing.T) {
	n := startCaddy(t, caddyfile(nil, []string{"transports websocket sse poll socketio"}))
	key, other := testKey(t, "k"), testKey(t, "other")

	native := Dial(t, n.WSURL(route))
	native.Register(t, key)
	sio := sioDial(t, n, "/realtime/")
	sio.Send(t, `42/realtime,["register",{"key":"`+key+`"}]`)
	sioExpect(t, sio, `42/realtime,["update",""]`)
	sse := openSSE(t, sseHTTP1, sseURL(n.HTTP, key, ""), nil)
	sse.event(t) // the stream's position
	bystander := Dial(t, n.WSURL(route))
	bystander.Register(t, other)
	eventually(t, msgTimeout, func() (bool, string) {
		_, info, b := n.Key(t, key)
		return info.Followers == 3, "key info " + string(b)
	})

	if status, b := n.AdminDo(t, http.MethodDelete, "/push_gateway/keys/"+key, "", nil); status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", status, b)
	}
	native.ExpectClose(t, 4401, msgTimeout)
	if _, err := sioTryNext(sio, msgTimeout); err == nil || !strings.Contains(err.Error(), "closed with 4401") {
		t.Fatalf("socket.io follower: %v, want closed with 4401", err)
	}
	sawReason := false
	deadline := time.After(msgTimeout)
	for ended := false; !ended; {
		select {
		case l, ok := <-sse.lines:
			if !ok || l.err != nil {
				ended = true
				break
			}
			sawReason = sawReason || l.text == ": key_dropped"
		case <-deadline:
			t.Fatal("the SSE stream did not end")
		}
	}
	if !sawReason {
		t.Error("the SSE stream ended without its key_dropped comment")
	}

	n.PublishOK(t, other, "", `"ok"`)
	bystander.ExpectMessage(t, other, 1)
}
