//! `kubetrail record --metrics-addr`: /healthz, /readyz and /metrics against the simulator.
//!
//! /readyz must say no before the initial lists are committed, while the API server has been
//! failing for longer than `--unready-after` (also on a quiet cluster, where no event tells the
//! recorder that the watch works again), and while the writer cannot commit; and yes again once
//! each is over. /metrics must parse with the reference parser and agree with the database.

#[path = "common/prom.rs"]
mod prom;
#[path = "common/recorder.rs"]
mod recorder;
#[allow(clippy::duplicate_mod)]
#[path = "common/sim.rs"]
mod sim;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kubetrail::model::TransitionKind;
use prom::{Endpoint, Metrics, promcheck};
use recorder::RecorderProcess;
use sim::SimProcess;

const UNREADY_AFTER: &str = "2s";

fn start(sim: &SimProcess, dir: &std::path::Path) -> (RecorderProcess, Endpoint) {
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        &dir.join("t.db"),
        &dir.join("record.log"),
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            "--unready-after",
            UNREADY_AFTER,
        ],
    );
    let endpoint = Endpoint::from_log(|| rec.log(), Duration::from_secs(30));
    (rec, endpoint)
}

fn failed_check(body: &str, check: &str) -> bool {
    body.contains(&format!("[-]{check} failed"))
}

#[test]
fn ready_only_after_the_initial_lists_and_not_while_the_api_server_is_down() {
    // The simulator starts in an outage: nothing can be listed for 8 s.
    let sim = SimProcess::spawn(&[
        "--nodes",
        "3",
        "--pods",
        "20",
        "--churn",
        "2",
        "--outage-secs",
        "8",
    ]);
    let outage_started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (rec, endpoint) = start(&sim, dir.path());

    assert_eq!(endpoint.get("/healthz"), (200, "ok\n".to_string()));
    let (code, body) = endpoint.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("[-]initial-lists failed: pods not listed yet, nodes not listed yet"),
        "{body}"
    );
    // Still in the outage, beyond --unready-after: the API check names the failing watches.
    let (_, body) = endpoint.wait_until("/readyz", Duration::from_secs(7), "api check", |_, b| {
        failed_check(b, "api")
    });
    assert!(body.contains("the pods watch has been failing"), "{body}");
    assert!(
        body.contains("503"),
        "the server's answer is quoted: {body}"
    );
    assert_eq!(endpoint.get("/healthz").0, 200, "alive all along");

    endpoint.wait_until(
        "/readyz",
        Duration::from_secs(40),
        "ready after the outage",
        |c, _| c == 200,
    );
    assert!(
        outage_started.elapsed() >= Duration::from_secs(8),
        "ready only once the lists could be made"
    );
    assert!(rec.log().contains("initial list committed to the database"));

    // A quiet cluster: nothing changes, so after the next outage no watch event will say that
    // the API server is back; the recorder's probe must.
    sim.pause();
    sim.fault(r#"{"outage_secs": 6}"#);
    let outage_started = Instant::now();
    endpoint.wait_until(
        "/readyz",
        Duration::from_secs(6),
        "unready in the outage",
        |c, b| c == 503 && failed_check(b, "api"),
    );
    let (_, body) = endpoint.wait_until(
        "/readyz",
        Duration::from_secs(30),
        "ready after the second outage",
        |c, _| c == 200,
    );
    assert!(body.contains("[+]api ok"), "{body}");
    assert!(outage_started.elapsed() >= Duration::from_secs(5));
    assert!(
        rec.log()
            .contains("the API server answers pods requests again"),
        "{}",
        rec.log()
    );

    if let Some(promcheck) = promcheck("ready_only_after_the_initial_lists") {
        let (m, _) = Metrics::scrape(&promcheck, endpoint);
        for resource in ["pods", "nodes"] {
            let r = [("resource", resource)];
            let errors = m.value("kubetrail_api_errors_total", &[r[0], ("code", "503")]);
            assert!(errors >= 2.0, "{resource}: {errors} errors counted");
            let restarts = m.value("kubetrail_watch_restarts_total", &r);
            assert!(
                restarts >= 2.0,
                "{resource}: came back twice, counted {restarts}"
            );
        }
        assert_eq!(m.value("kubetrail_ready", &[]), 1.0);
    }
}

#[test]
fn not_ready_while_the_writer_cannot_commit_and_the_metrics_agree_with_the_database() {
    let sim = SimProcess::spawn(&[
        "--nodes", "4", "--pods", "40", "--churn", "10", "--pace", "0.3",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (rec, endpoint) = start(&sim, dir.path());
    endpoint.wait_until("/readyz", Duration::from_secs(30), "ready", |c, _| c == 200);

    // Another process holds SQLite's write lock: every commit waits, then fails and is retried.
    let db = dir.path().join("t.db");
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let blocked_at = Instant::now();
    let (_, body) = endpoint.wait_until(
        "/readyz",
        Duration::from_secs(20),
        "unready while the writer is blocked",
        |c, b| c == 503 && failed_check(b, "writer"),
    );
    assert!(
        body.contains("the oldest rows waiting for a commit are"),
        "{body}"
    );
    assert!(
        body.contains("[+]api ok"),
        "only the writer is at fault: {body}"
    );
    // Hold the lock until a commit has failed: a commit attempt waits 2 s for the lock before it
    // fails and is retried, so the batch being committed when the lock goes has waited more
    // than 2 s, whatever else the writer did first (a usage sample or an events job can take
    // its own 2 s of the block). A fixed sleep here raced with those jobs under load.
    endpoint.wait_until(
        "/metrics",
        Duration::from_secs(30),
        "a commit that failed while the writer was blocked",
        |c, b| {
            c == 200
                && b.lines().any(|l| {
                    l.strip_prefix("kubetrail_failed_commits_total ")
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .is_some_and(|v| v >= 1.0)
                })
        },
    );
    let blocked_for = blocked_at.elapsed();
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    endpoint.wait_until("/readyz", Duration::from_secs(30), "ready again", |c, _| {
        c == 200
    });

    // Let everything drain, then the counters must match what the database holds.
    sim.pause();
    std::thread::sleep(Duration::from_secs(2));
    let Some(promcheck) = promcheck("not_ready_while_the_writer_cannot_commit") else {
        return;
    };
    let (m, text) = Metrics::scrape(&promcheck, endpoint);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut by_kind: BTreeMap<TransitionKind, i64> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT kind, count(*) FROM transitions GROUP BY kind")
        .unwrap();
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
    {
        let (code, n) = row.unwrap();
        by_kind.insert(TransitionKind::from_code(code).expect("known kind"), n);
    }
    assert!(
        by_kind.len() >= 5,
        "a churning cluster makes many kinds: {by_kind:?}"
    );
    for kind in TransitionKind::ALL {
        let counted = m.value(
            "kubetrail_transitions_written_total",
            &[
                ("subject", kind.subject().as_str()),
                ("kind", kind.as_str()),
            ],
        );
        let stored = by_kind.get(kind).copied().unwrap_or(0);
        assert_eq!(counted as i64, stored, "{kind}: counted vs stored\n{text}");
    }
    let live_pods: i64 = conn
        .query_row(
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(m.value("kubetrail_cached_pods", &[]) as i64, live_pods);
    assert_eq!(m.value("kubetrail_cached_nodes", &[]), 4.0);
    assert!(
        m.value(
            "kubetrail_watch_events_total",
            &[("resource", "pods"), ("type", "listed")]
        ) >= 40.0
    );
    assert!(m.value("kubetrail_watch_events_total", &[("type", "modified")]) > 0.0);

    // One histogram observation per commit, and the blocked one took longer than the limit.
    let commits = m.value("kubetrail_commits_total", &[]);
    let hist = m.family("kubetrail_write_batch_duration_seconds");
    assert_eq!(hist["type"], "HISTOGRAM");
    let sample = &hist["samples"][0];
    assert_eq!(sample["value"].as_f64().unwrap(), commits);
    let under_2s = sample["buckets"]["2.048"].as_f64().unwrap();
    assert!(
        under_2s < commits,
        "the commit blocked for {blocked_for:?} is in a bucket above 2 s"
    );
    assert_eq!(m.value("kubetrail_writer_queue_depth", &[]), 0.0);
    let size = std::fs::metadata(&db).unwrap().len() as f64;
    assert!(m.value("kubetrail_database_size_bytes", &[]) >= size);
    let last_commit = m.value("kubetrail_last_commit_timestamp_seconds", &[]);
    assert!((recorder::now_ms() as f64 / 1000.0 - last_commit).abs() < 60.0);
    for name in ["process_resident_memory_bytes", "kubetrail_ready"] {
        assert!(m.value(name, &[]) > 0.0, "{name}");
    }
    drop(rec);
}
