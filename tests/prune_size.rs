//! `--max-db-size`: after a prune the file on disk (with its write-ahead log) is within the
//! budget, the oldest ended history went first, and live pods and nodes are all still there.

#[path = "common/churn.rs"]
mod churn;
#[path = "common/fixture.rs"]
mod fixture;

use fixture::*;
use kubetrail::store::sqlite::{open_for_writing, write_batch};
use rusqlite::Connection;

const MIB: u64 = 1 << 20;

fn on_disk(path: &std::path::Path) -> u64 {
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    std::fs::metadata(path).unwrap().len() + std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// About 30 MiB: 40 nodes, 600 live pods and two and a half days of churn, ending now (so that
/// the age rules have nothing to do and the budget alone decides).
fn churned_database() -> (Db, Vec<String>) {
    let db = Db::new();
    let steps = 60;
    let start = kubetrail::model::time::now_ms() - steps * HOUR;
    let (mut churn, first) = churn::Churn::new(start, 40, 600, 42);
    let mut handle = open_for_writing(&db.path).unwrap();
    write_batch(&mut handle.conn, &first).unwrap();
    for step in 0..steps {
        write_batch(&mut handle.conn, &churn.advance(HOUR, 300)).unwrap();
        if step % 24 == 23 {
            write_batch(&mut handle.conn, &churn.replace_node()).unwrap();
        }
    }
    drop(handle);
    (db, churn.live_pod_uids())
}

/// A database file in a temporary directory, written by this test's own writer (closed before
/// the prune, as after a recorder stopped).
struct Db {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubetrail.db");
        Db { _dir: dir, path }
    }

    fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

#[test]
fn the_size_budget_holds_on_disk_and_the_oldest_ended_history_goes_first() {
    let (db, live) = churned_database();
    let before = on_disk(&db.path);
    assert!(
        before > 20 * MIB,
        "the test needs a few tens of MiB, got {before}"
    );
    let budget = 12 * MIB;
    let ended_before: Vec<(String, i64)> = {
        let conn = Connection::open(&db.path).unwrap();
        let mut stmt = conn
            .prepare("SELECT uid, deleted_at_ms FROM pods WHERE deleted_at_ms IS NOT NULL")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };

    let run = kubetrail(&["prune", "--db", db.path_str(), "--max-db-size", "12MiB"]);
    let out = run.ok();
    assert!(out.contains("max-db-size removed early"), "{out}");
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);

    let after = on_disk(&db.path);
    eprintln!("prune_size: {before} bytes before, {after} after, budget {budget}");
    eprintln!("{out}");
    assert!(
        after <= budget + budget / 10,
        "{after} bytes on disk for a budget of {budget}"
    );
    // Not an over-shoot either: the pass stops when it fits.
    assert!(
        after >= budget / 2,
        "{after} bytes on disk: far more than needed went"
    );

    let conn = Connection::open(&db.path).unwrap();
    let open: i64 = conn
        .query_row(
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open as usize, live.len(), "every live pod is still there");
    let mut stmt = conn
        .prepare(
            "SELECT count(*) FROM transitions t JOIN pods p ON p.id = t.pod_id WHERE p.uid = ?1",
        )
        .unwrap();
    for uid in &live {
        let n: i64 = stmt.query_row([uid], |r| r.get(0)).unwrap();
        assert!(n >= 4, "live pod {uid} lost transitions");
    }
    // Oldest first: every ended pod removed ended no later than every ended pod kept.
    let kept: std::collections::HashSet<String> = conn
        .prepare("SELECT uid FROM pods WHERE deleted_at_ms IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !kept.is_empty(),
        "the budget leaves room for recent history"
    );
    let newest_removed = ended_before
        .iter()
        .filter(|(uid, _)| !kept.contains(uid))
        .map(|(_, at)| *at)
        .max()
        .unwrap();
    let oldest_kept = ended_before
        .iter()
        .filter(|(uid, _)| kept.contains(uid))
        .map(|(_, at)| *at)
        .min()
        .unwrap();
    assert!(
        newest_removed <= oldest_kept,
        "removed up to {newest_removed}, kept from {oldest_kept}"
    );
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM transitions WHERE pod_id IS NOT NULL AND pod_id NOT IN (SELECT id FROM pods)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "a pod's history goes with it");
    let raw_usage_kept: i64 = conn
        .query_row("SELECT count(*) FROM node_usage", [], |r| r.get(0))
        .unwrap();
    assert!(
        raw_usage_kept > 0,
        "the last hour of raw utilisation is never rolled up"
    );
    // Utilisation over the whole span still answers: rolled-up hours plus raw ones.
    let rollups: i64 = conn
        .query_row("SELECT count(*) FROM node_usage_rollup", [], |r| r.get(0))
        .unwrap();
    assert!(rollups > 0);
}
