//! Rolling raw node utilisation up into hourly rows: the rollups equal the time-weighted average
//! and peak of the raw rows they replace, the step function stays exact from the horizon on, and
//! the result does not depend on how the work was split into steps or passes.

#[path = "common/churn.rs"]
mod churn;
#[path = "common/fixture.rs"]
mod fixture;
#[path = "common/utilisation.rs"]
mod utilisation;

use fixture::*;
use kubetrail::model::utilisation::{BucketUsage, Grid};
use kubetrail::retention::{Pass, Policy};
use kubetrail::store::Batch;
use kubetrail::store::sqlite::db::open_for_maintenance;
use kubetrail::store::sqlite::rollup::{node_rollups_on_grid, nodes_with_rollups, read_rollups};
use kubetrail::store::sqlite::write_batch;
use rusqlite::Connection;

/// Only the utilisation rules: nothing else is pruned.
fn usage_policy(raw_age_ms: i64) -> Policy {
    Policy {
        max_age_ms: None,
        raw_usage_age_ms: Some(raw_age_ms),
        rollup_age_ms: None,
        max_db_bytes: None,
    }
}

fn raw_rows(conn: &Connection, node_uid: &str) -> Vec<(i64, i64, i64, bool)> {
    let mut stmt = conn
        .prepare(
            "SELECT u.at_ms, u.cpu_requested_millis, u.pod_count, u.keyframe FROM node_usage u
             JOIN nodes n ON n.id = u.node_id WHERE n.uid = ?1 ORDER BY u.at_ms",
        )
        .unwrap();
    stmt.query_map([node_uid], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn rollups_equal_the_time_weighted_average_and_peak_of_the_raw_rows() {
    // A hand-made step function on a 4000m / 8Gi node, crossing hour boundaries:
    //   0:10  1000m req, 2Gi, 2 pods      0:40  3000m, 1Gi, 5 pods
    //   1:20   500m,     4Gi, 1 pod       2:00  2000m, 2Gi, 3 pods (a keyframe)
    //   3:30   100m,     1Gi, 1 pod
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch.nodes.push(node("n1-uid", "n1", T0 - DAY).build());
    let row = |at, cpu, mem, pods| {
        usage("n1-uid", at)
            .requested(cpu, mem)
            .limits(2 * cpu, 2 * mem)
            .pods(pods)
    };
    batch.node_usage.extend([
        row(T0 + 10 * MIN, 1000, 2 * GI, 2).build(),
        row(T0 + 40 * MIN, 3000, GI, 5).build(),
        row(T0 + HOUR + 20 * MIN, 500, 4 * GI, 1).build(),
        row(T0 + 2 * HOUR, 2000, 2 * GI, 3).keyframe().build(),
        row(T0 + 3 * HOUR + 30 * MIN, 100, GI, 1).build(),
    ]);
    db.write(&batch);

    // Raw usage kept for 1h; now is 4:10, so the horizon is floor(3:10) = 3:00.
    let mut conn = open_for_maintenance(&db.path).unwrap();
    let report = Pass::new(usage_policy(HOUR), T0 + 4 * HOUR + 10 * MIN)
        .run(&mut conn)
        .unwrap();
    assert_eq!(report.rolled_up.raw_rows_deleted, 4);
    assert_eq!(report.rolled_up.rollups_written, 3);

    let rollups = read_rollups(&conn, Some("n1"), T0 - DAY, T0 + DAY).unwrap();
    let got: Vec<&BucketUsage> = rollups.iter().map(|r| &r.usage).collect();
    assert_eq!(got.len(), 3, "{got:#?}");
    // Hour 0: covered from the first row at 0:10, 30 min of 1000m then 20 min of 3000m.
    let h0 = got[0];
    assert_eq!(
        (h0.start_ms, h0.end_ms, h0.present_ms),
        (T0, T0 + HOUR, 50 * MIN)
    );
    assert!(close(
        h0.cpu_requested.avg,
        (1000.0 * 30.0 + 3000.0 * 20.0) / 50.0
    ));
    assert_eq!(h0.cpu_requested.peak, 3000);
    assert!(close(
        h0.memory_requested.avg,
        (2.0 * 30.0 + 1.0 * 20.0) / 50.0 * GI as f64
    ));
    assert_eq!(h0.memory_requested.peak, 2 * GI);
    assert!(close(h0.cpu_limits.avg, 2.0 * 1800.0));
    assert!(close(h0.pods.avg, (2.0 * 30.0 + 5.0 * 20.0) / 50.0));
    assert_eq!(h0.pods.peak, 5);
    assert!(close(h0.cpu_requested_ratio.avg.unwrap(), 1800.0 / 4000.0));
    assert!(close(h0.cpu_requested_ratio.peak.unwrap(), 0.75));
    assert!(close(h0.cpu_allocatable.avg, 4000.0));
    // Hour 1: 20 min of 3000m (in force from 0:40), then 40 min of 500m.
    let h1 = got[1];
    assert_eq!((h1.start_ms, h1.present_ms), (T0 + HOUR, HOUR));
    assert!(close(
        h1.cpu_requested.avg,
        (3000.0 * 20.0 + 500.0 * 40.0) / 60.0
    ));
    assert_eq!(h1.cpu_requested.peak, 3000);
    assert!(close(
        h1.memory_requested.avg,
        (1.0 * 20.0 + 4.0 * 40.0) / 60.0 * GI as f64
    ));
    assert_eq!(h1.memory_requested.peak, 4 * GI);
    assert!(close(h1.pods.avg, (5.0 * 20.0 + 1.0 * 40.0) / 60.0));
    // Hour 2: the 2:00 keyframe all hour.
    let h2 = got[2];
    assert_eq!((h2.start_ms, h2.present_ms), (T0 + 2 * HOUR, HOUR));
    assert!(close(h2.cpu_requested.avg, 2000.0));
    assert_eq!(h2.pods.peak, 3);

    // The value in force at the horizon (2000m, 3 pods) is a keyframe at 3:00; older rows are
    // gone; the newer row is untouched.
    assert_eq!(
        raw_rows(&conn, "n1-uid"),
        vec![
            (T0 + 3 * HOUR, 2000, 3, true),
            (T0 + 3 * HOUR + 30 * MIN, 100, 1, false)
        ]
    );

    // A second pass at the same time has nothing to do.
    let again = Pass::new(usage_policy(HOUR), T0 + 4 * HOUR + 10 * MIN)
        .run(&mut conn)
        .unwrap();
    assert!(!again.changed_anything(), "{again:?}");
}

#[test]
fn a_deleted_node_is_rolled_up_until_its_deletion_and_gets_no_keyframe() {
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch
        .nodes
        .push(node("gone-uid", "gone", T0).deleted(T0 + 90 * MIN).build());
    batch
        .node_usage
        .push(usage("gone-uid", T0).requested(1000, GI).pods(1).build());
    db.write(&batch);
    let mut conn = open_for_maintenance(&db.path).unwrap();
    Pass::new(usage_policy(HOUR), T0 + 5 * HOUR)
        .run(&mut conn)
        .unwrap();
    let rollups = read_rollups(&conn, None, T0, T0 + DAY).unwrap();
    let covered: Vec<i64> = rollups.iter().map(|r| r.usage.present_ms).collect();
    assert_eq!(covered, vec![HOUR, 30 * MIN]);
    assert!(
        raw_rows(&conn, "gone-uid").is_empty(),
        "no keyframe after the node's deletion"
    );
    // Readers that list nodes from raw rows find it through its rollups.
    let nodes = nodes_with_rollups(&conn, None, T0, T0 + DAY).unwrap();
    assert_eq!(
        nodes
            .iter()
            .map(|n| n.node_name.as_str())
            .collect::<Vec<_>>(),
        ["gone"]
    );
    assert!(
        nodes_with_rollups(&conn, Some("other"), T0, T0 + DAY)
            .unwrap()
            .is_empty()
    );
    assert!(
        nodes_with_rollups(&conn, None, T0 + 2 * HOUR, T0 + DAY)
            .unwrap()
            .is_empty()
    );
    let day = node_rollups_on_grid(
        &conn,
        nodes[0].node_id,
        &Grid::new(T0, T0 + DAY, DAY).unwrap(),
    )
    .unwrap();
    assert_eq!(day.len(), 1);
    assert_eq!(
        (day[0].start_ms, day[0].end_ms, day[0].present_ms),
        (T0, T0 + DAY, 90 * MIN)
    );
    assert!(close(day[0].cpu_requested.avg, 1000.0));
}

fn churned_database(seed: u64) -> (FixtureDb, i64) {
    let db = FixtureDb::new();
    let (mut churn, first) = churn::Churn::new(T0, 4, 40, seed);
    // Keyframes that never fall on an hour: the value in force at a horizon must be carried over
    // by retention, not found by luck.
    churn.keyframe_every_ms = 25 * MIN + 7 * SEC;
    let mut conn = open_for_maintenance(&db.path).unwrap();
    write_batch(&mut conn, &first).unwrap();
    for step in 0..48 {
        let batch = churn.advance(HOUR, 6);
        write_batch(&mut conn, &batch).unwrap();
        if step == 20 {
            write_batch(&mut conn, &churn.replace_node()).unwrap();
        }
    }
    (db, churn.now_ms)
}

#[test]
fn query_results_are_the_same_before_and_after_rollup_across_the_horizon() {
    let (db, end) = churned_database(7);
    let hours = Grid::new(T0, end, HOUR).unwrap();
    let days = Grid::new(T0, end, DAY).unwrap();
    let conn = Connection::open(&db.path).unwrap();
    let (hours_before, days_before) = (
        utilisation::raw_buckets(&conn, hours),
        utilisation::raw_buckets(&conn, days),
    );
    drop(conn);
    let mut conn = open_for_maintenance(&db.path).unwrap();
    // Raw usage kept for 10h 30m: the horizon falls at a full hour inside the history.
    let report = Pass::new(usage_policy(10 * HOUR + 30 * MIN), end)
        .run(&mut conn)
        .unwrap();
    assert!(report.rolled_up.raw_rows_deleted > 500, "{report:?}");
    let rolled: i64 = conn
        .query_row("SELECT count(*) FROM node_usage_rollup", [], |r| r.get(0))
        .unwrap();
    assert!(rolled > 100);
    // Hours, and days that combine rolled-up and raw hours, come out as before.
    assert_same_buckets(&hours_before, &utilisation::combined_buckets(&conn, hours));
    assert_same_buckets(&days_before, &utilisation::combined_buckets(&conn, days));
}

fn assert_same_buckets(before: &utilisation::Buckets, after: &utilisation::Buckets) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (key, b) in before {
        let a = &after[key];
        assert_eq!(
            (a.start_ms, a.end_ms, a.present_ms),
            (b.start_ms, b.end_ms, b.present_ms),
            "{key:?}"
        );
        for (x, y) in [
            (a.cpu_requested, b.cpu_requested),
            (a.memory_requested, b.memory_requested),
            (a.cpu_limits, b.cpu_limits),
            (a.memory_limits, b.memory_limits),
            (a.pods, b.pods),
            (a.cpu_allocatable, b.cpu_allocatable),
        ] {
            assert!(
                close(x.avg, y.avg) && x.peak == y.peak,
                "{key:?}: {x:?} vs {y:?}"
            );
        }
        let (x, y) = (a.memory_requested_ratio, b.memory_requested_ratio);
        assert!(
            close(x.avg.unwrap(), y.avg.unwrap()) && x.peak == y.peak,
            "{key:?}: {x:?} vs {y:?}"
        );
    }
}

fn rollup_table(conn: &Connection) -> Vec<String> {
    read_rollups(conn, None, i64::MIN / 2, i64::MAX / 2)
        .unwrap()
        .into_iter()
        .map(|r| {
            let u = r.usage;
            format!(
                "{} {} {} {:.6} {} {:.6} {} {:.3}",
                r.node_uid,
                u.start_ms,
                u.present_ms,
                u.cpu_requested.avg,
                u.cpu_requested.peak,
                u.pods.avg,
                u.pods.peak,
                u.memory_limits.avg
            )
        })
        .collect()
}

fn all_raw(conn: &Connection) -> Vec<(i64, i64, i64)> {
    let mut stmt = conn
        .prepare("SELECT node_id, at_ms, cpu_requested_millis FROM node_usage ORDER BY 1, 2")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn the_result_does_not_depend_on_step_size_or_on_how_many_passes_ran() {
    let (one, end) = churned_database(11);
    let (many, _) = churned_database(11);
    let policy = usage_policy(6 * HOUR);

    let mut conn = open_for_maintenance(&one.path).unwrap();
    Pass::new(policy.clone(), end)
        .row_budget(1_000_000)
        .run(&mut conn)
        .unwrap();
    let (rollups_one, raw_one) = (rollup_table(&conn), all_raw(&conn));

    // Tiny steps (a chunk boundary every few rows), and three passes as time goes by.
    let mut conn = open_for_maintenance(&many.path).unwrap();
    for now in [end - 30 * HOUR, end - 17 * HOUR - 20 * MIN, end] {
        Pass::new(policy.clone(), now)
            .row_budget(37)
            .run(&mut conn)
            .unwrap();
    }
    let (rollups_many, raw_many) = (rollup_table(&conn), all_raw(&conn));

    assert!(rollups_one.len() > 100);
    assert_eq!(rollups_one, rollups_many);
    assert_eq!(raw_one, raw_many);
}
