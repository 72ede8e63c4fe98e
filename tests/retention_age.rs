//! `--max-age` and `--rollup-age`: ended history goes after its age, the state and history of
//! live pods and nodes stays however old it is, and node rows stay while rollups need them.

#[path = "common/fixture.rs"]
mod fixture;

use fixture::*;
use kubetrail::model::{Phase, TransitionKind};
use kubetrail::retention::{Pass, Policy};
use kubetrail::store::sqlite::db::open_for_maintenance;
use kubetrail::store::{Batch, NodeCapacityRow, NodeResources, PodResourcesRow};
use rusqlite::Connection;

fn count(conn: &Connection, sql: &str, uid: &str) -> i64 {
    conn.query_row(sql, [uid], |r| r.get(0)).unwrap()
}

fn pod_rows(conn: &Connection, uid: &str) -> (i64, i64, i64) {
    (
        count(conn, "SELECT count(*) FROM pods WHERE uid = ?1", uid),
        count(
            conn,
            "SELECT count(*) FROM transitions t JOIN pods p ON p.id = t.pod_id WHERE p.uid = ?1",
            uid,
        ),
        count(
            conn,
            "SELECT count(*) FROM pod_resources r JOIN pods p ON p.id = r.pod_id WHERE p.uid = ?1",
            uid,
        ),
    )
}

fn node_rows(conn: &Connection, uid: &str) -> (i64, i64, i64) {
    (
        count(conn, "SELECT count(*) FROM nodes WHERE uid = ?1", uid),
        count(
            conn,
            "SELECT count(*) FROM transitions t JOIN nodes n ON n.id = t.node_id WHERE n.uid = ?1",
            uid,
        ),
        count(
            conn,
            "SELECT count(*) FROM node_capacity c JOIN nodes n ON n.id = c.node_id WHERE n.uid = ?1",
            uid,
        ),
    )
}

/// A pod with three transitions and a resource row, created at `at_ms`.
fn add_pod(batch: &mut Batch, uid: &str, at_ms: i64, deleted_ms: Option<i64>) {
    let mut p = pod(uid, "ns", uid, at_ms)
        .node("old-node")
        .started(at_ms + SEC)
        .requests(100, GI);
    if let Some(deleted) = deleted_ms {
        p = p
            .finished(deleted - SEC, Phase::Succeeded, None)
            .deleted(deleted);
    }
    batch.pods.push(p.build());
    batch
        .transitions
        .push(transition(uid, TransitionKind::Created, at_ms).build());
    batch
        .transitions
        .push(transition(uid, TransitionKind::Started, at_ms + SEC).build());
    if let Some(deleted) = deleted_ms {
        batch
            .transitions
            .push(transition(uid, TransitionKind::Deleted, deleted).build());
    } else {
        batch
            .transitions
            .push(transition(uid, TransitionKind::Ready, at_ms + 2 * SEC).build());
    }
    batch.pod_resources.push(PodResourcesRow {
        pod_uid: uid.into(),
        at_ms,
        resources: kubetrail::model::Effective {
            requests: kubetrail::model::Resources::new(100, GI),
            ..Default::default()
        },
    });
}

fn add_node(batch: &mut Batch, uid: &str, at_ms: i64, deleted_ms: Option<i64>) {
    let mut n = node(uid, uid, at_ms);
    if let Some(deleted) = deleted_ms {
        n = n.deleted(deleted);
    }
    batch.nodes.push(n.build());
    batch
        .transitions
        .push(node_transition(uid, TransitionKind::NodeAdded, at_ms).build());
    let r = NodeResources {
        cpu_millis: 4000,
        memory_bytes: 8 * GI,
        pods: 110,
    };
    batch.node_capacity.push(NodeCapacityRow {
        node_uid: uid.into(),
        at_ms,
        capacity: r,
        allocatable: r,
    });
    if let Some(deleted) = deleted_ms {
        batch
            .transitions
            .push(node_transition(uid, TransitionKind::NodeDeleted, deleted).build());
    }
}

#[test]
fn ended_history_past_max_age_goes_and_live_history_stays_however_old() {
    let now = T0 + 400 * DAY;
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    add_node(&mut batch, "ancient-live-node", T0, None);
    add_node(&mut batch, "node-gone-long-ago", T0, Some(now - 40 * DAY));
    add_node(&mut batch, "node-gone-recently", T0, Some(now - 10 * DAY));
    // Open for 400 days: its state and every transition must stay.
    add_pod(&mut batch, "ancient-live-pod", T0, None);
    // Ended 31 days ago (just past a 30d max-age) and 29 days ago (just within).
    add_pod(
        &mut batch,
        "ended-31d",
        now - 60 * DAY,
        Some(now - 31 * DAY),
    );
    add_pod(
        &mut batch,
        "ended-29d",
        now - 60 * DAY,
        Some(now - 29 * DAY),
    );
    // Created long ago, ended yesterday: the age counts from the end.
    add_pod(&mut batch, "old-but-ended-yesterday", T0, Some(now - DAY));
    db.write(&batch);

    let mut conn = open_for_maintenance(&db.path).unwrap();
    let report = Pass::new(Policy::default(), now).run(&mut conn).unwrap();

    assert_eq!(pod_rows(&conn, "ancient-live-pod"), (1, 3, 1));
    assert_eq!(pod_rows(&conn, "ended-31d"), (0, 0, 0));
    assert_eq!(pod_rows(&conn, "ended-29d"), (1, 3, 1));
    assert_eq!(pod_rows(&conn, "old-but-ended-yesterday"), (1, 3, 1));
    assert_eq!(node_rows(&conn, "ancient-live-node"), (1, 1, 1));
    // No utilisation refers to it, so the row goes with its history.
    assert_eq!(node_rows(&conn, "node-gone-long-ago"), (0, 0, 0));
    assert_eq!(node_rows(&conn, "node-gone-recently"), (1, 2, 1));
    let aged = report.aged_out;
    assert_eq!(
        (aged.pods, aged.pod_transitions, aged.pod_resources),
        (1, 3, 1)
    );
    assert_eq!(
        (aged.nodes, aged.node_transitions, aged.node_capacity),
        (1, 2, 1)
    );
    // The live pod's stored state (what a restarted recorder reconciles against) is intact.
    let state: Vec<u8> = conn
        .query_row(
            "SELECT s.state FROM pods p JOIN pod_state s ON s.pod_id = p.id WHERE p.uid = 'ancient-live-pod'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, b"{}");
}

#[test]
fn max_age_off_keeps_everything_and_a_long_history_is_deleted_in_many_small_steps() {
    let now = T0 + 100 * DAY;
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    for i in 0..300 {
        add_pod(&mut batch, &format!("ended-{i:03}"), T0, Some(T0 + i * MIN));
    }
    db.write(&batch);
    let mut conn = open_for_maintenance(&db.path).unwrap();
    let keep = Policy {
        max_age_ms: None,
        ..Policy::default()
    };
    assert!(
        !Pass::new(keep, now)
            .run(&mut conn)
            .unwrap()
            .changed_anything()
    );
    // 300 pods x 5 rows with 50 rows per transaction: dozens of steps, oldest first.
    let mut pass = Pass::new(Policy::default(), now).row_budget(50);
    let mut steps_with_pods_left = 0;
    while pass.step(&mut conn).unwrap() == kubetrail::retention::Step::More {
        let left: i64 = conn
            .query_row("SELECT count(*) FROM pods", [], |r| r.get(0))
            .unwrap();
        if left > 0 {
            steps_with_pods_left += 1;
            // Oldest first: whatever is left is the newest.
            let oldest_left: String = conn
                .query_row("SELECT min(uid) FROM pods", [], |r| r.get(0))
                .unwrap();
            let expected = format!("ended-{:03}", 300 - left);
            assert!(oldest_left >= expected, "{oldest_left} < {expected}");
        }
    }
    assert!(steps_with_pods_left >= 25, "{steps_with_pods_left}");
    assert_eq!(pass.report().aged_out.pods, 300);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM transitions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn rollups_expire_after_rollup_age_and_a_deleted_node_row_lives_as_long_as_its_rollups() {
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    add_node(&mut batch, "gone-node", T0, Some(T0 + 2 * DAY));
    batch
        .node_usage
        .push(usage("gone-node", T0).requested(1000, GI).pods(1).build());
    db.write(&batch);
    let mut conn = open_for_maintenance(&db.path).unwrap();

    // 40 days on: the node's transitions are past max-age, its usage is rolled up, and the
    // rollups (48 hours of them) are within the 400 days, so the node row stays for its name.
    Pass::new(Policy::default(), T0 + 40 * DAY)
        .run(&mut conn)
        .unwrap();
    assert_eq!(node_rows(&conn, "gone-node"), (1, 0, 0));
    let rollups: i64 = conn
        .query_row("SELECT count(*) FROM node_usage_rollup", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rollups, 48);

    // 401 days on, the first day of rollups has expired, the second has not.
    let report = Pass::new(Policy::default(), T0 + 401 * DAY + HOUR)
        .run(&mut conn)
        .unwrap();
    assert_eq!(report.rollups_expired, 25);
    assert_eq!(node_rows(&conn, "gone-node"), (1, 0, 0));
    // 403 days on, nothing refers to the node any more and its row goes too.
    Pass::new(Policy::default(), T0 + 403 * DAY)
        .run(&mut conn)
        .unwrap();
    assert_eq!(node_rows(&conn, "gone-node"), (0, 0, 0));
}

#[test]
fn a_label_set_goes_with_the_last_pod_that_uses_it() {
    let now = T0 + 400 * DAY;
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    let ended = |uid: &str, app: &str| {
        pod(uid, "ns", uid, now - 60 * DAY)
            .labels(&[("app", app)])
            .finished(now - 32 * DAY, Phase::Succeeded, None)
            .deleted(now - 31 * DAY)
            .build()
    };
    batch.pods.push(ended("alone", "only-me"));
    batch.pods.push(ended("shared-ended", "shared"));
    batch.pods.push(
        pod("shared-live", "ns", "shared-live", now - 60 * DAY)
            .labels(&[("app", "shared")])
            .build(),
    );
    db.write(&batch);
    let sets = |conn: &Connection| -> Vec<String> {
        conn.prepare("SELECT labels FROM label_sets ORDER BY labels")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut conn = open_for_maintenance(&db.path).unwrap();
    assert_eq!(sets(&conn).len(), 2);
    Pass::new(Policy::default(), now).run(&mut conn).unwrap();
    assert_eq!(pod_rows(&conn, "alone").0, 0);
    assert_eq!(pod_rows(&conn, "shared-ended").0, 0);
    assert_eq!(
        sets(&conn),
        vec![r#"{"app":"shared"}"#.to_string()],
        "the set of the live pod stays; the unused one goes"
    );
}
