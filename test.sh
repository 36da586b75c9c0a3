#!/usr/bin/env bash
# Runs every test of push_gateway: formatting, vet, all unit, fuzz-seed and
# golden tests, the integration tests (which build the caddy binary
# themselves in TestMain), and the race detector over the concurrent
# packages. Every step runs even when an earlier one fails; the exit status
# says whether all passed.
#
#   ./test.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

failed=()
step() {
	local name="$1"
	shift
	echo "== $name" >&2
	if ! "$@"; then
		failed+=("$name")
	fi
}

gofmt_clean() {
	local files unformatted
	mapfile -t files < <(find . -name '*.go' -not -path './.git/*' -not -path '*/node_modules/*' -not -path '*/testdata/*')
	((${#files[@]} == 0)) && return 0
	unformatted="$(gofmt -l "${files[@]}")"
	if [[ -n "$unformatted" ]]; then
		echo "not gofmt-clean (run gofmt -w):" >&2
		echo "$unformatted" >&2
		return 1
	fi
}

race_pkgs=()
for p in hub broker protocol netpoll gateway module; do
	if compgen -G "$p/*.go" >/dev/null || compgen -G "$p/*/*.go" >/dev/null; then
		race_pkgs+=("./$p/...")
	fi
done

# The browser and SDK tests run the pinned npm packages: install them when
# they are missing or older than the lock file.
if [[ -f package-lock.json ]] && [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
	step "npm ci" npm ci --no-audit --no-fund
fi

step gofmt gofmt_clean
step "go vet" go vet ./...
# -count=1: the integration tests build caddy in TestMain, which the test
# cache cannot see; a cached pass could hide a broken gateway.
step "go test" go test -count=1 ./...
step "go test -race" go test -race "${race_pkgs[@]}"

if ((${#failed[@]} > 0)); then
	echo "== FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "== all tests passed" >&2
