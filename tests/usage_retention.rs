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
                    resources: None,
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

/// (bucket start, samples, cpu avg, cpu peak, memory avg, memory peak) of each row of `query
/// nodes --step 1h` over `[since, until)`.
fn used_per_hour(db: &FixtureDb, since: i64, until: i64) -> Vec<(i64, i64, i64, i64, i64, i64)> {
    let (since, until) = (rfc3339(since), rfc3339(until));
    let out = kubetrail(&[
        "query",
        "nodes",
        "--step",
        "1h",
        "-o",
        "json",
        "--since",
        &since,
        "--until",
        &until,
        "--db",
        db.path_str(),
    ]);
    parse_json(out.ok())
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_i64().unwrap_or_else(|| panic!("{k} in {r}"));
            (
                n("start_ms"),
                n("used_samples"),
                n("cpu_used_avg_millis"),
                n("cpu_used_peak_millis"),
                n("memory_used_avg_bytes"),
                n("memory_used_peak_bytes"),
            )
        })
        .collect()
}

/// `query nodes` says what each node used in each bucket: the mean and the largest of its
/// samples, as this file's own SQL computes them from the raw samples, and the same again after
/// `prune` has replaced the older hours by hourly rollups.
#[test]
fn query_nodes_shows_measured_usage_the_same_before_and_after_the_roll_up() {
    use kubetrail::model::usage::NodeUsageSampleRow;
    let now = kubetrail::model::time::now_ms();
    let start = (now - 3 * DAY) / HOUR * HOUR;
    let until = now / HOUR * HOUR;
    let db = FixtureDb::new();
    db.session(start, now, false, None, None);
    let batch = one_node_from(start);
    db.write(&batch);
    let mut at = start;
    let mut i: i64 = 0;
    db.with_writer(|conn| {
        while at < now {
            let sample = UsageBatch {
                containers: vec![],
                nodes: vec![NodeUsageSampleRow {
                    node: "node-1".into(),
                    at_ms: at,
                    window_ms: 15_000,
                    cpu_millis: (i * 37) % 4000,
                    memory_bytes: ((i * 53) % 8000) << 20,
                }],
            };
            conn.write_usage(&sample).unwrap();
            at += MIN;
            i += 1;
        }
    });
    let conn = Connection::open(&db.path).unwrap();
    let direct: Vec<(i64, i64, i64, i64, i64, i64)> = conn
        .prepare(
            "SELECT at_ms / 3600000 * 3600000, count(*), sum(cpu_millis), max(cpu_millis),
                 sum(memory_bytes), max(memory_bytes)
             FROM node_usage_samples WHERE at_ms >= ?1 AND at_ms < ?2 GROUP BY 1 ORDER BY 1",
        )
        .unwrap()
        .query_map([start, until], |r| {
            let (n, cpu, mem): (i64, i64, i64) = (r.get(1)?, r.get(2)?, r.get(4)?);
            let mean = |sum: i64| (sum as f64 / n as f64).round() as i64;
            Ok((r.get(0)?, n, mean(cpu), r.get(3)?, mean(mem), r.get(5)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(conn);
    assert!(direct.len() >= 71, "three days of hours: {}", direct.len());
    assert_eq!(used_per_hour(&db, start, until), direct);

    let run = kubetrail(&["prune", "--db", db.path_str(), "--raw-usage-age", "1d"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let conn = Connection::open(&db.path).unwrap();
    let hours: i64 = conn
        .query_row("SELECT count(*) FROM node_usage_samples_hourly", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(hours >= 47, "two days rolled up: {hours}");
    drop(conn);
    assert_eq!(used_per_hour(&db, start, until), direct);
}
