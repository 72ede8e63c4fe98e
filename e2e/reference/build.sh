#!/usr/bin/env bash
# Builds `reference`, the upstream Kubernetes resource math behind a JSON-lines helper (see
# main.go), into a cache directory outside the repository.
#
#   ./build.sh            -> builds the helper, prints the bin dir as the LAST stdout line
#
# Environment:
#   KUBETRAIL_REFERENCE_BIN_DIR  bin directory (default: $HOME/.cache/kubetrail-e2e/reference-bin)
#
# go build is itself incremental (a warm build cache relinks in about a second), so the helper
# is rebuilt on every run. All progress goes to stderr; stdout carries only the bin dir.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: error: the 'go' command was not found on PATH; install Go >= 1.25 to build the reference helper" >&2
  exit 1
fi

# Never download another Go toolchain, and build only what the committed go.sum pins.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

bin="${KUBETRAIL_REFERENCE_BIN_DIR:-${HOME:?HOME is not set}/.cache/kubetrail-e2e/reference-bin}"
mkdir -p "$bin"

# Serialize concurrent builds into the same bin dir.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$bin/.build.lock"
  flock 9
fi

start=$SECONDS
echo "build.sh: go build ./ -> $bin/reference" >&2
go build -trimpath -ldflags "-s -w" -o "$bin/.reference.tmp" .
mv -f "$bin/.reference.tmp" "$bin/reference"
echo "build.sh: built the reference helper in $((SECONDS - start))s" >&2

echo "$bin"
