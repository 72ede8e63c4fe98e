//! Retention of measured usage as a user runs it: `kubetrail prune --raw-usage-age` replaces
//! the samples older than the horizon by hourly rows that equal a direct computation over the
//! replaced samples (this file's own SQL), leaves the newer samples alone, and says so.

#[path = "common/fixture.rs"]
mod fixture;

use fixture::*;
use kubetrail::model::usage::{ContainerUsageRow, UsageBatch};
use kubetrail::store::{Batch, HistoryWriter};
use rusqlite::Connection;

#[test]
fn prune_rolls_measured_usage_up_into_exact_hourly_rows() {
    let now = kubetrail::model::time::now_ms();
    let start = (now - 3 * DAY) / HOUR * HOUR;
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch.pods.push(pod("a", "shop", "web-1", start).build());
    db.write(&batch);
    // Three days of one sample a minute, with values that move.
    let mut at = start;
    let mut i: i64 = 0;
    db.with_writer(|conn| {
        while at < now {
            let sample = UsageBatch {
                containers: vec![ContainerUsageRow {
                    namespace: "shop".into(),
                    pod: "web-1".into(),
                    container: "app".into(),
                    at_ms: at,
                    window_ms: 15_000,
                    cpu_millis: (i * 37) % 500,
                    memory_bytes: ((i * 53) % 300) << 20,
                }],
                nodes: vec![],
            };
            conn.write_usage(&sample).unwrap();
            at += MIN;
            i += 1;
        }
    });
    let conn = Connection::open(&db.path).unwrap();
    let direct: Vec<(i64, i64, i64, i64, i64)> = conn
        .prepare(
            "SELECT at_ms / 3600000 * 3600000, count(*), min(cpu_millis), max(cpu_millis),
                 sum(memory_bytes)
             FROM container_usage WHERE at_ms < ?1 GROUP BY 1 ORDER BY 1",
        )
        .unwrap()
        .query_map([(now - DAY) / HOUR * HOUR], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(direct.len() >= 47, "two days of hours: {}", direct.len());
    drop(conn);

    let run = kubetrail(&["prune", "--db", db.path_str(), "--raw-usage-age", "1d"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("measured usage samples replaced by"),
        "{}",
        run.stdout
    );
    let conn = Connection::open(&db.path).unwrap();
    let rolled: Vec<(i64, i64, i64, i64, i64)> = conn
        .prepare(
            "SELECT hour_ms, samples, cpu_min, cpu_max, memory_sum FROM container_usage_hourly
             ORDER BY hour_ms",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rolled, direct);
    let oldest_raw: i64 = conn
        .query_row("SELECT min(at_ms) FROM container_usage", [], |r| r.get(0))
        .unwrap();
    assert!(
        oldest_raw >= (now - DAY) / HOUR * HOUR,
        "newer samples are kept raw"
    );
    // A second prune finds nothing more to roll up.
    let again = kubetrail(&["prune", "--db", db.path_str(), "--raw-usage-age", "1d"]);
    assert!(
        !again.stdout.contains("measured usage samples"),
        "{}",
        again.stdout
    );
}
