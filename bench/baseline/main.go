package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "client endpoint address")
	adminAddr := flag.String("admin", "127.0.0.1:0", "admin endpoint address")
	queue := flag.Int("queue", 256, "per-connection send queue, in messages")
	bufSize := flag.Int("bufsize", 1024, "gorilla read and write buffer size (its chat example uses 1024)")
	ping := flag.Duration("ping", 0, "ping period; 0 sends no pings")
	flag.Parse()
	if err := run(*listen, *adminAddr, *queue, *bufSize, *ping); err != nil {
		log.Fatalf("baseline: %v", err)
	}
}

func run(listen, adminAddr string, queue, bufSize int, ping time.Duration) error {
	h := newHub()
	conns := &counter{}
	srv := &server{
		hub:        h,
		queue:      queue,
		pingPeriod: ping,
		conns:      conns,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  bufSize,
			WriteBufferSize: bufSize,
			CheckOrigin:     func(*http.Request) bool { return true },
		},
	}
	mux := http.NewServeMux()
	mux.Handle("/realtime", srv)
	mux.Handle("/realtime/", srv)

	cl, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening for clients: %w", err)
	}
	al, err := net.Listen("tcp", adminAddr)
	if err != nil {
		return fmt.Errorf("listening for admin: %w", err)
	}
	clientSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	adminSrv := &http.Server{Handler: (&admin{hub: h, conns: conns}).routes(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- clientSrv.Serve(cl) }()
	go func() { errc <- adminSrv.Serve(al) }()

	addrs, _ := json.Marshal(map[string]string{"client": cl.Addr().String(), "admin": al.Addr().String()})
	fmt.Println(string(addrs))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	}
	// Hijacked connections are not closed by Shutdown; the process exit
	// closes them, which is all a benchmark baseline needs.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = clientSrv.Shutdown(ctx)
	_ = adminSrv.Shutdown(ctx)
	return nil
}
