#!/usr/bin/env bash
# The peer table of BENCHMARKS.md: kubetrail record against a client-go SharedInformer of pods
# and nodes (e2e/controlplane/cmd/peerinformer), on one real kube-apiserver loaded with PODS
# pods and NODES nodes (e2e/controlplane/cmd/peerload), then on `kubetrail simulate` with the
# same counts. Runs alternate (record, informer, record, ...) so the machine's load hits both.
#
#   scripts/peer-bench.sh BIN [RUNS] [PODS] [NODES]     # BIN: a release build of kubetrail
#
# Each run prints one line: the time to committed (kubetrail: its "initial list committed"
# log line) or to synced (the informer: both HasSynced), then, two seconds later, the resident
# set (VmRSS), its peak (VmHWM) and the CPU seconds spent so far (user + system).
# Set KUBETRAIL_PEER_SKIP_REAL=1 or KUBETRAIL_PEER_SKIP_SIM=1 to measure one side only, and
# KUBETRAIL_PEER_VARIANTS=1 to add, on the real server, `record --no-events` and the informer
# over JSON to each round.
set -euo pipefail

bin="${1:?usage: scripts/peer-bench.sh BIN [RUNS] [PODS] [NODES]}"
runs="${2:-3}"; pods="${3:-100000}"; nodes="${4:-5000}"
[[ -x "$bin" ]] || { echo "peer-bench.sh: error: $bin is not an executable kubetrail build" >&2; exit 2; }
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cp_bin="$("$repo/e2e/controlplane/build.sh" | tail -1)"
peer_bin="$("$repo/e2e/controlplane/build-peer.sh" | tail -1)"
work="$(mktemp -d /tmp/peer-bench.XXXXXX)"
children=()
cleanup() {
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# proc_figures PID -> "RSS_MB PEAK_MB CPU_S"
proc_figures() {
  local tck rss hwm
  tck="$(getconf CLK_TCK)"
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status")"
  hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/$1/status")"
  # utime and stime are fields 14 and 15, after the parenthesised command name.
  awk -v rss="$rss" -v hwm="$hwm" -v tck="$tck" \
    '{ sub(/.*\) /, ""); printf "%.0f %.0f %.2f\n", rss/1024, hwm/1024, ($12+$13)/tck }' "/proc/$1/stat"
}

# record_run KUBECONFIG LABEL [RECORD FLAGS...]
record_run() {
  local db="$work/rec.db" log="$work/rec.log" pid line kc="$1" label="$2"
  shift 2
  rm -f "$db" "$db-wal" "$db-shm"
  RUST_LOG=info "$bin" record --kubeconfig "$kc" --db "$db" "$@" 2>"$log" &
  pid=$!; children+=("$pid")
  for _ in $(seq 600); do
    line="$(grep -m1 'initial list committed' "$log" || true)"
    [[ -n "$line" ]] && break
    kill -0 "$pid" 2>/dev/null || { echo "peer-bench.sh: record exited early:" >&2; tail -5 "$log" >&2; exit 1; }
    sleep 0.5
  done
  [[ -n "$line" ]] || { echo "peer-bench.sh: record did not commit the list in 300 s" >&2; exit 1; }
  sleep 2
  local ms figures
  ms="$(sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p' <<<"$line")"
  figures="$(proc_figures "$pid")"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  read -r rss hwm cpu <<<"$figures"
  printf '%s kubetrail record%s: committed %.2f s, RSS %s MB (peak %s), CPU %s s\n' "$label" "${*:+ $*}" "$(bc -l <<<"$ms/1000")" "$rss" "$hwm" "$cpu"
}

# informer_run KUBECONFIG CONTENT_TYPE LABEL
informer_run() {
  local out
  out="$("$peer_bin/peerinformer" --kubeconfig "$1" --content-type "$2")"
  python3 - "$3" "$2" "$out" <<'PY'
import json, sys
label, ct, o = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"{label} client-go informer ({ct}): synced {o['synced_s']:.2f} s, {o['pods']} pods {o['nodes']} nodes, "
      f"RSS {o['rss_mb']:.0f} MB (peak {o['peak_mb']:.0f}), CPU {o['cpu_s']:.2f} s")
PY
}

echo "peer-bench: $pods pods, $nodes nodes, $runs runs each; $(uptime)"

if [[ "${KUBETRAIL_PEER_SKIP_REAL:-0}" != 1 ]]; then
  "$cp_bin/controlplane" --bin-dir "$cp_bin" --work-dir "$work/cp" --kubeconfig-out "$work/real.kubeconfig" \
    --exit-on-stdin-close=false </dev/null >"$work/cp.json" 2>"$work/cp.err" &
  cp_pid=$!; children+=("$cp_pid")
  for _ in $(seq 240); do [[ -s "$work/real.kubeconfig" && -s "$work/cp.json" ]] && break; sleep 0.5; done
  [[ -s "$work/cp.json" ]] || { echo "peer-bench.sh: the control plane did not start:" >&2; cat "$work/cp.err" >&2; exit 1; }
  start=$SECONDS
  "$peer_bin/peerload" --kubeconfig "$work/real.kubeconfig" --pods "$pods" --nodes "$nodes" 2>/dev/null
  echo "real kube-apiserver: loaded in $((SECONDS - start)) s; $(uptime)"
  for i in $(seq "$runs"); do
    record_run "$work/real.kubeconfig" "real run $i:"
    informer_run "$work/real.kubeconfig" protobuf "real run $i:"
    if [[ "${KUBETRAIL_PEER_VARIANTS:-0}" == 1 ]]; then
      record_run "$work/real.kubeconfig" "real run $i:" --no-events
      informer_run "$work/real.kubeconfig" json "real run $i:"
    fi
  done
  # Stopped before the simulator starts, so the two never share the machine.
  kill "$cp_pid"; wait "$cp_pid" 2>/dev/null || true
fi

if [[ "${KUBETRAIL_PEER_SKIP_SIM:-0}" != 1 ]]; then
  "$bin" simulate --listen 127.0.0.1:0 --paused --seed 7 --pods "$pods" --nodes "$nodes" \
    --kubeconfig-out "$work/sim.kubeconfig" >"$work/sim.out" 2>"$work/sim.err" &
  children+=("$!")
  for _ in $(seq 240); do grep -q serving "$work/sim.out" 2>/dev/null && break; sleep 0.5; done
  echo "simulator: serving; $(uptime)"
  for i in $(seq "$runs"); do
    record_run "$work/sim.kubeconfig" "sim run $i:"
    # The simulator speaks JSON only.
    informer_run "$work/sim.kubeconfig" json "sim run $i:"
  done
fi
echo "peer-bench: done; $(uptime)"
