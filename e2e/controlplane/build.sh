#!/usr/bin/env bash
# Builds a real kube-apiserver, kube-scheduler, kube-controller-manager and etcd (at the
# versions pinned in go.mod), kwok (pinned in ../kwok/go.mod, a module of its own because
# kwok pins other k8s.io/* versions), metrics-server (../metrics-server/go.mod, a module of
# its own for the same reason) and the `controlplane` launcher into a cache directory
# outside the repository.
#
#   ./build.sh            -> builds (or reuses) the binaries, prints the bin dir as the LAST stdout line
#
# Environment:
#   KUBETRAIL_E2E_BIN      bin directory (default: $HOME/.cache/kubetrail-e2e/bin-<k8s version>)
#   KUBETRAIL_E2E_REBUILD  set to 1 to rebuild the servers even when they look fresh
#
# The servers (kube-apiserver, kube-scheduler, kube-controller-manager, etcd, kwok) are
# rebuilt only when one is missing, or when go.mod, go.sum, ../kwok/go.mod, ../kwok/go.sum,
# this script, ../go-env.sh or the Go version changed since they were built (a content stamp,
# not mtimes, so a fresh git clone reuses binaries that an earlier run left in the cache). The
# launcher and promcheck are rebuilt every time; with a warm Go build cache that takes seconds.
# metrics-server has a stamp of its own (../metrics-server/go.mod, go.sum, this script, the
# Go version), so adding or bumping it never relinks the other servers.
# All progress goes to stderr; stdout carries only the bin dir.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# shellcheck source=../go-env.sh
source ../go-env.sh "the e2e control plane"

k8s_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"      # e.g. v1.35.4
etcd_version="$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)" # e.g. v3.6.5
major="${k8s_version#v}"; major="${major%%.*}"                         # 1
minor="${k8s_version#v*.}"; minor="${minor%%.*}"                       # 35

bin="${KUBETRAIL_E2E_BIN:-${HOME:?HOME is not set}/.cache/kubetrail-e2e/bin-${k8s_version}}"
mkdir -p "$bin"
bin="$(cd "$bin" && pwd)"   # absolute: kwok is built from ../kwok

lock_bin_dir "$bin"

stamp="$( { cat go.mod go.sum ../kwok/go.mod ../kwok/go.sum build.sh ../go-env.sh; go version; } | sha256sum | cut -d' ' -f1)"
stamp_file="$bin/.stamp"

build() { # build OUTPUT PACKAGE [ldflags]
  local out="$1" pkg="$2" ldflags="${3:-}"
  echo "build.sh: go build $pkg -> $bin/$out" >&2
  go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/.$out.tmp" "$pkg"
  mv -f "$bin/.$out.tmp" "$bin/$out"
}

servers=(kube-apiserver kube-scheduler kube-controller-manager etcd kwok)
fresh=1
for s in "${servers[@]}"; do [[ -x "$bin/$s" ]] || fresh=0; done
if [[ "${KUBETRAIL_E2E_REBUILD:-0}" != 1 && $fresh == 1 \
      && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
  echo "build.sh: ${servers[*]} are up to date in $bin" >&2
else
  rm -f "$stamp_file"
  start=$SECONDS
  k8s_ldflags="\
 -X k8s.io/component-base/version.gitVersion=${k8s_version}\
 -X k8s.io/component-base/version.gitMajor=${major}\
 -X k8s.io/component-base/version.gitMinor=${minor}\
 -X k8s.io/component-base/version.gitTreeState=clean\
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
  build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
  build etcd go.etcd.io/etcd/server/v3 "-X go.etcd.io/etcd/api/v3/version.GitSHA=${etcd_version}"
  build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
  build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
  # kwok's version string is a constant in its source (consts.Version), so no ldflags.
  (cd ../kwok && build kwok sigs.k8s.io/kwok/cmd/kwok)
  echo "$stamp" >"$stamp_file"
  echo "build.sh: built ${servers[*]} (k8s ${k8s_version}, etcd ${etcd_version}) in $((SECONDS - start))s" >&2
fi

# metrics-server's release Makefile sets its version with -X on k8s.io/client-go/pkg/version;
# the same here, from the module version, so `metrics-server --version` names v0.8.0.
ms_stamp="$( { cat ../metrics-server/go.mod ../metrics-server/go.sum build.sh ../go-env.sh; go version; } | sha256sum | cut -d' ' -f1)"
ms_stamp_file="$bin/.stamp-metrics-server"
if [[ "${KUBETRAIL_E2E_REBUILD:-0}" != 1 && -x "$bin/metrics-server" \
      && -f "$ms_stamp_file" && "$(cat "$ms_stamp_file")" == "$ms_stamp" ]]; then
  echo "build.sh: metrics-server is up to date in $bin" >&2
else
  rm -f "$ms_stamp_file"
  start=$SECONDS
  ms_version="$(cd ../metrics-server && go list -m -f '{{.Version}}' sigs.k8s.io/metrics-server)"
  (cd ../metrics-server && build metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server \
    "-X k8s.io/client-go/pkg/version.gitVersion=${ms_version} -X k8s.io/client-go/pkg/version.buildDate=1970-01-01T00:00:00Z")
  echo "$ms_stamp" >"$ms_stamp_file"
  echo "build.sh: built metrics-server ${ms_version} in $((SECONDS - start))s" >&2
fi

build controlplane ./cmd/controlplane "-X main.k8sVersion=${k8s_version}"
# The reference Prometheus text-format parser, for the tests of `record --metrics-addr`.
build promcheck ./cmd/promcheck
# Turns a kube-apiserver audit log into the expected transitions (tests/e2e_cluster.rs).
build audittruth ./cmd/audittruth

echo "$bin"
