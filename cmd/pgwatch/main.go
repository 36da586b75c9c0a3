// Command pgwatch follows SDK keys on a push_gateway WebSocket endpoint and
// prints every message the gateway sends, one JSON object per line. It is
// the README's way to watch a gateway without websocat or a browser.
//
//	go run ./cmd/pgwatch [flags] KEY...
//	go run ./cmd/pgwatch -url ws://localhost:8080/realtime -n 1 my-sdk-key
//
// It exits 0 after -n messages (0: never) or when the gateway closes with
// 1000, and 1 on any other close code, error or -timeout.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func main() {
	var (
		endpoint = flag.String("url", "ws://localhost:8080/realtime", "the gateway's WebSocket endpoint (ws:// or wss://)")
		count    = flag.Int("n", 0, "exit after this many messages of type message (0: run until closed)")
		since    = flag.Int64("since", -1, "resume after this seq (one key only; -1: from now)")
		epoch    = flag.String("epoch", "", "the epoch -since belongs to")
		timeout  = flag.Duration("timeout", 0, "give up after this long (0: never)")
		insecure = flag.Bool("insecure", false, "skip TLS certificate verification (e.g. Caddy's `tls internal`)")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: pgwatch [flags] KEY...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	target, err := watchURL(*endpoint, flag.Args(), *since, *epoch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgwatch:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	dialer := ws.Dialer{}
	if *insecure {
		dialer.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	}
	if err := watch(ctx, dialer, target, *count, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pgwatch:", err)
		os.Exit(1)
	}
}

// watchURL puts the keys (and a resume position) on the endpoint's query,
// the contract's URL form of `register`.
func watchURL(endpoint string, keys []string, since int64, epoch string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("parsing -url: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return "", fmt.Errorf("-url %q: want ws:// or wss://", endpoint)
	}
	q := u.Query()
	for _, k := range keys {
		q.Add("sdk_key", k)
	}
	if since >= 0 {
		if len(keys) != 1 {
			return "", errors.New("-since needs exactly one key")
		}
		q.Set("since", strconv.FormatInt(since, 10))
		q.Set("epoch", epoch)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// watch connects and copies every text message to out until count messages
// of type "message" arrived, the gateway closes, or ctx ends.
func watch(ctx context.Context, dialer ws.Dialer, target string, count int, out io.Writer) error {
	conn, br, _, err := dialer.Dial(ctx, target)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", target, err)
	}
	defer conn.Close()
	// ctx ending unblocks the read below
	go func() {
		<-ctx.Done()
		_ = conn.SetReadDeadline(time.Now())
	}()

	// The gateway may send `registered` right behind the handshake: those
	// bytes sit in br.
	var rw io.ReadWriter = conn
	if br != nil {
		rw = struct {
			io.Reader
			io.Writer
		}{br, conn}
		defer ws.PutReader(br)
	}

	seen := 0
	for {
		data, op, err := wsutil.ReadServerData(rw)
		if err != nil {
			var closed wsutil.ClosedError
			switch {
			case errors.As(err, &closed) && closed.Code == ws.StatusNormalClosure:
				return nil
			case errors.As(err, &closed):
				return fmt.Errorf("gateway closed the connection: %d %s", closed.Code, closed.Reason)
			case ctx.Err() != nil:
				return context.Cause(ctx)
			default:
				return fmt.Errorf("reading: %w", err)
			}
		}
		if op != ws.OpText {
			continue
		}
		if _, err := fmt.Fprintf(out, "%s\n", data); err != nil {
			return err
		}
		if isMessage(data) {
			seen++
			if count > 0 && seen >= count {
				_ = wsutil.WriteClientMessage(conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
				return nil
			}
		}
	}
}

// isMessage reports whether a gateway frame is a published message, without
// decoding the publisher's data.
func isMessage(frame []byte) bool {
	var head struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(frame, &head) == nil && head.Type == "message"
}
