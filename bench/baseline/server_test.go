package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// startBaseline serves the client and admin endpoints on test servers.
func startBaseline(tb testing.TB) (clientSrv, adminSrv *httptest.Server) {
	tb.Helper()
	h := newHub()
	conns := &counter{}
	clientSrv = httptest.NewServer(&server{hub: h, queue: 16, conns: conns})
	adminSrv = httptest.NewServer((&admin{hub: h, conns: conns}).routes())
	tb.Cleanup(clientSrv.Close)
	tb.Cleanup(adminSrv.Close)
	return clientSrv, adminSrv
}

// readMsg reads one server message with a deadline.
func readMsg(tb testing.TB, ws *websocket.Conn) serverMsg {
	tb.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m serverMsg
	if err := ws.ReadJSON(&m); err != nil {
		tb.Fatalf("reading: %v", err)
	}
	return m
}

func TestRegisterThenBroadcast(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{name: "object", data: `{"t":123}`},
		{name: "string", data: `""`},
	}
	client, admin := startBaseline(t)
	url := "ws" + strings.TrimPrefix(client.URL, "http") + "/realtime?sdk_key=K"
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if m := readMsg(t, ws); m.Type != "registered" || m.SDKKey != "K" || m.Seq != 0 {
		t.Fatalf("first message = %+v, want registered K seq 0", m)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(admin.URL+"/push_gateway/publish", "application/json",
				strings.NewReader(`{"sdk_key":"K","data":`+tt.data+`}`))
			if err != nil {
				t.Fatal(err)
			}
			var ans struct {
				Published []published `json:"published"`
			}
			err = json.NewDecoder(resp.Body).Decode(&ans)
			resp.Body.Close()
			if err != nil || len(ans.Published) != 1 || ans.Published[0].LocalReceivers != 1 {
				t.Fatalf("publish answer %+v, err %v", ans, err)
			}
			m := readMsg(t, ws)
			if m.Type != "message" || m.Seq != int64(i+1) || string(m.Data) != tt.data || m.Event != "update" {
				t.Fatalf("got %+v, want message seq %d data %s", m, i+1, tt.data)
			}
		})
	}
}

func TestStatsCountsConnections(t *testing.T) {
	client, admin := startBaseline(t)
	url := "ws" + strings.TrimPrefix(client.URL, "http") + "/realtime?sdk_key=K"
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	readMsg(t, ws) // registered: the connection is counted by now
	resp, err := http.Get(admin.URL + "/push_gateway/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Connections struct{ Total int } `json:"connections"`
		Goroutines  int                 `json:"goroutines"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Connections.Total != 1 || st.Goroutines == 0 {
		t.Fatalf("stats = %+v, want 1 connection and goroutines", st)
	}
}
