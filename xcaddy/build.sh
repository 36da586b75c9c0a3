#!/usr/bin/env bash
# Builds Caddy with the push_gateway module, with the xcaddy pinned in go.mod.
#
#   xcaddy/build.sh [output]        default output: bin/caddy
#
# Environment:
#   CADDY_VERSION     Caddy version to build (default v2.11.9, the one go.mod pins)
#   PUSH_GATEWAY_SRC  push_gateway checkout to build from (default: this one)
#
# The plugin package is github.com/pushgateway/push_gateway/module (the
# module root holds no package), so it is given with --with and the module
# itself is replaced by the local checkout with --replace.
#
# The module is on no proxy. xcaddy resolves the plugin with a bare
# `go get`, which asks the proxy for .../push_gateway/module before it
# considers the --replace, and a proxy that answers 403 (not 404) makes that
# fatal. So GOPROXY becomes the configured proxies joined with "|" and ending
# in "off": any proxy failure falls through to "off", which counts as not
# found, and the replacement is used. Everything else still comes from the
# proxies ("direct" is dropped: the build needs only public modules).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$(cd "${PUSH_GATEWAY_SRC:-$root}" && pwd)"
out="${1:-$root/bin/caddy}"
caddy_version="${CADDY_VERSION:-v2.11.9}"

mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

cd "$root"
# `go install …/xcaddy@v0.4.7` does not work here; a tool directive does.
if ! grep -q '^tool github.com/caddyserver/xcaddy/cmd/xcaddy$' go.mod; then
	go get -tool github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.7
fi

proxies=()
IFS=',|' read -r -a configured <<<"$(go env GOPROXY)"
for p in "${configured[@]}"; do
	case "$p" in direct | off | "") ;; *) proxies+=("$p") ;; esac
done
GOPROXY="$(IFS='|'; echo "${proxies[*]:+${proxies[*]}|}off")"
export GOPROXY

echo "building caddy $caddy_version with push_gateway from $src into $out" >&2
go tool xcaddy build "$caddy_version" \
	--with github.com/pushgateway/push_gateway/module \
	--replace "github.com/pushgateway/push_gateway=$src" \
	--output "$out"

if ! "$out" list-modules | grep -qx 'http.handlers.push_gateway'; then
	echo "build.sh: $out lacks the push_gateway module" >&2
	exit 1
fi
echo "built $out" >&2
