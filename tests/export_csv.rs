//! `kubetrail export`: RFC 4180 CSV that parses with the csv crate, has the documented header,
//! and is exactly what `query ... -o csv` prints for the same filters (one row source).

#[path = "common/fixture.rs"]
mod fixture;

use fixture::{HOUR, T0, kubetrail, parse_csv, rfc3339, scenario, usage_scenario};

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

#[test]
fn export_transitions_to_a_file_matches_the_query() {
    let db = scenario();
    let out = db.dir.path().join("transitions.csv");
    let run = kubetrail(&[
        "export",
        "transitions",
        "--nodes",
        "--out",
        out.to_str().unwrap(),
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.ok(), "", "nothing on stdout with --out");
    assert_eq!(
        run.stderr, "",
        "no progress output when stderr is not a terminal"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let (header, records) = parse_csv(&text);
    assert_eq!(header, TRANSITION_HEADER);
    assert_eq!(records.len(), 30);
    assert!(text.contains(
        "pod,web-0-a,shop,web-0,node-a,container_terminated,2024-05-01T01:00:00.000Z,1714525200000,\
         2024-05-01T01:00:01.000Z,1714525201000,,,app,OOMKilled,137,0,,,false\n"
    ), "{text}");
    // A message with commas and a colon is quoted, not split.
    let evicted = records.iter().find(|r| r[13] == "Evicted").unwrap();
    assert_eq!(evicted[16], "The node was low on resource: memory.");
    assert_eq!(records[0][0], "node");

    let query = kubetrail(&[
        "query",
        "transitions",
        "--nodes",
        "-o",
        "csv",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(query.ok(), text, "export and query -o csv must agree");

    // Only the report is left in the directory: the temporary file was renamed into place.
    let mut names: Vec<String> = std::fs::read_dir(db.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
}

#[test]
fn export_filters_are_the_query_filters() {
    let db = scenario();
    let since = rfc3339(T0 + HOUR);
    let run = kubetrail(&[
        "export",
        "transitions",
        "--kind",
        "container_terminated,failed",
        "--reason",
        "OOMKilled",
        "--since",
        &since,
        "--db",
        db.path_str(),
    ]);
    let (_, records) = parse_csv(run.ok());
    let kinds: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r[5].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("container_terminated", "web-0-a"), ("failed", "web-0-a")]
    );

    let run = kubetrail(&["export", "pods", "-n", "shop", "--db", db.path_str()]);
    let text = run.ok().to_string();
    let (header, records) = parse_csv(&text);
    assert_eq!(header[..3], ["namespace", "name", "uid"]);
    let uids: Vec<&str> = records.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(uids, ["web-0-a", "cache-1", "web-0-b"]);
    assert_eq!(
        records[0][header.iter().position(|h| h == "lifetime_ms").unwrap()],
        "3605000"
    );
    assert_eq!(
        records[0][header
            .iter()
            .position(|h| h == "memory_request_bytes")
            .unwrap()],
        "1073741824"
    );
}

#[test]
fn export_nodes_matches_query_nodes() {
    let db = usage_scenario();
    let (since, until) = (rfc3339(T0), rfc3339(T0 + 3 * HOUR));
    let window = [
        "--since",
        since.as_str(),
        "--until",
        until.as_str(),
        "--step",
        "30m",
        "--db",
        db.path_str(),
    ];
    let export = kubetrail(&[&["export", "nodes"][..], &window].concat());
    let query = kubetrail(&[&["query", "nodes", "-o", "csv"][..], &window].concat());
    assert_eq!(export.ok(), query.ok());
    let (header, records) = parse_csv(export.ok());
    assert_eq!(header[0], "node");
    assert_eq!(records.len(), 6 + 2, "node-a: 6 half hours, node-b: 2");
}

#[test]
fn an_empty_export_still_has_its_header() {
    let db = scenario();
    let run = kubetrail(&[
        "export",
        "transitions",
        "--reason",
        "NoSuchReason",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.ok(), TRANSITION_HEADER.join(",") + "\n");
}

#[test]
fn exporting_over_the_database_is_refused() {
    let db = scenario();
    let before = std::fs::read(&db.path).unwrap();
    let run = kubetrail(&[
        "export",
        "pods",
        "--out",
        db.path_str(),
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("is the database itself"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&db.path).unwrap(), before);
}
