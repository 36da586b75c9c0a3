package integration

import (
	"slices"
	"strings"
)

// clusterBroker, when set, is the Redis URL every node caddyfile builds
// shares: TestContractInClusterMode runs single-node tests in cluster mode
// with it. Tests do not run in parallel, so a package variable will do.
var clusterBroker string

// route is the path the test Caddyfiles serve the gateway on.
const route = "/realtime"

// caddyfile builds the Caddyfile most tests run: a plain-HTTP site on
// {$PORT} whose /realtime* routes go to push_gateway (options in routeOpts,
// one per line) and everything else to a reverse_proxy, as in the contract's
// example, proving the directive needs no `order` line. globalOpts go into the global push_gateway
// block, which is left out when empty.
func caddyfile(globalOpts, routeOpts []string) string {
	if clusterBroker != "" {
		globalOpts = append(slices.Clone(globalOpts), "broker redis "+clusterBroker)
	}
	var b strings.Builder
	b.WriteString("{")
	b.WriteString(globalOptions)
	if len(globalOpts) > 0 {
		b.WriteString("\tpush_gateway {\n")
		for _, o := range globalOpts {
			b.WriteString("\t\t" + o + "\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n\nhttp://127.0.0.1:{$PORT} {\n")
	writeDirective(&b, routeOpts)
	b.WriteString(fallback)
	return b.String()
}

// tlsCaddyfile is caddyfile's TLS twin: an https site with `tls internal`
// on {$HTTPS_PORT} (HTTP/2 enabled, as Caddy does by default).
func tlsCaddyfile(routeOpts []string) string {
	var b strings.Builder
	b.WriteString("{")
	b.WriteString(globalOptions)
	b.WriteString("\tauto_https disable_redirects\n}\n\nhttps://127.0.0.1:{$HTTPS_PORT} {\n\ttls internal\n")
	writeDirective(&b, routeOpts)
	b.WriteString(fallback)
	return b.String()
}

func writeDirective(b *strings.Builder, routeOpts []string) {
	if len(routeOpts) == 0 {
		b.WriteString("\tpush_gateway " + route + "*\n")
		return
	}
	b.WriteString("\tpush_gateway " + route + "* {\n")
	for _, o := range routeOpts {
		b.WriteString("\t\t" + o + "\n")
	}
	b.WriteString("\t}\n")
}

// fallback sends what push_gateway does not serve to a toggle backend; none
// listens on the discard port, which only matters to requests no test makes.
const fallback = "\treverse_proxy 127.0.0.1:9\n}\n"
