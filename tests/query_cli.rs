//! `kubetrail query pods|history|transitions` run as a user would, against the fixture
//! scenario (see `common/fixture.rs` for its exact content), plus every bad-input path and a
//! reader running while a writer holds a write transaction.

#[path = "common/fixture.rs"]
mod fixture;

use fixture::{
    FixtureDb, HOUR, MIN, SEC, T0, kubetrail, kubetrail_in, parse_csv, parse_json, rfc3339,
    scenario,
};
use serde_json::Value;

fn strings(values: &[Value], field: &str) -> Vec<String> {
    values
        .iter()
        .map(|v| v[field].as_str().unwrap_or("<null>").to_string())
        .collect()
}

// ---- history ----

#[test]
fn history_shows_every_incarnation_of_a_reused_name_in_order() {
    let db = scenario();
    let run = kubetrail(&[
        "query",
        "history",
        "web-0",
        "-n",
        "shop",
        "-o",
        "json",
        "--db",
        db.path_str(),
    ]);
    let incarnations = parse_json(run.ok());
    assert_eq!(strings(&incarnations, "uid"), ["web-0-a", "web-0-b"]);
    let first = &incarnations[0];
    assert_eq!(first["namespace"], "shop");
    assert_eq!(first["created_at_ms"], T0);
    assert_eq!(first["deleted"], rfc3339(T0 + HOUR + 5 * SEC));
    assert_eq!(first["phase"], "Failed");
    assert_eq!(first["reason"], "OOMKilled");
    let rows = first["transitions"].as_array().unwrap();
    assert_eq!(
        strings(rows, "kind"),
        [
            "created",
            "scheduled",
            "started",
            "ready",
            "container_terminated",
            "failed",
            "deleted"
        ]
    );
    let oom = &rows[4];
    assert_eq!(oom["reason"], "OOMKilled");
    assert_eq!(oom["exit_code"], 137);
    assert_eq!(oom["container"], "app");
    assert_eq!(oom["node"], "node-a");
    assert_eq!(oom["at"], rfc3339(T0 + HOUR));
    assert_eq!(oom["at_ms"], T0 + HOUR);
    assert_eq!(oom["observed_at_ms"], T0 + HOUR + SEC);
    assert_eq!(rows[2]["phase_before"], "Pending");
    assert_eq!(rows[2]["phase_after"], "Running");
    assert_eq!(rows[0]["resource_version"], 100);
    let second = incarnations[1]["transitions"].as_array().unwrap();
    assert_eq!(
        strings(second, "kind"),
        [
            "created",
            "scheduled",
            "started",
            "ready",
            "container_restarted",
            "container_restarted"
        ]
    );
    assert_eq!(second[5]["restart_count"], 2);
    assert_eq!(incarnations[1]["deleted"], Value::Null);
}

#[test]
fn history_table_groups_incarnations_and_marks_inferred_rows() {
    let db = scenario();
    let out = kubetrail(&[
        "query",
        "history",
        "web-0",
        "-n",
        "shop",
        "--db",
        db.path_str(),
    ])
    .ok()
    .to_string();
    let first = out.find("uid web-0-a   (incarnation 1 of 2)").expect(&out);
    let second = out.find("uid web-0-b   (incarnation 2 of 2)").expect(&out);
    assert!(first < second, "{out}");
    assert!(
        out.contains("2024-05-01T01:00:00Z   container_terminated   -"),
        "{out}"
    );
    assert!(out.contains("Pending->Running"), "{out}");
    assert!(out.contains("OOMKilled   137"), "{out}");

    let out = kubetrail(&["query", "history", "cache-1", "--db", db.path_str()])
        .ok()
        .to_string();
    assert!(out.contains("deleted*"), "{out}");
    assert!(out.contains("* inferred"), "{out}");
    assert!(
        out.contains("The node was low on resource: memory."),
        "{out}"
    );
    assert!(
        !out.contains("incarnation"),
        "a single incarnation has no counter: {out}"
    );
}

#[test]
fn history_by_uid_and_in_a_window() {
    let db = scenario();
    let run = kubetrail(&[
        "query",
        "history",
        "--uid",
        "web-0-b",
        "-o",
        "json",
        "--db",
        db.path_str(),
    ]);
    let incarnations = parse_json(run.ok());
    assert_eq!(strings(&incarnations, "uid"), ["web-0-b"]);

    // Only the second incarnation is alive after 2h, and only its restarts happen after it.
    let since = rfc3339(T0 + 2 * HOUR);
    let run = kubetrail(&[
        "query",
        "history",
        "web-0",
        "-n",
        "shop",
        "--since",
        &since,
        "-o",
        "json",
        "--db",
        db.path_str(),
    ]);
    let incarnations = parse_json(run.ok());
    assert_eq!(strings(&incarnations, "uid"), ["web-0-b"]);
    let rows = incarnations[0]["transitions"].as_array().unwrap();
    assert_eq!(
        strings(rows, "kind"),
        ["container_restarted", "container_restarted"]
    );
}

#[test]
fn history_csv_is_flat_with_the_transition_header() {
    let db = scenario();
    let run = kubetrail(&[
        "query",
        "history",
        "web-0",
        "-n",
        "shop",
        "-o",
        "csv",
        "--db",
        db.path_str(),
    ]);
    let (header, records) = parse_csv(run.ok());
    assert_eq!(header, TRANSITION_HEADER);
    assert_eq!(records.len(), 13);
    assert_eq!(records[0][1], "web-0-a");
    assert_eq!(records[12][1], "web-0-b");
    assert_eq!(records[4][5], "container_terminated");
    assert_eq!(records[4][6], "2024-05-01T01:00:00.000Z");
}

#[test]
fn an_ambiguous_name_without_namespace_exits_2_listing_namespaces() {
    let db = scenario();
    let run = kubetrail(&["query", "history", "web-0", "--db", db.path_str()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("ambiguous"), "{}", run.stderr);
    assert!(run.stderr.contains("other, shop"), "{}", run.stderr);
    assert!(run.stderr.contains("-n"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn an_unknown_pod_exits_1_with_a_clear_message() {
    let db = scenario();
    let run = kubetrail(&["query", "history", "nope", "--db", db.path_str()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no pod named \"nope\" in any namespace"),
        "{}",
        run.stderr
    );

    let run = kubetrail(&[
        "query",
        "history",
        "job-x",
        "-n",
        "shop",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("it exists in namespaces batch"),
        "{}",
        run.stderr
    );

    let run = kubetrail(&[
        "query",
        "history",
        "--uid",
        "no-such-uid",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no-such-uid"), "{}", run.stderr);
}

// ---- transitions ----

const TRANSITION_HEADER: [&str; 19] = [
    "subject",
    "uid",
    "namespace",
    "pod",
    "node",
    "kind",
    "at",
    "at_ms",
    "observed_at",
    "observed_at_ms",
    "phase_before",
    "phase_after",
    "container",
    "reason",
    "exit_code",
    "restart_count",
    "message",
    "resource_version",
    "inferred",
];

fn transitions(db: &FixtureDb, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["query", "transitions", "-o", "json", "--db", db.path_str()];
    args.extend_from_slice(extra);
    parse_json(kubetrail(&args).ok())
}

fn kinds_and_uids(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, u)| (k.to_string(), u.to_string()))
        .collect()
}

#[test]
fn transitions_filter_by_kind_and_reason() {
    let db = scenario();
    let rows = transitions(
        &db,
        &["--kind", "container_terminated", "--reason", "OOMKilled"],
    );
    assert_eq!(
        kinds_and_uids(&rows),
        pairs(&[("container_terminated", "web-0-a")])
    );
    assert_eq!(rows[0]["namespace"], "shop");
    assert_eq!(rows[0]["pod"], "web-0");

    let rows = transitions(&db, &["--kind", "failed", "--reason", "OOMKilled,Evicted"]);
    assert_eq!(
        kinds_and_uids(&rows),
        pairs(&[("failed", "web-0-a"), ("failed", "cache-1")])
    );

    let rows = transitions(&db, &["--kind", "deleted"]);
    assert_eq!(
        kinds_and_uids(&rows),
        pairs(&[
            ("deleted", "job-x"),
            ("deleted", "web-0-a"),
            ("deleted", "cache-1"),
            ("deleted", "other-web-0")
        ])
    );
    assert_eq!(rows[2]["inferred"], true);
    assert_eq!(rows[0]["inferred"], false);
}

#[test]
fn transitions_filter_by_window_namespace_node_and_labels() {
    let db = scenario();
    let since = rfc3339(T0 + 30 * MIN);
    let until = rfc3339(T0 + HOUR);
    // Half-open window: 30m is in, 1h is out.
    let rows = transitions(&db, &["--since", &since, "--until", &until]);
    assert_eq!(
        kinds_and_uids(&rows),
        pairs(&[
            ("container_terminated", "job-x"),
            ("succeeded", "job-x"),
            ("deleted", "job-x")
        ])
    );

    let rows = transitions(&db, &["-n", "batch"]);
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r["namespace"] == "batch"));

    // -n with a window: answered from the window (narrow) or from the namespace (small
    // namespace, wide window); both plans give the same rows.
    let (since, until) = (rfc3339(T0 + HOUR), rfc3339(T0 + 2 * HOUR));
    let rows = transitions(&db, &["-n", "shop", "--since", &since, "--until", &until]);
    assert_eq!(
        kinds_and_uids(&rows),
        pairs(&[
            ("container_terminated", "web-0-a"),
            ("failed", "web-0-a"),
            ("deleted", "web-0-a"),
            ("created", "web-0-b"),
            ("scheduled", "web-0-b"),
            ("started", "web-0-b"),
            ("ready", "web-0-b"),
            ("failed", "cache-1"),
            ("deleted", "cache-1"),
        ])
    );
    let since = rfc3339(T0 - HOUR);
    let rows = transitions(&db, &["-n", "batch", "--since", &since]);
    assert_eq!(rows.len(), 6);

    let rows = transitions(&db, &["--node", "node-b", "--kind", "failed,succeeded"]);
    assert_eq!(
        kinds_and_uids(&rows),
        pairs(&[("succeeded", "job-x"), ("failed", "cache-1")])
    );

    let rows = transitions(&db, &["-l", "tier=backend"]);
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["uid"] == "cache-1"));

    let rows = transitions(&db, &["--limit", "2"]);
    assert_eq!(
        kinds_and_uids(&rows),
        pairs(&[("created", "web-0-a"), ("scheduled", "web-0-a")])
    );
}

#[test]
fn node_transitions_come_with_node_kinds_or_nodes_flag() {
    let db = scenario();
    let rows = transitions(&db, &["--kind", "not_ready"]);
    assert_eq!(kinds_and_uids(&rows), pairs(&[("not_ready", "node-b-uid")]));
    assert_eq!(rows[0]["subject"], "node");
    assert_eq!(rows[0]["node"], "node-b");
    assert_eq!(rows[0]["namespace"], Value::Null);

    // Pod rows only by default; `deleted` alone is the pod kind.
    let rows = transitions(&db, &["--kind", "deleted"]);
    assert!(rows.iter().all(|r| r["subject"] == "pod"));
    let rows = transitions(&db, &["--kind", "node:deleted"]);
    assert_eq!(kinds_and_uids(&rows), pairs(&[("deleted", "node-b-uid")]));

    let since = rfc3339(T0 + HOUR + 21 * MIN);
    let rows = transitions(&db, &["--nodes", "--since", &since, "--node", "node-b"]);
    assert_eq!(
        kinds_and_uids(&rows),
        // Same `at` for both deletions: insertion order breaks the tie.
        pairs(&[
            ("not_ready", "node-b-uid"),
            ("deleted", "node-b-uid"),
            ("deleted", "cache-1")
        ])
    );
    assert_eq!(transitions(&db, &["--nodes"]).len(), 30);
    assert_eq!(transitions(&db, &[]).len(), 26);
}

#[test]
fn transitions_table_and_csv() {
    let db = scenario();
    let out = kubetrail(&[
        "query",
        "transitions",
        "--kind",
        "container_terminated",
        "--db",
        db.path_str(),
    ])
    .ok()
    .to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("AT  "), "{out}");
    assert!(
        lines[1].contains("batch/job-x") && lines[1].contains("Completed"),
        "{out}"
    );
    assert!(
        lines[2].contains("shop/web-0") && lines[2].contains("OOMKilled   137"),
        "{out}"
    );

    let run = kubetrail(&["query", "transitions", "-o", "csv", "--db", db.path_str()]);
    let (header, records) = parse_csv(run.ok());
    assert_eq!(header, TRANSITION_HEADER);
    assert_eq!(records.len(), 26);

    let run = kubetrail(&[
        "query",
        "transitions",
        "--kind",
        "bogus",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("\"bogus\"") && run.stderr.contains("container_terminated"),
        "{}",
        run.stderr
    );

    let run = kubetrail(&[
        "query",
        "transitions",
        "--reason",
        "Nothing",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.ok(), "");
    assert!(
        run.stderr.contains("no transitions match"),
        "{}",
        run.stderr
    );
}

// ---- pods ----

fn pods(db: &FixtureDb, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["query", "pods", "-o", "json", "--db", db.path_str()];
    args.extend_from_slice(extra);
    parse_json(kubetrail(&args).ok())
}

#[test]
fn pods_summarise_each_incarnation() {
    let db = scenario();
    let all = pods(&db, &[]);
    assert_eq!(
        strings(&all, "uid"),
        ["web-0-a", "job-x", "cache-1", "web-0-b", "other-web-0"]
    );
    let web = &all[0];
    assert_eq!(web["namespace"], "shop");
    assert_eq!(web["name"], "web-0");
    assert_eq!(web["node"], "node-a");
    assert_eq!(web["created"], "2024-05-01T00:00:00.000Z");
    assert_eq!(web["started_at_ms"], T0 + 10 * SEC);
    assert_eq!(web["finished_at_ms"], T0 + HOUR);
    assert_eq!(web["lifetime_ms"], HOUR + 5 * SEC);
    assert_eq!(web["open"], false);
    assert_eq!(web["phase"], "Failed");
    assert_eq!(web["reason"], "OOMKilled");
    assert_eq!(web["cpu_request_millis"], 500);
    assert_eq!(web["memory_request_bytes"], 1 << 30);
    assert_eq!(web["cpu_limit_millis"], 1000);
    assert_eq!(web["owner_kind"], "StatefulSet");
    let open = &all[3];
    assert_eq!(open["open"], true);
    assert_eq!(open["restarts"], 2);
    assert_eq!(open["deleted"], Value::Null);
}

#[test]
fn pods_filter_by_window_phase_namespace_node_and_labels() {
    let db = scenario();
    let since = rfc3339(T0 + 2 * HOUR);
    assert_eq!(
        strings(&pods(&db, &["--since", &since]), "uid"),
        ["web-0-b", "other-web-0"]
    );
    let until = rfc3339(T0 + 5 * MIN);
    assert_eq!(
        strings(&pods(&db, &["--until", &until]), "uid"),
        ["web-0-a"]
    );
    assert_eq!(
        strings(&pods(&db, &["--phase", "failed"]), "uid"),
        ["web-0-a", "cache-1"]
    );
    assert_eq!(
        strings(&pods(&db, &["-n", "shop"]), "uid"),
        ["web-0-a", "cache-1", "web-0-b"]
    );
    assert_eq!(
        strings(&pods(&db, &["--node", "node-b"]), "uid"),
        ["job-x", "cache-1"]
    );
    assert_eq!(
        strings(&pods(&db, &["-l", "app=web"]), "uid"),
        ["web-0-a", "web-0-b", "other-web-0"]
    );
    assert_eq!(
        strings(&pods(&db, &["-l", "app in (job,cache),!tier"]), "uid"),
        ["job-x"]
    );
    assert_eq!(
        strings(&pods(&db, &["-A", "--limit", "1"]), "uid"),
        ["web-0-a"]
    );
}

#[test]
fn pods_table_prints_kubernetes_quantities() {
    let db = scenario();
    let out = kubetrail(&["query", "pods", "-n", "shop", "--db", db.path_str()])
        .ok()
        .to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE   NAME      NODE"), "{out}");
    assert!(lines[1].contains("Failed (OOMKilled)"), "{out}");
    assert!(
        lines[1].contains("   1h   "),
        "lifetime 1h5s prints as 1h: {out}"
    );
    assert!(lines[1].ends_with("500m   1Gi"), "{out}");
    assert!(lines[2].ends_with("250m   256Mi"), "{out}");
    assert!(lines[3].contains("Running"), "{out}");
    assert!(out.contains("+ still open"), "{out}");

    let run = kubetrail(&["query", "pods", "-o", "csv", "--db", db.path_str()]);
    let (header, records) = parse_csv(run.ok());
    assert_eq!(header[..4], ["namespace", "name", "uid", "node"]);
    assert_eq!(records.len(), 5);
}

// ---- bad input ----

#[test]
fn malformed_and_reversed_windows_are_usage_errors_naming_the_values() {
    let db = scenario();
    let run = kubetrail(&[
        "query",
        "pods",
        "--since",
        "yesterday",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--since \"yesterday\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("RFC 3339") && run.stderr.contains("2h"),
        "{}",
        run.stderr
    );

    let run = kubetrail(&[
        "query",
        "transitions",
        "--since",
        "1h",
        "--until",
        "2h",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--until 2h") && run.stderr.contains("--since 1h"),
        "{}",
        run.stderr
    );

    let run = kubetrail(&["query", "nodes", "--step", "1x", "--db", db.path_str()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("\"1x\""), "{}", run.stderr);

    let run = kubetrail(&["query", "pods", "--phase", "Done", "--db", db.path_str()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("Succeeded"), "{}", run.stderr);

    let run = kubetrail(&["query", "pods", "-l", "app in web", "--db", db.path_str()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn an_unknown_output_format_is_a_clap_error() {
    let db = scenario();
    let run = kubetrail(&["query", "pods", "-o", "yaml", "--db", db.path_str()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("yaml") && run.stderr.contains("table, json, csv"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_database_exits_1_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.db");
    for args in [
        vec!["query", "pods", "--db", missing.to_str().unwrap()],
        vec!["query", "history", "x", "--db", missing.to_str().unwrap()],
        vec!["export", "transitions", "--db", missing.to_str().unwrap()],
    ] {
        let run = kubetrail(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
        assert!(!missing.exists(), "{args:?} created the database");
    }
    // The default path, relative to the working directory.
    let run = kubetrail_in(Some(dir.path()), &["query", "transitions"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("kubetrail.db"), "{}", run.stderr);
    assert!(!dir.path().join("kubetrail.db").exists());
}

#[test]
fn a_file_that_is_not_a_database_is_named_at_once_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    let text = "not a database, just some text ".repeat(100);
    std::fs::write(&notes, &text).unwrap();
    for args in [
        vec!["query", "pods", "--db", notes.to_str().unwrap()],
        vec!["export", "transitions", "--db", notes.to_str().unwrap()],
        vec!["stats", "--db", notes.to_str().unwrap()],
    ] {
        let run = kubetrail(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("notes.txt is not a kubetrail database"),
            "{args:?}: {}",
            run.stderr
        );
        // Before the check moved ahead of the pool, r2d2 retried for 30 s and logged each try.
        assert!(
            run.stderr.lines().count() <= 3,
            "one message, not a log flood:\n{}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), text);
}

#[test]
fn the_database_can_come_from_the_environment() {
    let db = scenario();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["query", "pods", "-o", "csv"])
        .env("KUBETRAIL_DB", &db.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
}

// ---- concurrency ----

#[test]
fn a_reader_answers_while_a_writer_holds_a_write_transaction() {
    let db = scenario();
    // WAL mode is set by open_for_writing; a second connection takes the write lock and keeps
    // an uncommitted insert open while the query runs.
    let writer = rusqlite::Connection::open(&db.path).unwrap();
    writer
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    writer
        .execute(
            "INSERT INTO pods (uid, namespace, name, created_at_ms, phase) VALUES ('new', 'shop', 'late', ?1, 1)",
            [T0 + 4 * HOUR],
        )
        .unwrap();
    let started = std::time::Instant::now();
    let rows = pods(&db, &[]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the reader waited for the writer"
    );
    assert_eq!(rows.len(), 5, "uncommitted rows are invisible");
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(pods(&db, &[]).len(), 6);
}

/// The fixture plus three events: a BackOff series about web-0's first incarnation, a
/// Scheduled about it, and a node event.
fn with_events() -> FixtureDb {
    use kubetrail::model::event::{EventType, RegardingKind};
    use kubetrail::store::{Batch, EventRow};
    let db = scenario();
    let event = |uid: &str, reason: &str, count, at| EventRow {
        uid: uid.into(),
        regarding_kind: RegardingKind::Pod,
        regarding_uid: Some("web-0-a".into()),
        namespace: Some("shop".into()),
        name: "web-0".into(),
        container: Some("app".into()),
        reason: Some(reason.into()),
        event_type: Some(if reason == "BackOff" {
            EventType::Warning
        } else {
            EventType::Normal
        }),
        note: Some(format!("{reason} happened")),
        reporting_controller: Some("kubelet".into()),
        count,
        first_seen_ms: T0 + 5 * SEC,
        last_seen_ms: at,
    };
    let mut node = event("e-node", "NodeNotReady", 1, T0 + 30 * SEC);
    node.regarding_kind = RegardingKind::Node;
    node.regarding_uid = Some("node-a".into());
    node.namespace = None;
    node.name = "node-a".into();
    node.container = None;
    let batch = Batch {
        events: vec![
            event("e-sched", "Scheduled", 1, T0 + 5 * SEC),
            event("e-backoff", "BackOff", 4, T0 + 15 * SEC),
            node,
        ],
        ..Batch::default()
    };
    db.write(&batch);
    db
}

#[test]
fn events_filter_by_reason_type_pod_and_node_and_print_as_json_and_csv() {
    let db = with_events();
    let uids = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["query", "events", "-o", "json", "--db", db.path_str()];
        args.extend_from_slice(extra);
        let run = kubetrail(&args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        strings(&parse_json(&run.stdout), "uid")
    };
    assert_eq!(uids(&[]), ["e-sched", "e-backoff", "e-node"]);
    assert_eq!(
        uids(&["--reason", "BackOff", "--reason", "Scheduled"]),
        ["e-sched", "e-backoff"]
    );
    assert_eq!(uids(&["--type", "Warning"]), ["e-backoff"]);
    assert_eq!(
        uids(&["--pod", "web-0", "-n", "shop"]),
        ["e-sched", "e-backoff"]
    );
    assert_eq!(uids(&["--node", "node-a"]), ["e-node"]);
    let since = rfc3339(T0 + 10 * SEC);
    assert_eq!(uids(&["--since", &since]), ["e-backoff", "e-node"]);
    let csv = kubetrail(&["query", "events", "-o", "csv", "--db", db.path_str()]);
    let (header, rows) = parse_csv(&csv.stdout);
    assert_eq!(rows.len(), 3);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows[1][col("count")], "4");
    assert_eq!(rows[1][col("container")], "app");
    assert_eq!(rows[2][col("kind")], "Node");
}

#[test]
fn history_merges_the_pods_events_into_its_timeline() {
    let db = with_events();
    let run = kubetrail(&[
        "query",
        "history",
        "web-0",
        "-n",
        "shop",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).expect(needle);
    // By time: started (10s) comes between the Scheduled event (5s) and the BackOff (15s).
    assert!(at("event:Scheduled") < at("started"), "{}", run.stdout);
    assert!(at("started") < at("event:BackOff"), "{}", run.stdout);
    assert!(run.stdout.contains("(x4 since"), "{}", run.stdout);
    let json = kubetrail(&[
        "query",
        "history",
        "web-0",
        "-n",
        "shop",
        "-o",
        "json",
        "--db",
        db.path_str(),
    ]);
    let incarnations = parse_json(&json.stdout);
    let events = incarnations[0]["events"].as_array().unwrap();
    assert_eq!(strings(events, "uid"), ["e-sched", "e-backoff"]);
    assert!(incarnations[1]["events"].as_array().unwrap().is_empty());
}

#[test]
fn an_unknown_event_type_is_a_usage_error() {
    let db = with_events();
    let run = kubetrail(&["query", "events", "--type", "Bogus", "--db", db.path_str()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("Normal or Warning"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}
