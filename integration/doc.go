// Package integration holds the end-to-end tests of push_gateway: they build
// the real caddy binary from ../cmd/caddy once per run (TestMain), start it as a
// separate process with a Caddyfile, and talk to it over loopback sockets only,
// as clients, publishers and operators would.
//
// Everything lives in _test.go files; this package has no API. Goroutines are
// owned by the tests: every client's reader goroutine ends when its socket is
// closed, which each test's Cleanup does. Every caddy process is stopped by the
// Cleanup of the test that started it.
//
// Run with:
//
//	go test ./integration/ -count=1 -timeout 15m
//
// -short skips the scale tests. PG_CADDY_BIN=<path> runs an already built
// binary instead of building ../cmd/caddy. Ports come from below the
// kernel's ephemeral range and are free on every address (see freePorts);
// the scale tests hold up to 2,000 sockets, so TestMain raises the
// open-files soft limit to the hard one (the caddy children inherit it).
package integration
