//! `kubetrail query nodes`: utilisation numbers against hand-computed time-weighted averages and
//! peaks of the step function in `fixture::usage_scenario` (read its doc first): buckets crossing
//! steps, the value in force at a bucket's start coming from before the window, a node added and
//! deleted mid-bucket, an allocatable change, clipped first and last buckets.

#[path = "common/fixture.rs"]
mod fixture;

use fixture::{
    FixtureDb, GI, HOUR, MIN, T0, kubetrail, parse_csv, parse_json, rfc3339, usage_scenario,
};
use serde_json::Value;

fn nodes(db: &FixtureDb, since: i64, until: i64, extra: &[&str]) -> Vec<Value> {
    let (since, until) = (rfc3339(since), rfc3339(until));
    let mut args = vec![
        "query",
        "nodes",
        "-o",
        "json",
        "--since",
        &since,
        "--until",
        &until,
        "--db",
        db.path_str(),
    ];
    args.extend_from_slice(extra);
    parse_json(kubetrail(&args).ok())
}

/// (node, start, present, cpu avg, cpu peak) of each row.
fn cpu(rows: &[Value]) -> Vec<(String, i64, i64, i64, i64)> {
    rows.iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_string(),
                r["start_ms"].as_i64().unwrap(),
                r["present_ms"].as_i64().unwrap(),
                r["cpu_requested_avg_millis"].as_i64().unwrap(),
                r["cpu_requested_peak_millis"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn row(node: &str, start: i64, present: i64, avg: i64, peak: i64) -> (String, i64, i64, i64, i64) {
    (node.to_string(), start, present, avg, peak)
}

#[test]
fn hourly_buckets_match_hand_computed_averages_and_peaks() {
    let db = usage_scenario();
    let rows = nodes(&db, T0, T0 + 3 * HOUR, &["--step", "1h"]);
    assert_eq!(
        cpu(&rows),
        [
            // 15 min of 1000m (in force since T0-2h) then 45 min of 2000m.
            row("node-a", T0, HOUR, 1750, 2000),
            // 45 min of 2000m then 15 min of 1000m.
            row("node-a", T0 + HOUR, HOUR, 1750, 2000),
            row("node-a", T0 + 2 * HOUR, HOUR, 1000, 1000),
            // Added at 30m: averaged over its 30 minutes, not the whole hour.
            row("node-b", T0, 30 * MIN, 500, 500),
            // Deleted at 1h30m: the stray row at 2h does not count.
            row("node-b", T0 + HOUR, 30 * MIN, 1500, 1500),
        ]
    );
    let first = &rows[0];
    assert_eq!(first["node_uid"], "node-a-uid");
    assert_eq!(first["start"], "2024-05-01T00:00:00.000Z");
    assert_eq!(first["end"], "2024-05-01T01:00:00.000Z");
    assert_eq!(first["end_ms"], T0 + HOUR);
    assert_eq!(first["pods_avg"], 3.5);
    assert_eq!(first["pods_peak"], 4);
    assert_eq!(first["memory_requested_avg_bytes"], 7 * GI / 2);
    assert_eq!(first["memory_requested_peak_bytes"], 4 * GI);
    assert_eq!(first["cpu_requested_avg_ratio"], 0.4375); // (0.25*15 + 0.5*45) / 60
    assert_eq!(first["cpu_requested_peak_ratio"], 0.5);
    assert_eq!(first["cpu_limits_avg_millis"], 3500);
    assert_eq!(first["cpu_limits_peak_millis"], 4000);
    assert_eq!(first["cpu_limits_avg_ratio"], 0.875);
    assert_eq!(first["cpu_limits_peak_ratio"], 1.0);
    assert_eq!(first["memory_limits_avg_ratio"], 0.875);
    assert_eq!(first["cpu_allocatable_avg_millis"], 4000);

    // Allocatable doubles at 2h30m: the ratio is 0.25 for 30 min and 0.125 for 30 min.
    let third = &rows[2];
    assert_eq!(third["cpu_requested_avg_ratio"], 0.1875);
    assert_eq!(third["cpu_requested_peak_ratio"], 0.25);
    assert_eq!(third["memory_requested_avg_ratio"], 0.1875);
    assert_eq!(third["cpu_allocatable_avg_millis"], 6000);
    assert_eq!(third["cpu_allocatable_peak_millis"], 8000);
    assert_eq!(third["memory_allocatable_avg_bytes"], 12 * GI);

    let b1 = &rows[4];
    assert_eq!(b1["cpu_requested_avg_ratio"], 0.75);
    assert_eq!(b1["pods_avg"], 3.0);
    assert_eq!(b1["memory_limits_peak_bytes"], 6 * GI);
}

#[test]
fn half_hour_steps_and_clipped_windows() {
    let db = usage_scenario();
    let rows = nodes(&db, T0 + 30 * MIN, T0 + 2 * HOUR, &["--step", "30m"]);
    assert_eq!(
        cpu(&rows),
        [
            row("node-a", T0 + 30 * MIN, 30 * MIN, 2000, 2000),
            row("node-a", T0 + HOUR, 30 * MIN, 2000, 2000),
            row("node-a", T0 + 90 * MIN, 30 * MIN, 1500, 2000),
            row("node-b", T0 + 30 * MIN, 30 * MIN, 500, 500),
            row("node-b", T0 + HOUR, 30 * MIN, 1500, 1500),
        ]
    );

    // Buckets stay on the hour; the first and last are cut to the window.
    let rows = nodes(&db, T0 + 20 * MIN, T0 + 70 * MIN, &["--node", "node-a"]);
    assert_eq!(
        cpu(&rows),
        [
            row("node-a", T0 + 20 * MIN, 40 * MIN, 2000, 2000),
            row("node-a", T0 + HOUR, 10 * MIN, 2000, 2000)
        ]
    );
    assert_eq!(rows[0]["end_ms"], T0 + HOUR);
    assert_eq!(rows[1]["end_ms"], T0 + 70 * MIN);
}

#[test]
fn without_since_the_report_starts_at_the_first_recorded_row() {
    let db = usage_scenario();
    let until = rfc3339(T0);
    let run = kubetrail(&[
        "query",
        "nodes",
        "--until",
        &until,
        "-o",
        "json",
        "--db",
        db.path_str(),
    ]);
    let rows = parse_json(run.ok());
    assert_eq!(
        cpu(&rows),
        [
            row("node-a", T0 - 2 * HOUR, HOUR, 1000, 1000),
            row("node-a", T0 - HOUR, HOUR, 1000, 1000)
        ]
    );
}

#[test]
fn table_and_csv_show_the_same_buckets() {
    let db = usage_scenario();
    let (since, until) = (rfc3339(T0), rfc3339(T0 + 3 * HOUR));
    let base = [
        "query",
        "nodes",
        "--since",
        &since,
        "--until",
        &until,
        "--db",
        db.path_str(),
    ];
    let table = kubetrail(&base).ok().to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NODE     START                  PODS"),
        "{table}"
    );
    assert!(
        lines[1].contains("3.5/4") && lines[1].contains("1750m/2") && lines[1].contains("44%/50%"),
        "{table}"
    );
    assert!(
        lines[1].contains("3.5Gi/4Gi") && lines[1].contains("4 cpu, 8Gi"),
        "{table}"
    );
    assert!(
        lines[3].contains("19%/25%") && lines[3].contains("6 cpu, 12Gi"),
        "{table}"
    );
    assert_eq!(lines.len(), 7, "header, 5 rows, legend: {table}");

    let mut args = base.to_vec();
    args.extend(["-o", "csv"]);
    let (header, records) = parse_csv(kubetrail(&args).ok());
    assert_eq!(header.len(), 39);
    assert_eq!(
        header[..7],
        [
            "node",
            "node_uid",
            "start",
            "start_ms",
            "end",
            "end_ms",
            "present_ms"
        ]
    );
    assert_eq!(records.len(), 5);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(records[0][col("cpu_requested_avg_millis")], "1750");
    assert_eq!(records[0][col("cpu_requested_avg_ratio")], "0.4375");
    assert_eq!(records[4][col("node")], "node-b");
    assert_eq!(records[4][col("present_ms")], (30 * MIN).to_string());
}

#[test]
fn a_step_too_fine_for_the_window_is_a_usage_error() {
    let db = usage_scenario();
    let run = kubetrail(&[
        "query",
        "nodes",
        "--since",
        "30d",
        "--step",
        "1s",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("larger --step"), "{}", run.stderr);
}

#[test]
fn rolled_up_hours_report_what_the_raw_rows_did() {
    let db = usage_scenario();
    let hourly = nodes(&db, T0, T0 + 3 * HOUR, &["--step", "1h"]);
    let three_hours = nodes(&db, T0, T0 + 3 * HOUR, &["--step", "3h"]);
    let half_hours = nodes(&db, T0 + 2 * HOUR, T0 + 3 * HOUR, &["--step", "30m"]);

    // Retention replaces the raw rows before 2h by hourly rollups and a keyframe at 2h.
    let raw_left = db.with_writer(|conn| {
        while !kubetrail::retention::roll_up(conn, T0 + 2 * HOUR, 1000)
            .unwrap()
            .done
        {}
        conn.query_row(
            "SELECT count(*) FROM node_usage WHERE at_ms < ?1",
            [T0 + 2 * HOUR],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    });
    assert_eq!(raw_left, 0, "the raw rows before the horizon are gone");

    assert_eq!(nodes(&db, T0, T0 + 3 * HOUR, &["--step", "1h"]), hourly);
    // One 3h bucket = two rolled-up hours merged with one raw hour.
    assert_eq!(
        nodes(&db, T0, T0 + 3 * HOUR, &["--step", "3h"]),
        three_hours
    );
    assert_eq!(three_hours[0]["cpu_requested_avg_millis"], 1500); // (1750 + 1750 + 1000) / 3
    // After the horizon the raw rows still give half-hour resolution.
    assert_eq!(
        nodes(&db, T0 + 2 * HOUR, T0 + 3 * HOUR, &["--step", "30m"]),
        half_hours
    );
    // Without --since the report starts at the oldest rollup (T0-2h for node-a).
    let until = rfc3339(T0);
    let run = kubetrail(&[
        "query",
        "nodes",
        "--until",
        &until,
        "-o",
        "json",
        "--db",
        db.path_str(),
    ]);
    // The report says which resolution answered which part of the window (on stderr).
    assert!(
        run.stderr.contains(&format!(
            "hourly rollups before {}",
            rfc3339_ms(T0 + 2 * HOUR)
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        cpu(&parse_json(run.ok()))[0],
        row("node-a", T0 - 2 * HOUR, HOUR, 1000, 1000)
    );
    // A window entirely after the horizon is all raw rows: no note.
    let raw_only = kubetrail(&[
        "query",
        "nodes",
        "--since",
        &rfc3339(T0 + 2 * HOUR),
        "--until",
        &rfc3339(T0 + 3 * HOUR),
        "--step",
        "30m",
        "--db",
        db.path_str(),
    ]);
    assert!(!raw_only.stderr.contains("rollups"), "{}", raw_only.stderr);
}

fn rfc3339_ms(ms: i64) -> String {
    kubetrail::model::time::format_time_ms(ms)
}
