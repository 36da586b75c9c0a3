// Command caddy is Caddy with the push_gateway module and Caddy's standard
// modules compiled in. It is the binary the integration tests and benchmarks
// run; release builds use xcaddy (see ../../xcaddy).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/pushgateway/push_gateway/module"
)

func main() {
	caddycmd.Main()
}
