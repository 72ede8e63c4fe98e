#!/usr/bin/env bash
# Builds the peer table's two Go programs (see BENCHMARKS.md, "Against a client-go informer"):
# `peerinformer`, a client-go SharedInformer of pods and nodes, and `peerload`, which fills a
# real API server with nodes and pods. They live in this module (client-go at the version the
# API server is built from), and go into a cache directory outside the repository.
#
#   ./build-peer.sh        -> prints the bin dir as the LAST stdout line
#
# Environment:
#   KUBETRAIL_PEER_BIN  bin directory (default: $HOME/.cache/kubetrail-e2e/peer-bin)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# shellcheck source=../go-env.sh
source ../go-env.sh "the peer benchmark's programs"

bin="${KUBETRAIL_PEER_BIN:-${HOME:?HOME is not set}/.cache/kubetrail-e2e/peer-bin}"
mkdir -p "$bin"
lock_bin_dir "$bin"

start=$SECONDS
for prog in peerinformer peerload; do
  echo "build-peer.sh: go build ./cmd/$prog -> $bin/$prog" >&2
  go build -trimpath -ldflags "-s -w" -o "$bin/.$prog.tmp" "./cmd/$prog"
  mv -f "$bin/.$prog.tmp" "$bin/$prog"
done
echo "build-peer.sh: built in $((SECONDS - start))s" >&2
echo "$bin"
