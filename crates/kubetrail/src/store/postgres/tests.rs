//! The PostgreSQL writer against a real server (kubetrail-pgtest): what SQLite's writer tests
//! check, plus what only a shared server has (clusters, the recorder lock, partitions).

use super::config::Target;
use kubetrail_pgtest::PgServer;

use super::*;
use crate::model::{Phase, TransitionKind};
use crate::store::StoreError;
use crate::store::rows::{NodeUsageRow, SubjectUid, TransitionRow};
use crate::store::sqlite::batch::tests::pod_row;

fn fresh() -> Target {
    config::parse(&PgServer::shared().fresh_database(), &|_| None).unwrap()
}

fn created(uid: &str, at_ms: i64) -> TransitionRow {
    TransitionRow::new(
        SubjectUid::Pod(uid.into()),
        TransitionKind::Created,
        at_ms,
        at_ms,
    )
}

fn count(w: &mut PgWriter, sql: &str) -> i64 {
    w.with(|c, _| Ok(c.query_one(sql, &[])?.get::<_, i64>(0)))
        .unwrap()
}

#[test]
fn a_replayed_batch_inserts_nothing_twice() {
    let mut w = PgWriter::open(fresh(), "east", true).unwrap();
    let batch = Batch {
        pods: vec![pod_row("a")],
        transitions: vec![created("a", 1_000)],
        ..Default::default()
    };
    let first = w.commit(&batch, None).unwrap();
    assert_eq!(
        (first.transitions_inserted, first.transitions_ignored),
        (1, 0)
    );
    assert_eq!(
        first.inserted_by_kind.get(&TransitionKind::Created),
        Some(&1)
    );
    let again = w.commit(&batch, None).unwrap();
    assert_eq!(
        (again.transitions_inserted, again.transitions_ignored),
        (0, 1)
    );
    assert_eq!(count(&mut w, "SELECT count(*) FROM transitions"), 1);
    assert_eq!(count(&mut w, "SELECT count(*) FROM pods"), 1);
}

#[test]
fn rows_for_an_unknown_subject_are_skipped_and_counted() {
    let mut w = PgWriter::open(fresh(), "east", true).unwrap();
    let batch = Batch {
        transitions: vec![created("ghost", 1_000)],
        node_usage: vec![NodeUsageRow {
            node_uid: "no-such-node".into(),
            at_ms: 1_000,
            requested: Default::default(),
            limits: Default::default(),
            pod_count: 0,
            allocatable: Default::default(),
            keyframe: true,
        }],
        ..Default::default()
    };
    let stats = w.commit(&batch, None).unwrap();
    assert_eq!(stats.skipped_unknown_subject, 2);
    assert_eq!(count(&mut w, "SELECT count(*) FROM transitions"), 0);
}

#[test]
fn the_same_uid_twice_in_a_batch_keeps_the_last_row_and_the_last_labels() {
    let mut w = PgWriter::open(fresh(), "east", true).unwrap();
    let mut first = pod_row("a");
    first.labels_json = Some(r#"{"app":"web"}"#.into());
    let mut second = pod_row("a");
    second.phase = Phase::Running;
    second.created_at_ms = 9_999; // a creation time never moves
    let batch = Batch {
        pods: vec![first, second],
        ..Default::default()
    };
    w.commit(&batch, None).unwrap();
    let (phase, created, labels) = w
        .with(|c, _| {
            let r = c.query_one(
                "SELECT p.phase, p.created_at_ms, s.labels FROM pods p
                 JOIN label_sets s ON s.id = p.label_set_id",
                &[],
            )?;
            Ok((
                r.get::<_, i16>(0),
                r.get::<_, i64>(1),
                r.get::<_, String>(2),
            ))
        })
        .unwrap();
    assert_eq!(i64::from(phase), Phase::Running.code());
    assert_eq!(created, 1_000);
    assert_eq!(labels, r#"{"app":"web"}"#);
}

#[test]
fn two_clusters_keep_their_own_rows_of_the_same_uid() {
    let config = fresh();
    let mut east = PgWriter::open(config.clone(), "east", true).unwrap();
    let mut west = PgWriter::open(config, "west", true).unwrap();
    let batch = Batch {
        pods: vec![pod_row("same-uid")],
        transitions: vec![created("same-uid", 1_000)],
        ..Default::default()
    };
    assert_eq!(east.commit(&batch, None).unwrap().transitions_inserted, 1);
    assert_eq!(west.commit(&batch, None).unwrap().transitions_inserted, 1);
    assert_ne!(east.cluster_id(), west.cluster_id());
    let per_cluster: Vec<(String, i64)> = east
        .with(|c, _| {
            Ok(c.query(
                "SELECT c.name, count(*) FROM transitions t JOIN clusters c ON c.id = t.cluster_id
                 GROUP BY c.name ORDER BY c.name",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })
        .unwrap();
    assert_eq!(per_cluster, vec![("east".into(), 1), ("west".into(), 1)]);
}

#[test]
fn a_second_recorder_of_one_cluster_is_refused_but_maintenance_is_not() {
    let config = fresh();
    let _first = PgWriter::open(config.clone(), "east", true).unwrap();
    let err = PgWriter::open(config.clone(), "east", true).err().unwrap();
    assert!(matches!(err, StoreError::ClusterLocked { .. }), "{err}");
    assert!(
        err.to_string().contains("already recording cluster east"),
        "{err}"
    );
    PgWriter::open(config.clone(), "west", true).expect("another cluster is not blocked");
    PgWriter::open(config, "east", false).expect("prune does not take the recorder lock");
}

/// A recorder (or a copy) that ends frees its cluster before its connection closes, so the
/// next one, started right after, is not refused while the server has yet to notice that the
/// old connection is gone.
#[test]
fn a_recorder_that_ends_frees_its_cluster_before_it_is_gone() {
    let config = fresh();
    let mut watcher = PgWriter::open(config.clone(), "west", true).unwrap();
    let held = |w: &mut PgWriter| -> i64 {
        w.with(|c, _| {
            Ok(c.query_one(
                // pg_locks is the whole server's: other tests hold the same class of lock
                // in their own databases at the same time.
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND classid = $1::int8::oid
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[&i64::from(RECORDER_LOCK_CLASS)],
            )?
            .get(0))
        })
        .unwrap()
    };
    let mut east = PgWriter::open(config.clone(), "east", true).unwrap();
    assert_eq!(held(&mut watcher), 2, "east and west hold their clusters");
    // What dropping the writer does first, seen while its connection is still open.
    let cluster = east.cluster_id;
    free_cluster(east.client.as_mut().unwrap(), cluster);
    assert_eq!(
        held(&mut watcher),
        1,
        "east is free, its connection still open"
    );
    drop(east);
    for _ in 0..10 {
        drop(PgWriter::open(config.clone(), "east", true).expect("east is free again at once"));
    }
}

#[test]
fn each_month_of_creation_gets_its_own_partition() {
    let mut w = PgWriter::open(fresh(), "east", true).unwrap();
    // 2026-11-15 and 2026-12-15 (UTC).
    let (nov, dec) = (1_794_700_800_000_i64, 1_797_292_800_000_i64);
    let mut a = pod_row("a");
    a.created_at_ms = nov;
    let mut b = pod_row("b");
    b.created_at_ms = dec;
    let batch = Batch {
        pods: vec![a, b],
        transitions: vec![created("a", nov), created("b", dec)],
        ..Default::default()
    };
    w.commit(&batch, None).unwrap();
    assert_eq!(
        count(&mut w, "SELECT count(*) FROM transitions_y2026m11"),
        1
    );
    assert_eq!(
        count(&mut w, "SELECT count(*) FROM transitions_y2026m12"),
        1
    );
}

#[test]
fn an_unreachable_server_is_a_transient_error_that_names_it() {
    let config = config::parse(
        "host=/nonexistent port=5432 user=x dbname=y connect_timeout=1",
        &|_| None,
    )
    .unwrap();
    let err = PgWriter::open(config, "east", true).err().unwrap();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains("postgres://x@/nonexistent:5432/y"),
        "{err}"
    );
}

#[test]
fn a_connection_the_server_drops_is_a_transient_error_and_the_next_commit_reconnects() {
    let config = fresh();
    let mut w = PgWriter::open(config.clone(), "east", true).unwrap();
    let batch = |uid: &str| Batch {
        pods: vec![pod_row(uid)],
        transitions: vec![created(uid, 1_000)],
        ..Default::default()
    };
    w.commit(&batch("a"), None).unwrap();
    // An administrator (or a failover) ends the recorder's session.
    let mut admin =
        postgres::Client::connect(&PgServer::shared().conninfo("postgres"), postgres::NoTls)
            .unwrap();
    let db = config.config.get_dbname().unwrap().to_string();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .unwrap();
    let err = w.commit(&batch("b"), None).unwrap_err();
    assert!(err.is_transient(), "{err}");
    // The retry reconnects, takes the cluster's lock again, and writes.
    let stats = w.commit(&batch("b"), None).unwrap();
    assert_eq!(stats.transitions_inserted, 1);
    assert_eq!(count(&mut w, "SELECT count(*) FROM transitions"), 2);
}

#[test]
fn retention_gives_disk_back_by_dropping_the_partitions_it_emptied() {
    use crate::store::api::HistoryWriter;
    let mut w = PgWriter::open(fresh(), "east", true).unwrap();
    // A pod created and deleted in October 2026, and one still open from November.
    let (oct, nov) = (1_791_331_200_000_i64, 1_794_700_800_000_i64);
    let mut old = pod_row("old");
    old.created_at_ms = oct;
    old.deleted_at_ms = Some(oct + 60_000);
    let mut open = pod_row("open");
    open.created_at_ms = nov;
    let batch = Batch {
        pods: vec![old, open],
        transitions: vec![created("old", oct), created("open", nov)],
        ..Default::default()
    };
    w.commit(&batch, None).unwrap();
    let partitions = |w: &mut PgWriter| -> Vec<String> {
        w.with(|c, _| {
            Ok(c.query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'transitions'::regclass ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
        .unwrap()
    };
    assert_eq!(
        partitions(&mut w),
        ["transitions_y2026m10", "transitions_y2026m11"]
    );
    // Nothing is empty yet: nothing goes.
    HistoryWriter::give_back_step(&mut w).unwrap();
    assert_eq!(partitions(&mut w).len(), 2);
    let (counts, done) = w.prune_ended_pods(nov, 1_000).unwrap();
    assert!(done);
    assert_eq!((counts.pods, counts.pod_transitions), (1, 1));
    HistoryWriter::give_back_step(&mut w).unwrap();
    assert_eq!(
        partitions(&mut w),
        ["transitions_y2026m11"],
        "October's partition was emptied and dropped; November's holds an open pod"
    );
    // A later pod of October (a late list) gets its partition back.
    let mut late = pod_row("late");
    late.created_at_ms = oct + 1;
    let batch = Batch {
        pods: vec![late],
        transitions: vec![created("late", oct + 1)],
        ..Default::default()
    };
    assert_eq!(w.commit(&batch, None).unwrap().transitions_inserted, 1);
}

#[test]
fn the_compact_state_is_kept_while_a_pod_is_open_and_dropped_when_it_ends() {
    let mut w = PgWriter::open(fresh(), "east", true).unwrap();
    let state = |w: &mut PgWriter, uid: &str| -> Option<Vec<u8>> {
        w.with(|c, _| {
            Ok(c.query_opt(
                "SELECT s.state FROM pod_state s JOIN pods p ON p.id = s.pod_id WHERE p.uid = $1",
                &[&uid],
            )?
            .map(|r| r.get(0)))
        })
        .unwrap()
    };
    let mut open = pod_row("a");
    open.state = vec![1, 0, 0xff];
    let mut other = pod_row("b");
    other.state = b"{\"v\":\"b\"}".to_vec();
    w.commit(
        &Batch {
            pods: vec![open.clone(), other],
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(state(&mut w, "a").as_deref(), Some(&[1, 0, 0xff][..]));
    // A later state replaces the first.
    open.state = vec![1, 0, 0xfe];
    w.commit(
        &Batch {
            pods: vec![open.clone()],
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(state(&mut w, "a").as_deref(), Some(&[1, 0, 0xfe][..]));
    // Deleted: the state goes; the other pod's stays.
    open.deleted_at_ms = Some(5_000);
    w.commit(
        &Batch {
            pods: vec![open.clone()],
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(state(&mut w, "a"), None);
    assert_eq!(state(&mut w, "b").as_deref(), Some(&b"{\"v\":\"b\"}"[..]));
    // An empty state drops it too.
    let mut emptied = pod_row("b");
    emptied.state = Vec::new();
    w.commit(
        &Batch {
            pods: vec![emptied],
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(state(&mut w, "b"), None);
    assert_eq!(count(&mut w, "SELECT count(*) FROM pods"), 2);
}
