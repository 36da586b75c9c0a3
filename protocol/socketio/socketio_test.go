package socketio

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestParseEIO(t *testing.T) {
	tests := []struct {
		in      string
		want    EIOPacket
		wantErr error
	}{
		{in: "2", want: EIOPacket{Type: EIOPing, Data: []byte{}}},
		{in: "3", want: EIOPacket{Type: EIOPong, Data: []byte{}}},
		{in: "2probe", want: EIOPacket{Type: EIOPing, Data: []byte("probe")}},
		{in: `40/realtime,`, want: EIOPacket{Type: EIOMessage, Data: []byte("0/realtime,")}},
		{in: "6", want: EIOPacket{Type: EIONoop, Data: []byte{}}},
		{in: "", wantErr: ErrEmpty},
		{in: "7", wantErr: ErrType},
		{in: "b4AQID", wantErr: ErrType},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseEIO([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.Type != tt.want.Type || !bytes.Equal(got.Data, tt.want.Data) {
				t.Fatalf("got %c %q, want %c %q", got.Type, got.Data, tt.want.Type, tt.want.Data)
			}
			if out := AppendEIO(nil, got); string(out) != tt.in {
				t.Fatalf("re-encoded %q, want %q", out, tt.in)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in        string
		want      Packet
		canonical string // "" means the input itself
		wantErr   error
	}{
		{in: "0", want: Packet{Type: Connect, Namespace: "/"}},
		{in: `0{"token":"x"}`, want: Packet{Type: Connect, Namespace: "/", Data: []byte(`{"token":"x"}`)}},
		{in: "0/realtime,", want: Packet{Type: Connect, Namespace: "/realtime"}},
		{in: "0/realtime", want: Packet{Type: Connect, Namespace: "/realtime"}, canonical: "0/realtime,"},
		{in: `0/p/realtime,{"a":1}`, want: Packet{Type: Connect, Namespace: "/p/realtime", Data: []byte(`{"a":1}`)}},
		{in: "1/realtime,", want: Packet{Type: Disconnect, Namespace: "/realtime"}},
		{in: `2["register",{"sdk_key":"K"}]`, want: Packet{Type: Event, Namespace: "/", Data: []byte(`["register",{"sdk_key":"K"}]`)}},
		{in: `2/realtime,7["register",{"key":"K"}]`, want: Packet{Type: Event, Namespace: "/realtime", HasID: true, ID: 7, Data: []byte(`["register",{"key":"K"}]`)}},
		{in: `2/,["a"]`, want: Packet{Type: Event, Namespace: "/", Data: []byte(`["a"]`)}, canonical: `2["a"]`},
		{in: `2 [ "a" ]`, want: Packet{Type: Event, Namespace: "/", Data: []byte(` [ "a" ]`)}},
		{in: `3/realtime,12[]`, want: Packet{Type: Ack, Namespace: "/realtime", HasID: true, ID: 12, Data: []byte(`[]`)}},
		{in: `4{"message":"no"}`, want: Packet{Type: ConnectError, Namespace: "/", Data: []byte(`{"message":"no"}`)}},
		{in: `51-["a",{"_placeholder":true,"num":0}]`, want: Packet{Type: BinaryEvent, Attachments: 1, Namespace: "/", Data: []byte(`["a",{"_placeholder":true,"num":0}]`)}},
		{in: `61-/x,3[{"_placeholder":true,"num":0}]`, want: Packet{Type: BinaryAck, Attachments: 1, Namespace: "/x", HasID: true, ID: 3, Data: []byte(`[{"_placeholder":true,"num":0}]`)}},

		{in: "", wantErr: ErrEmpty},
		{in: "7", wantErr: ErrType},
		{in: "x", wantErr: ErrType},
		{in: `5["a"]`, wantErr: ErrAttachment},
		{in: `501-["a"]`, wantErr: ErrAttachment},
		{in: `51["a"]`, wantErr: ErrAttachment},
		{in: "0/bad\x01ns,", wantErr: ErrNamespace},
		{in: "0/,", want: Packet{Type: Connect, Namespace: "/"}, canonical: "0"},
		{in: `207["a"]`, wantErr: ErrAckID},
		{in: `299999999999999999999["a"]`, wantErr: ErrAckID},
		{in: `2`, wantErr: ErrPayload},
		{in: `2[]`, wantErr: ErrPayload},
		{in: `2[1]`, wantErr: ErrPayload},
		{in: `2{"a":1}`, wantErr: ErrPayload},
		{in: `2["a"`, wantErr: ErrPayload},
		{in: `0[]`, wantErr: ErrPayload},
		{in: `1/realtime,{}`, wantErr: ErrPayload},
		{in: `3{}`, wantErr: ErrPayload},
		{in: `0/realtime,x`, wantErr: ErrPayload},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !samePacket(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			want := tt.canonical
			if want == "" {
				want = tt.in
			}
			if out := Append(nil, got); string(out) != want {
				t.Fatalf("re-encoded %q, want %q", out, want)
			}
		})
	}
}

func TestEventArgs(t *testing.T) {
	name, args, err := EventArgs([]byte(`["register",{"sdk_key":"K"},2]`))
	if err != nil || name != "register" || len(args) != 2 || string(args[0]) != `{"sdk_key":"K"}` {
		t.Fatalf("got %q %q %v", name, args, err)
	}
	if _, _, err := EventArgs([]byte(`[]`)); !errors.Is(err, ErrPayload) {
		t.Fatalf("empty array: err = %v", err)
	}
}

func TestAppendOpen(t *testing.T) {
	got := AppendOpen(nil, "abc", nil, 25*time.Second, 20*time.Second, 1000000)
	want := `0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	got = AppendOpen(nil, "abc", []string{"websocket"}, time.Second, time.Second, 1)
	if want := `0{"sid":"abc","upgrades":["websocket"],"pingInterval":1000,"pingTimeout":1000,"maxPayload":1}`; string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestAppendEventPrefix(t *testing.T) {
	for ns, want := range map[string]string{"/": "42", "": "42", "/realtime": "42/realtime,"} {
		if got := AppendEventPrefix(nil, ns); string(got) != want {
			t.Errorf("%q: got %q, want %q", ns, got, want)
		}
	}
}

func samePacket(a, b Packet) bool {
	return a.Type == b.Type && a.Attachments == b.Attachments && a.Namespace == b.Namespace &&
		a.HasID == b.HasID && a.ID == b.ID && bytes.Equal(a.Data, b.Data)
}

func FuzzParseEIO(f *testing.F) {
	for _, s := range []string{"", "2", "3probe", "40/realtime,", `42["a"]`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseEIO(b)
		if err != nil {
			return
		}
		if out := AppendEIO(nil, p); !bytes.Equal(out, b) {
			t.Fatalf("re-encoded %q, want %q", out, b)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "0/realtime,", `0{"a":1}`, "1/x,", `2/realtime,7["register",{"key":"K"}]`,
		`3/a,1[]`, `4"no"`, `51-["a",{"_placeholder":true,"num":0}]`, `61-/x,3[1]`, `2/,["a"]`, "0/realtime"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		out := Append(nil, p)
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded %q (from %q) does not parse: %v", out, b, err)
		}
		if !samePacket(p, q) {
			t.Fatalf("re-encoded %q parses to %+v, want %+v", out, q, p)
		}
		if again := Append(nil, q); !bytes.Equal(again, out) {
			t.Fatalf("canonical form not stable: %q then %q", out, again)
		}
		if p.Type == Event {
			if _, _, err := EventArgs(p.Data); err != nil {
				t.Fatalf("accepted event %q has no name: %v", b, err)
			}
		}
	})
}
