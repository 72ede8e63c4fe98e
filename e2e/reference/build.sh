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

# shellcheck source=../go-env.sh
source ../go-env.sh "the reference helper"

bin="${KUBETRAIL_REFERENCE_BIN_DIR:-${HOME:?HOME is not set}/.cache/kubetrail-e2e/reference-bin}"
mkdir -p "$bin"

lock_bin_dir "$bin"

start=$SECONDS
echo "build.sh: go build ./ -> $bin/reference" >&2
go build -trimpath -ldflags "-s -w" -o "$bin/.reference.tmp" .
mv -f "$bin/.reference.tmp" "$bin/reference"
echo "build.sh: built the reference helper in $((SECONDS - start))s" >&2

echo "$bin"
