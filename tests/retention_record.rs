//! Retention inside `kubetrail record`: with `--retention-interval`, passes run on the
//! recorder's writer thread while it records a (simulated) cluster. Old ended history goes, old
//! raw utilisation is rolled up, and what the recorder writes meanwhile is all there.

#[path = "common/recorder.rs"]
mod recorder;
#[path = "common/sim.rs"]
mod sim;

use std::time::Duration;

use kubetrail::model::{Effective, Phase, Resources, TransitionKind};
use kubetrail::store::sqlite::{open_for_writing, write_batch};
use kubetrail::store::{
    Batch, NodeResources, NodeRow, NodeUsageRow, PodRow, SubjectUid, TransitionRow,
};
use recorder::RecorderProcess;
use rusqlite::Connection;
use sim::SimProcess;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// 10 pods deleted 40 days ago, and a node deleted 40 days ago with 20 days of hourly usage
/// (on whole hours, so that it makes exactly 480 hourly rollups).
fn old_history(now: i64) -> Batch {
    let now = now / HOUR * HOUR;
    let mut batch = Batch::default();
    let resources = NodeResources {
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
        pods: 110,
    };
    batch.nodes.push(NodeRow {
        uid: "old-node-uid".into(),
        name: "old-node".into(),
        created_at_ms: now - 60 * DAY,
        deleted_at_ms: Some(now - 40 * DAY),
        capacity: resources,
        allocatable: resources,
        state_json: "{}".into(),
    });
    for hour in 0..20 * 24 {
        batch.node_usage.push(NodeUsageRow {
            node_uid: "old-node-uid".into(),
            at_ms: now - 60 * DAY + hour * HOUR,
            requested: Resources::new(1000, 1 << 30),
            limits: Resources::default(),
            pod_count: 1,
            allocatable: Resources::new(4000, 8 << 30),
            keyframe: true,
        });
    }
    for i in 0..10 {
        let uid = format!("old-pod-{i}");
        batch.pods.push(PodRow {
            uid: uid.clone(),
            namespace: "old".into(),
            name: uid.clone(),
            node: Some("old-node".into()),
            owner_kind: None,
            owner_name: None,
            labels_json: None,
            created_at_ms: now - 41 * DAY,
            started_at_ms: None,
            finished_at_ms: Some(now - 40 * DAY),
            deleted_at_ms: Some(now - 40 * DAY),
            phase: Phase::Succeeded,
            reason: None,
            restarts: 0,
            resources: Effective::default(),
            state: b"{}".to_vec(),
        });
        batch.transitions.push(TransitionRow::new(
            SubjectUid::Pod(uid),
            TransitionKind::Created,
            now - 41 * DAY,
            now - 41 * DAY,
        ));
    }
    batch
}

#[test]
fn record_applies_retention_periodically_while_it_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kubetrail.db");
    let now = kubetrail::model::time::now_ms();
    {
        let mut handle = open_for_writing(&db).unwrap();
        write_batch(&mut handle.conn, &old_history(now)).unwrap();
        // The old history was recorded by an earlier run: its session, or reports and
        // rollups would count that time as never recorded.
        handle
            .conn
            .execute(
                "INSERT INTO recording_sessions (started_at_ms, heartbeat_at_ms, stopped_at_ms)
                 VALUES (0, ?1, ?1)",
                [now],
            )
            .unwrap();
    }
    let sim = SimProcess::spawn(&[
        "--pods", "20", "--nodes", "2", "--churn", "5", "--pace", "0.2",
    ]);
    let log = dir.path().join("record.log");
    let recorder = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        &db,
        &log,
        &["--retention-interval", "1s"],
    );
    recorder.wait_for_log(
        "retention: max-age removed: 10 ended pods",
        Duration::from_secs(60),
    );
    recorder.wait_for_log(
        "retention: raw-usage-age rolled up: 480 raw node usage rows",
        Duration::from_secs(60),
    );
    // Keep recording through a few more passes.
    std::thread::sleep(Duration::from_secs(3));
    let status = recorder.stop();
    assert!(status.success(), "{status:?}");

    let conn = Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM pods WHERE namespace = 'old'"),
        0
    );
    // The deleted node's rows are kept for its rollups' name; its usage is hourly now.
    assert_eq!(
        count("SELECT count(*) FROM nodes WHERE uid = 'old-node-uid'"),
        1
    );
    assert_eq!(count("SELECT count(*) FROM node_usage_rollup"), 480);
    // The cluster was recorded meanwhile: its pods and nodes, with their transitions.
    assert!(count("SELECT count(*) FROM pods") >= 20);
    assert!(count("SELECT count(*) FROM transitions t JOIN pods p ON p.id = t.pod_id") >= 40);
    assert!(count("SELECT count(*) FROM node_usage") > 0);
}
