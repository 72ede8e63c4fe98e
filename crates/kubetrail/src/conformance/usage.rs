//! Conformance cases for node utilisation and its retention: the node report, rolling up,
//! expiring rollups, and pruning deleted nodes, asserted through the traits and `query` only.

use super::{Backend, Fixture};
use crate::model::Resources;
use crate::model::TransitionKind;
use crate::model::rollup::ROLLUP_BUCKET_MS as HOUR;
use crate::model::time::Window;
use crate::query::nodes::{NodeFilter, NodeUsageRecord, for_each_node_bucket};
use crate::store::{
    Batch, Heartbeat, NodeCapacityRow, NodeResources, NodeRow, NodeUsageRow, Scope, SubjectUid,
    TransitionRow,
};

/// 2026-12-01T00:00:00Z: an hour boundary.
const T0: i64 = 1_796_083_200_000;

fn node(uid: &str, deleted_at_ms: Option<i64>) -> NodeRow {
    let resources = NodeResources {
        cpu_millis: 4_000,
        memory_bytes: 8 << 30,
        pods: 110,
    };
    NodeRow {
        uid: uid.into(),
        name: format!("node-{uid}"),
        created_at_ms: T0,
        deleted_at_ms,
        capacity: resources,
        allocatable: resources,
        state_json: "{}".into(),
    }
}

fn usage(uid: &str, at_ms: i64, cpu: i64, pods: i64) -> NodeUsageRow {
    NodeUsageRow {
        node_uid: uid.into(),
        at_ms,
        requested: Resources::new(cpu, cpu << 20),
        limits: Resources::new(2 * cpu, cpu << 21),
        pod_count: pods,
        allocatable: Resources::new(4_000, 8 << 30),
        keyframe: false,
    }
}

/// A node recorded for four hours, its usage changing every 20 minutes, in one session.
fn four_hours(b: &dyn Backend, deleted_at_ms: Option<i64>) -> Fixture {
    let mut f = b.fresh();
    let session = f.writer.start_session(&Scope::everything(), T0).unwrap();
    let mut batch = Batch::default();
    batch.nodes.push(node("n1", deleted_at_ms));
    batch.node_capacity.push(NodeCapacityRow {
        node_uid: "n1".into(),
        at_ms: T0,
        capacity: node("n1", None).capacity,
        allocatable: node("n1", None).allocatable,
    });
    let mut added = TransitionRow::new(
        SubjectUid::Node("n1".into()),
        TransitionKind::NodeAdded,
        T0,
        T0,
    );
    added.seq = 0;
    batch.transitions.push(added);
    for step in 0..12 {
        let at = T0 + step * HOUR / 3;
        batch
            .node_usage
            .push(usage("n1", at, 100 * (step % 5 + 1), step % 4 + 1));
    }
    let hb = Heartbeat {
        session,
        at_ms: T0 + 4 * HOUR,
    };
    f.writer.commit(&batch, Some(hb)).unwrap();
    f
}

fn report(f: &Fixture, since_ms: i64, until_ms: i64) -> Vec<NodeUsageRecord> {
    let filter = NodeFilter {
        node: None,
        window: Window {
            since_ms: Some(since_ms),
            until_ms: Some(until_ms),
        },
        step_ms: HOUR,
    };
    let mut out = Vec::new();
    for_each_node_bucket(&*f.reader, &filter, until_ms, |r| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    out
}

fn roll_up_until_done(f: &mut Fixture, horizon_ms: i64) {
    for _ in 0..100 {
        if crate::retention::roll_up(&mut *f.writer, horizon_ms, 5)
            .unwrap()
            .done
        {
            return;
        }
    }
    panic!("rolling up never finished");
}

pub(crate) fn rolled_up_hours_report_what_the_raw_rows_did(b: &dyn Backend) {
    let mut f = four_hours(b, None);
    let before = report(&f, T0, T0 + 4 * HOUR);
    assert_eq!(before.len(), 4, "{before:?}");
    assert!(before.iter().all(|r| r.present_ms == HOUR), "{before:?}");
    // Small steps (5 rows each), so the chunking is exercised too.
    roll_up_until_done(&mut f, T0 + 2 * HOUR);
    let bounds = f.reader.snapshot().unwrap().bounds().unwrap();
    assert_eq!(
        bounds.raw_from_ms,
        Some(T0 + 2 * HOUR),
        "a keyframe at the horizon"
    );
    assert_eq!(bounds.rolled_up_until_ms, Some(T0 + 2 * HOUR));
    assert_eq!(bounds.oldest_rollup_ms, Some(T0));
    let after = report(&f, T0, T0 + 4 * HOUR);
    assert_eq!(
        after, before,
        "a rolled-up hour reports what its raw rows did"
    );
    // Rolling up again changes nothing.
    roll_up_until_done(&mut f, T0 + 2 * HOUR);
    assert_eq!(report(&f, T0, T0 + 4 * HOUR), before);
}

pub(crate) fn expired_rollups_go_and_newer_ones_stay(b: &dyn Backend) {
    let mut f = four_hours(b, None);
    roll_up_until_done(&mut f, T0 + 2 * HOUR);
    let before = report(&f, T0, T0 + 4 * HOUR);
    let (deleted, done) = f.writer.expire_rollups(T0 + HOUR, None, 1_000).unwrap();
    assert_eq!((deleted, done), (1, true));
    let after = report(&f, T0, T0 + 4 * HOUR);
    assert_eq!(after.len(), 3, "the first hour is gone: {after:?}");
    assert_eq!(after[..], before[1..]);
    // `keep_from_ms` protects what the cutoff alone would take.
    let (deleted, _) = f
        .writer
        .expire_rollups(T0 + 3 * HOUR, Some(T0 + HOUR), 1_000)
        .unwrap();
    assert_eq!(deleted, 0);
}

pub(crate) fn a_deleted_nodes_row_stays_while_rollups_name_it(b: &dyn Backend) {
    let mut f = four_hours(b, Some(T0 + 3 * HOUR));
    roll_up_until_done(&mut f, T0 + 2 * HOUR);
    let (counts, done) = f.writer.prune_deleted_nodes(T0 + 5 * HOUR, 1_000).unwrap();
    assert!(done);
    assert_eq!(
        (counts.node_transitions, counts.node_capacity),
        (1, 1),
        "{counts:?}"
    );
    assert_eq!(
        counts.nodes, 0,
        "the rollups (and raw rows) still name it: {counts:?}"
    );
    let alive = f
        .reader
        .snapshot()
        .unwrap()
        .nodes_alive(None, T0, T0 + 4 * HOUR)
        .unwrap();
    assert_eq!(alive.len(), 1);
    assert_eq!(alive[0].deleted_ms, Some(T0 + 3 * HOUR));
    assert_eq!(
        report(&f, T0, T0 + 2 * HOUR).len(),
        2,
        "its rolled-up hours still report"
    );
}
