//! Reports count only recorded time (issue: step functions and pod lifetimes ran on past the
//! end of recording), say when node sums are partial (a recorder with `-n`/`-l`), and `query
//! pods` shows deletions. Fixture databases with hand-written recording sessions, read by the
//! real binary.

#[path = "common/fixture.rs"]
mod fixture;

use fixture::{
    FixtureDb, GI, HOUR, MIN, T0, kubetrail, node, parse_csv, parse_json, pod, rfc3339, usage,
};
use kubetrail::model::Phase;
use kubetrail::store::Batch;
use serde_json::Value;

/// The table form of a time: RFC 3339 without a zero fraction.
fn short(ms: i64) -> String {
    rfc3339(ms).replace(".000Z", "Z")
}

/// node-a (uid na) with one usage row at T0: 1000m of 4000m, 2 pods, never changed again.
fn one_quiet_node() -> FixtureDb {
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch.nodes.push(
        node("na", "node-a", T0 - HOUR)
            .allocatable(4000, 8 * GI, 110)
            .build(),
    );
    batch.node_usage.push(
        usage("na", T0)
            .requested(1000, 2 * GI)
            .pods(2)
            .allocatable(4000, 8 * GI)
            .build(),
    );
    db.write(&batch);
    db
}

fn nodes_json(db: &FixtureDb, since: i64, until: i64) -> (Vec<Value>, String) {
    let (since, until) = (rfc3339(since), rfc3339(until));
    let run = kubetrail(&[
        "query",
        "nodes",
        "-o",
        "json",
        "--step",
        "1h",
        "--since",
        &since,
        "--until",
        &until,
        "--db",
        db.path_str(),
    ]);
    (parse_json(run.ok()), run.stderr)
}

fn present(rows: &[Value]) -> Vec<(i64, i64)> {
    rows.iter()
        .map(|r| {
            (
                r["start_ms"].as_i64().unwrap() - T0,
                r["present_ms"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn node_utilisation_does_not_run_on_past_the_end_of_recording() {
    // Recorded for one hour, read three hours later (a backup looked at afterwards).
    let db = one_quiet_node();
    db.session(T0, T0 + HOUR, true, None, None);
    let (rows, stderr) = nodes_json(&db, T0, T0 + 3 * HOUR);
    assert_eq!(present(&rows), vec![(0, HOUR)], "{rows:?}");
    assert!(
        stderr.contains("coverage: 1h of the 3h window recorded"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&rfc3339(T0 + HOUR)),
        "names the gap: {stderr}"
    );
}

#[test]
fn node_utilisation_skips_the_time_the_recorder_was_down() {
    let db = one_quiet_node();
    // Down from 0:30 to 2:00 (a crash: the first session ends at its last heartbeat).
    db.session(T0, T0 + 30 * MIN, false, None, None);
    db.session(T0 + 2 * HOUR, T0 + 3 * HOUR, true, None, None);
    let (rows, stderr) = nodes_json(&db, T0, T0 + 3 * HOUR);
    assert_eq!(present(&rows), vec![(0, 30 * MIN), (2 * HOUR, HOUR)]);
    assert_eq!(
        rows[0]["cpu_requested_avg_millis"], 1000,
        "averaged over recorded time"
    );
    assert!(
        stderr.contains("1h30m of the 3h window recorded"),
        "{stderr}"
    );
}

#[test]
fn export_nodes_counts_only_recorded_time_too() {
    let db = one_quiet_node();
    db.session(T0, T0 + HOUR, true, None, None);
    let (since, until) = (rfc3339(T0), rfc3339(T0 + 3 * HOUR));
    let run = kubetrail(&[
        "export",
        "nodes",
        "--since",
        &since,
        "--until",
        &until,
        "--db",
        db.path_str(),
    ]);
    let (header, records) = parse_csv(run.ok());
    assert_eq!(records.len(), 1, "{records:?}");
    let present = header.iter().position(|h| h == "present_ms").unwrap();
    assert_eq!(records[0][present], HOUR.to_string());
    assert!(run.stderr.contains("coverage:"), "{}", run.stderr);
}

#[test]
fn node_sums_recorded_with_a_namespace_are_marked_partial_in_every_report() {
    let db = one_quiet_node();
    db.session(T0, T0 + HOUR, true, Some("shop"), None);
    db.session(T0 + HOUR, T0 + 2 * HOUR, true, None, None);
    let (rows, stderr) = nodes_json(&db, T0, T0 + 2 * HOUR);
    let partial: Vec<bool> = rows
        .iter()
        .map(|r| r["partial"].as_bool().unwrap())
        .collect();
    assert_eq!(partial, vec![true, false], "{rows:?}");
    assert!(
        stderr.contains("partial") && stderr.contains("-n shop"),
        "{stderr}"
    );

    let (since, until) = (rfc3339(T0), rfc3339(T0 + 2 * HOUR));
    let table = kubetrail(&[
        "query",
        "nodes",
        "--since",
        &since,
        "--until",
        &until,
        "--db",
        db.path_str(),
    ]);
    let out = table.ok();
    assert!(out.contains("node-a~"), "{out}");
    assert!(out.contains("~ partial"), "legend: {out}");
}

#[test]
fn an_open_pods_lifetime_ends_where_recording_ended() {
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch.pods.push(
        pod("p1", "shop", "web", T0)
            .node("node-a")
            .started(T0 + MIN)
            .phase(Phase::Running)
            .build(),
    );
    db.write(&batch);
    db.session(T0, T0 + HOUR, true, None, None);
    let run = kubetrail(&["query", "pods", "-o", "json", "--db", db.path_str()]);
    let rows = parse_json(run.ok());
    assert_eq!(rows[0]["lifetime_ms"], HOUR, "not until now: {rows:?}");
    assert_eq!(rows[0]["open"], true);
}

#[test]
fn stats_shows_the_recorded_time_and_its_gaps() {
    let db = one_quiet_node();
    db.session(T0, T0 + HOUR, true, None, None);
    db.session(T0 + 2 * HOUR, T0 + 3 * HOUR, false, Some("shop"), None);
    let out = kubetrail(&["stats", "--db", db.path_str()])
        .ok()
        .to_string();
    assert!(out.contains("coverage:    2h recorded"), "{out}");
    assert!(out.contains("2 session(s), 1 gap(s)"), "{out}");
    assert!(
        out.contains(&format!(
            "gap {} .. {}",
            short(T0 + HOUR),
            short(T0 + 2 * HOUR)
        )),
        "{out}"
    );
    assert!(
        out.contains("partial node sums: recorded with -n shop"),
        "{out}"
    );

    let json = kubetrail(&["stats", "-o", "json", "--db", db.path_str()]);
    let v: Value = serde_json::from_str(json.ok()).unwrap();
    assert_eq!(v["coverage"]["sessions"], 2);
    assert_eq!(v["coverage"]["covered_ms"], 2 * HOUR);
    assert_eq!(v["coverage"]["last_open"], true);
}

#[test]
fn query_pods_shows_when_a_deleted_pod_was_deleted() {
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch.pods.push(
        pod("p1", "shop", "web", T0)
            .started(T0 + MIN)
            .phase(Phase::Running)
            .deleted(T0 + HOUR)
            .build(),
    );
    db.write(&batch);
    let out = kubetrail(&["query", "pods", "--db", db.path_str()])
        .ok()
        .to_string();
    let header = out.lines().next().unwrap();
    assert!(header.contains("DELETED"), "{out}");
    assert!(
        out.contains(&short(T0 + HOUR)),
        "the deletion time is shown: {out}"
    );
}
