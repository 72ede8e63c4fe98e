# Sourced by the Go build scripts under e2e/ (controlplane, reference): the checks and the
# environment every Go build here shares.
#
#   source "$here/../go-env.sh" "the e2e control plane"   # $1 says what needs Go, for the error

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: error: the 'go' command was not found on PATH; install Go >= 1.25 to build ${1:-the e2e parts}" >&2
  exit 1
fi

# Never let a go.mod 'toolchain' line or GOTOOLCHAIN=auto download another Go.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
# The committed go.sum must be complete; do not let a build rewrite go.mod/go.sum.
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

# lock_bin_dir DIR: serializes concurrent builds into the same bin dir (held until exit).
lock_bin_dir() {
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$1/.build.lock"
    flock 9
  fi
}
