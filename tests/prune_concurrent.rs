//! `kubetrail prune` while a writer records into the same file: the writer keeps committing
//! (holding the recorder's lock, as `record` does), the prune does its work in short
//! transactions in between, and no row the writer committed is lost.

#[path = "common/churn.rs"]
mod churn;
#[path = "common/fixture.rs"]
mod fixture;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fixture::*;
use kubetrail::model::TransitionKind;
use kubetrail::store::Batch;
use kubetrail::store::sqlite::{open_for_writing, write_batch};
use rusqlite::Connection;

/// What the writer committed: pod uids with their transition counts, and usage rows.
#[derive(Default)]
struct Written {
    pods: Vec<(String, i64)>,
    usage_rows: usize,
    batches: usize,
    retries: usize,
}

#[test]
fn a_prune_while_a_writer_is_writing_loses_no_newly_recorded_row() {
    // Old history for the prune to chew on: 2 days of churn that ended 40 days ago.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubetrail.db");
    let now = kubetrail::model::time::now_ms();
    let (mut churn, first) = churn::Churn::new(now - 42 * DAY, 10, 200, 5);
    {
        let mut handle = open_for_writing(&path).unwrap();
        write_batch(&mut handle.conn, &first).unwrap();
        for _ in 0..48 {
            write_batch(&mut handle.conn, &churn.advance(HOUR, 250)).unwrap();
        }
    }
    let node_uids = churn.node_uids();

    let started = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, started, stop) = (path.clone(), started.clone(), stop.clone());
        std::thread::spawn(move || {
            // The recorder's own handle: the flock that refuses a second recorder is held
            // throughout, and the prune must not need it.
            let mut handle = open_for_writing(&path).unwrap();
            let mut written = Written::default();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let at = kubetrail::model::time::now_ms();
                let mut batch = Batch::default();
                let mut uids = Vec::new();
                for _ in 0..20 {
                    let uid = format!("new-pod-{i:06}");
                    i += 1;
                    batch.pods.push(
                        pod(&uid, "new", &uid, at)
                            .node("node-00000")
                            .started(at)
                            .build(),
                    );
                    batch
                        .transitions
                        .push(transition(&uid, TransitionKind::Created, at).build());
                    batch
                        .transitions
                        .push(transition(&uid, TransitionKind::Started, at).build());
                    uids.push(uid);
                }
                for node in &node_uids {
                    batch
                        .node_usage
                        .push(usage(node, at).requested(100, GI).pods(1).build());
                }
                // Retried like the recorder's writer does: a failed commit is never dropped.
                loop {
                    match write_batch(&mut handle.conn, &batch) {
                        Ok(_) => break,
                        Err(_) => {
                            written.retries += 1;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                written.pods.extend(uids.into_iter().map(|u| (u, 2)));
                written.usage_rows += node_uids.len();
                written.batches += 1;
                started.store(true, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
            written
        })
    };
    while !started.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
    }

    let begun = Instant::now();
    let run = kubetrail(&[
        "prune",
        "--db",
        path.to_str().unwrap(),
        "--max-db-size",
        "2MiB",
    ]);
    let prune_took = begun.elapsed();
    // Keep writing a little after the prune, then stop.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let out = run.ok();
    assert!(out.contains("max-age removed"), "{out}");

    let conn = Connection::open(&path).unwrap();
    let old_ended: i64 = conn
        .query_row(
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_ended, 0, "the prune did its work");
    let mut stmt = conn
        .prepare(
            "SELECT count(*) FROM transitions t JOIN pods p ON p.id = t.pod_id WHERE p.uid = ?1",
        )
        .unwrap();
    for (uid, transitions) in &written.pods {
        let n: i64 = stmt.query_row([uid], |r| r.get(0)).unwrap();
        assert_eq!(n, *transitions, "{uid} lost rows");
    }
    let new_usage: i64 = conn
        .query_row(
            "SELECT count(*) FROM node_usage WHERE at_ms > ?1",
            [now - HOUR],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        new_usage as usize >= written.usage_rows,
        "{new_usage} < {}",
        written.usage_rows
    );
    // The two really overlapped: the writer committed many batches while the prune ran.
    assert!(
        written.batches >= 20,
        "only {} batches during a prune of {prune_took:?}",
        written.batches
    );
    eprintln!(
        "writer: {} batches ({} retries) while prune ran for {prune_took:?}",
        written.batches, written.retries
    );
}
