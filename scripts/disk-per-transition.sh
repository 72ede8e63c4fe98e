#!/usr/bin/env bash
# Bytes per transition on disk (BENCHMARKS.md, "Disk per transition"): a 120 s recording of a
# heavily churning simulated cluster with the kubetrail binary BIN, in DIR (replaced), then the
# file size per transition and dbstat's bytes per transition by table and index.
#
#   scripts/disk-per-transition.sh $CARGO_TARGET_DIR/release/kubetrail /tmp/disk [SIM_BIN]
#
# SIM_BIN (default BIN) serves the simulated cluster, so two recorders can be measured against
# the same simulator.
# Needs sqlite3 (with dbstat, as Debian builds it) and python3.
set -u
B=$1; D=$2; SB=${3:-$1}
if [[ -e "$D" && ! -f "$D/steady.db" ]]; then
  echo "disk-per-transition.sh: $D exists and is not an earlier run's directory; give a new one" >&2
  exit 2
fi
rm -rf "$D"; mkdir -p "$D"; cd "$D"
"$SB" simulate --kubeconfig-out kc --nodes 50 --pods 500 --churn 100 --pace 0.2 --seed 5 > sim.log 2>&1 &
SIM=$!
for i in $(seq 60); do [ -f kc ] && break; sleep 0.5; done
"$B" record --kubeconfig kc --db steady.db > rec.log 2>&1 &
REC=$!
sleep 120
kill -TERM $REC; wait $REC; kill $SIM; wait $SIM 2>/dev/null
sqlite3 steady.db "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
T=$(sqlite3 steady.db "SELECT count(*) FROM transitions")
P=$(sqlite3 steady.db "SELECT count(*) FROM pods")
S=$(stat -c %s steady.db)
echo "transitions=$T pods=$P file=$S bytes_per_transition=$(python3 -c "print(round($S/$T,1))")"
sqlite3 steady.db "SELECT coalesce(m.tbl_name, d.name), round(sum(d.pgsize)*1.0/$T,1) FROM dbstat d LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1 ORDER BY 2 DESC"
