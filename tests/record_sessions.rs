//! `kubetrail record` stores a recording session per run (start, a heartbeat with its commits,
//! a clean stop, the scope), so reports can count only recorded time and say when node sums
//! are partial. Against `kubetrail simulate` over real HTTP.

#[path = "common/recorder.rs"]
mod recorder;
#[path = "common/sim.rs"]
mod sim;

use std::time::Duration;

use recorder::RecorderProcess;
use sim::SimProcess;

#[derive(Debug)]
struct Row {
    started: i64,
    heartbeat: i64,
    stopped: Option<i64>,
    namespace: Option<String>,
    nodes: bool,
}

fn sessions(db: &std::path::Path) -> Vec<Row> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT started_at_ms, heartbeat_at_ms, stopped_at_ms, namespace, nodes
             FROM recording_sessions ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            started: r.get(0)?,
            heartbeat: r.get(1)?,
            stopped: r.get(2)?,
            namespace: r.get(3)?,
            nodes: r.get(4)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn each_run_is_a_session_with_its_scope_its_heartbeat_and_its_stop() {
    let sim = SimProcess::spawn(&["--nodes", "2", "--pods", "6", "--churn", "0", "--seed", "3"]);
    let db = sim.dir().join("trail.db");
    let log = sim.dir().join("rec.log");

    let rec = RecorderProcess::spawn(sim.kubeconfig_path(), &db, &log, &["-n", "default"]);
    rec.wait_for_log("initial list committed", Duration::from_secs(30));
    assert!(rec.stop().success());
    let first = sessions(&db);
    assert_eq!(first.len(), 1, "{first:?}");
    let s = &first[0];
    assert_eq!(s.namespace.as_deref(), Some("default"));
    assert!(s.nodes);
    let stopped = s.stopped.expect("a clean stop is stored");
    assert!(s.started < s.heartbeat && s.heartbeat <= stopped, "{s:?}");

    // A kill -9 leaves the session open, ending at its last commit.
    std::fs::write(&log, "").unwrap();
    let rec = RecorderProcess::spawn(sim.kubeconfig_path(), &db, &log, &[]);
    rec.wait_for_log("initial list committed", Duration::from_secs(30));
    rec.kill_9();
    let both = sessions(&db);
    assert_eq!(both.len(), 2, "{both:?}");
    let s = &both[1];
    assert_eq!((s.namespace.as_deref(), s.stopped), (None, None), "{s:?}");
    assert!(
        s.heartbeat > s.started,
        "the commits moved the heartbeat: {s:?}"
    );

    // Node sums of the first run count only the pods of `default`: every report says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["query", "nodes", "-o", "json", "--step", "1h", "--db"])
        .arg(&db)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let during_first: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["start_ms"].as_i64().unwrap() < stopped)
        .collect();
    assert!(!during_first.is_empty(), "{rows:?}");
    assert!(
        during_first.iter().all(|r| r["partial"] == true),
        "{rows:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("-n default"), "{stderr}");
}
