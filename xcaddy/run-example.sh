#!/usr/bin/env bash
# Builds Caddy with push_gateway (xcaddy/build.sh → bin/caddy) and runs an
# example from caddyfile-examples/ in the foreground.
#
#   xcaddy/run-example.sh [example]   default: plain
#
# The examples read their ports from the environment, e.g.
#   PORT=9000 ADMIN=localhost:2999 xcaddy/run-example.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
example="${1:-plain}"
config="$root/caddyfile-examples/$example/Caddyfile"
if [[ ! -f "$config" ]]; then
	echo "run-example.sh: no example $example (have: $(ls "$root/caddyfile-examples" | grep -v '\.go$' | tr '\n' ' '))" >&2
	exit 2
fi

"$root/xcaddy/build.sh" "$root/bin/caddy"
exec "$root/bin/caddy" run --config "$config" --adapter caddyfile
