#!/usr/bin/env bash
# Smoke test of the real control plane: build (or reuse) the binaries, start the
# launcher with --watch-cache=false, play the kubelet with kubectl, force a watch
# 410 Gone by compacting etcd, stop the launcher and check that nothing is left.
# Needs: go, curl, python3, kubectl (KUBECTL=/path/to/kubectl to override).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBECTL="${KUBECTL:-kubectl}"

bin="$("$here/build.sh" | tail -n1)"
tmp="$(mktemp -d)"
work="$tmp/cp"
fifo="$(mktemp -u)"; mkfifo "$fifo"
out="$(mktemp)"

# stdin is a FIFO that we hold open: closing it (exec 3>&-) stops the launcher.
"$bin/controlplane" --bin-dir "$bin" --work-dir "$work" --watch-cache=false <"$fifo" >"$out" &
launcher=$!
exec 3>"$fifo"
rm -f "$fifo"

for _ in $(seq 1 600); do
  [[ -s "$out" ]] && break
  kill -0 "$launcher" 2>/dev/null || { echo "launcher died" >&2; exit 1; }
  sleep 0.2
done
line="$(head -n1 "$out")"
echo "launcher: $line"
j() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$line" "$1"; }
K="$(j kubeconfig)"; S="$(j server)"; E="$(j etcd)"; T="$(j token)"; CA="$(j ca)"
apipid="$(j apiserver_pid)"; etcdpid="$(j etcd_pid)"
k() { "$KUBECTL" --kubeconfig "$K" "$@"; }

k version
k get nodes
k create namespace smoke
OLD="$(k get namespace smoke -o jsonpath='{.metadata.resourceVersion}')"
echo "namespace smoke resourceVersion=$OLD"

k apply -f - <<'EOF'
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}
EOF
k -n smoke apply -f - <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: p1}
spec:
  nodeName: node-1
  containers: [{name: c, image: busybox}]
EOF
k -n smoke get pod p1 -o jsonpath='{.status.phase}{"\n"}'
k -n smoke patch pod p1 --subresource=status --type=merge -p '{"status":{"phase":"Running"}}'
phase="$(k -n smoke get pod p1 -o jsonpath='{.status.phase}')"
[[ "$phase" == Running ]] || { echo "phase is $phase, want Running" >&2; exit 1; }
k -n smoke delete pod p1 --grace-period=0 --force
k create namespace smoke2
k label namespace smoke2 a=b

# Compact etcd at its current revision (through the etcd JSON gateway).
rev="$(curl -sf -X POST "$E/v3/kv/range" -d '{"key":"Lw=="}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')"
echo "etcd revision=$rev; compacting"
curl -sf -X POST "$E/v3/kv/compaction" -d "{\"revision\":\"$rev\",\"physical\":true}"; echo

ev="$(curl -s --max-time 5 --cacert "$CA" -H "Authorization: Bearer $T" \
  "$S/api/v1/namespaces?watch=1&resourceVersion=$OLD" || true)"
echo "watch from $OLD: $ev"
grep -q '"type":"ERROR"' <<<"$ev" && grep -q '"code":410' <<<"$ev" || { echo "expected an ERROR event with code 410" >&2; exit 1; }

# An exact-resourceVersion LIST from before the compaction is 410 as well (watch cache off).
code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -H "Authorization: Bearer $T" \
  "$S/api/v1/namespaces?resourceVersion=$OLD&resourceVersionMatch=Exact")"
echo "list at $OLD (Exact): HTTP $code"
[[ "$code" == 410 ]] || { echo "expected 410" >&2; exit 1; }

# A client whose watch is cut while etcd moves on and gets compacted: stop the API
# server (stdin command), write two keys straight into etcd, compact, start it again.
send() { # send COMMAND: write it to the launcher's stdin, wait for its reply line
  local n; n="$(wc -l <"$out")"
  echo "$1" >&3
  for _ in $(seq 1 600); do (( $(wc -l <"$out") > n )) && break; sleep 0.2; done
  echo "$1 -> $(tail -n1 "$out")"
  grep -q '"ok":true' < <(tail -n1 "$out")
}
LAST="$(k get namespace smoke2 -o jsonpath='{.metadata.resourceVersion}')"
send stop-apiserver
for i in 1 2; do curl -sf -X POST "$E/v3/kv/put" -d "{\"key\":\"$(printf /kubetrail-e2e/bump | base64)\",\"value\":\"$(printf $i | base64)\"}" >/dev/null; done
rev="$(curl -sf -X POST "$E/v3/kv/range" -d '{"key":"Lw=="}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')"
curl -sf -X POST "$E/v3/kv/compaction" -d "{\"revision\":\"$rev\",\"physical\":true}" >/dev/null
send start-apiserver
ev="$(curl -s --max-time 5 --cacert "$CA" -H "Authorization: Bearer $T" \
  "$S/api/v1/namespaces?watch=1&resourceVersion=$LAST" || true)"
echo "watch from $LAST after restart+compaction at $rev: $ev"
grep -q '"code":410' <<<"$ev" || { echo "expected an ERROR event with code 410" >&2; exit 1; }
apipid="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apiserver_pid"])' "$(tail -n1 "$out")")"

# Stop by closing stdin, then check that nothing is left.
exec 3>&-
wait "$launcher"
for p in "$apipid" "$etcdpid"; do
  if kill -0 "$p" 2>/dev/null; then echo "process $p still running" >&2; exit 1; fi
done
[[ ! -e "$work" ]] || { echo "work dir $work still exists" >&2; exit 1; }
rm -f "$out"; rmdir "$tmp"
echo "smoke: 1 passed, 0 failed"
