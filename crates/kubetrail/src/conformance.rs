//! The cross-backend conformance suite: one set of cases, asserted through the store seam's
//! traits (no SQL), run against every backend. [`conformance!`] makes one `#[test]` per case and
//! backend, so a failure names both.
//!
//! It sits at the top of the crate, beside the layers rather than inside `store`, because it
//! drives the recorder's writer and the query layer (and retention's roll-up) over every store:
//! inside `store` it would make the store name the layers above it.
//!
//! A backend plugs in with a [`Backend`] (a fresh, empty store per case, and a way to make it
//! refuse one pod's row for good) and one module, e.g.
//! `#[cfg(feature = "postgres")] mod postgres { conformance!(PgBackend::shared(); ...); }`
//! listing the same cases as `mod sqlite` below.

use std::any::Any;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::{Effective, Phase, Resources, TransitionKind};
use crate::query::{PodFilter, PodRef, QueryError, TransitionFilter, TransitionRecord};
use crate::recorder::writer::{WriteMsg, Writer, WriterStats};
use crate::store::Heartbeat;
use crate::store::{Batch, HistoryReader, HistoryWriter, PodRow, Scope, SubjectUid, TransitionRow};

mod events;
mod owners;
mod samples;
mod usage;
pub(crate) use events::*;
pub(crate) use owners::*;
pub(crate) use samples::*;
pub(crate) use usage::*;

/// A fresh store: its writer, a reader on it, and whatever must live as long as they do.
pub(crate) struct Fixture {
    pub writer: Box<dyn HistoryWriter>,
    pub reader: Box<dyn HistoryReader>,
    _keep: Box<dyn Any>,
}

impl Fixture {
    pub fn new(
        writer: Box<dyn HistoryWriter>,
        reader: Box<dyn HistoryReader>,
        keep: Box<dyn Any>,
    ) -> Fixture {
        Fixture {
            writer,
            reader,
            _keep: keep,
        }
    }

    /// What the backend asked to keep, if it is a `T` (its temporary directory, say).
    pub fn kept<T: 'static>(&self) -> Option<&T> {
        self._keep.downcast_ref()
    }
}

pub(crate) trait Backend {
    /// An empty store of this backend.
    fn fresh(&self) -> Fixture;
    /// Makes the store refuse, for good, the row of the pod with this uid.
    fn poison(&self, fixture: &mut Fixture, pod_uid: &str);
}

/// One test per case for a backend (`$backend` is an expression that makes it).
macro_rules! conformance {
    ($backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                super::$case(&$backend)
            }
        )*
    };
}

mod sqlite {
    use crate::store::sqlite::test_backend::SqliteBackend;

    conformance!(SqliteBackend;
        replayed_batch_inserts_nothing,
        unknown_subjects_are_skipped,
        same_uid_twice_in_one_batch_last_wins_labels_kept,
        session_heartbeat_never_moves_back_and_stop_ends_it,
        open_state_round_trips,
        ended_pods_go_open_pods_stay,
        transitions_filter_and_order,
        pods_open_until_end_of_recording,
        history_ambiguous_and_not_found,
        refused_row_is_quarantined,
        rolled_up_hours_report_what_the_raw_rows_did,
        expired_rollups_go_and_newer_ones_stay,
        a_deleted_nodes_row_stays_while_rollups_name_it,
        events_are_written_once_and_a_growing_series_updates_its_count,
        events_filter_by_reason_type_pod_node_and_window,
        recent_event_counts_and_old_events_pruned,
        owners_are_written_once_and_scale_rows_only_on_change,
        owner_filters_and_pods_by_workload,
        aged_owners_go_unless_a_kept_pod_names_them,
        usage_samples_key_open_pods_and_nodes_and_replays_insert_nothing,
        containers_keep_their_latest_requests_beside_their_samples,
        a_pruned_pods_usage_samples_go_with_it,
        usage_rollups_equal_a_direct_computation_over_the_raw_samples,
        query_usage_over_rollups_keeps_counts_averages_and_maxima,
    );
}

#[cfg(feature = "postgres")]
mod postgres {
    use crate::store::postgres::test_backend::PgBackend;

    conformance!(PgBackend;
        replayed_batch_inserts_nothing,
        unknown_subjects_are_skipped,
        same_uid_twice_in_one_batch_last_wins_labels_kept,
        session_heartbeat_never_moves_back_and_stop_ends_it,
        open_state_round_trips,
        ended_pods_go_open_pods_stay,
        transitions_filter_and_order,
        pods_open_until_end_of_recording,
        history_ambiguous_and_not_found,
        refused_row_is_quarantined,
        rolled_up_hours_report_what_the_raw_rows_did,
        expired_rollups_go_and_newer_ones_stay,
        a_deleted_nodes_row_stays_while_rollups_name_it,
        events_are_written_once_and_a_growing_series_updates_its_count,
        events_filter_by_reason_type_pod_node_and_window,
        recent_event_counts_and_old_events_pruned,
        owners_are_written_once_and_scale_rows_only_on_change,
        owner_filters_and_pods_by_workload,
        aged_owners_go_unless_a_kept_pod_names_them,
        usage_samples_key_open_pods_and_nodes_and_replays_insert_nothing,
        containers_keep_their_latest_requests_beside_their_samples,
        a_pruned_pods_usage_samples_go_with_it,
        usage_rollups_equal_a_direct_computation_over_the_raw_samples,
        query_usage_over_rollups_keeps_counts_averages_and_maxima,
    );
}

/// The rows `stats` counts in `table`; None when it does not list the table.
pub(crate) fn table_rows(reader: &dyn HistoryReader, table: &str) -> Option<u64> {
    let stats = reader.snapshot().unwrap().stats().unwrap();
    stats
        .tables
        .iter()
        .find(|t| t.table == table)
        .map(|t| t.rows)
}

/// What `--max-age` of `max_age_ms` would remove at `now_ms`, from the reader's plan.
pub(crate) fn max_age_plan(
    reader: &dyn HistoryReader,
    max_age_ms: i64,
    now_ms: i64,
) -> crate::store::plan::AgedOut {
    let policy = crate::model::policy::Policy {
        max_age_ms: Some(max_age_ms),
        ..Default::default()
    };
    reader
        .snapshot()
        .unwrap()
        .plan(&policy, now_ms)
        .unwrap()
        .aged_out
}

pub(crate) fn pod(uid: &str, namespace: &str, name: &str) -> PodRow {
    PodRow {
        uid: uid.into(),
        namespace: namespace.into(),
        name: name.into(),
        node: None,
        owner_kind: None,
        owner_name: None,
        labels_json: None,
        created_at_ms: 1_000,
        started_at_ms: None,
        finished_at_ms: None,
        deleted_at_ms: None,
        phase: Phase::Pending,
        reason: None,
        restarts: 0,
        resources: Effective::default(),
        state: stored_state(uid),
    }
}

/// A stored state as a store sees it: bytes, here with a NUL and bytes that are not UTF-8, which
/// a store must keep as they are.
fn stored_state(uid: &str) -> Vec<u8> {
    [&[1, 0, 0xff, 0xfe][..], uid.as_bytes()].concat()
}

fn transition(uid: &str, kind: TransitionKind, seq: i64, at_ms: i64) -> TransitionRow {
    let mut t = TransitionRow::new(SubjectUid::Pod(uid.into()), kind, at_ms, at_ms);
    t.seq = seq;
    t
}

fn all_transitions(reader: &dyn HistoryReader, filter: &TransitionFilter) -> Vec<TransitionRecord> {
    let mut out = Vec::new();
    reader
        .snapshot()
        .unwrap()
        .transitions(filter, &mut |t| {
            out.push(t);
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

fn pod_uids(reader: &dyn HistoryReader) -> Vec<String> {
    let mut out = Vec::new();
    reader
        .snapshot()
        .unwrap()
        .pods(&PodFilter::default(), i64::MAX, &mut |p| {
            out.push(p.uid);
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

pub(crate) fn replayed_batch_inserts_nothing(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    batch.pods.push(pod("a", "ns", "p"));
    batch
        .transitions
        .push(transition("a", TransitionKind::Created, 1, 1_000));
    let first = f.writer.commit(&batch, None).unwrap();
    assert_eq!(
        (first.transitions_inserted, first.transitions_ignored),
        (1, 0)
    );
    let again = f.writer.commit(&batch, None).unwrap();
    assert_eq!(
        (again.transitions_inserted, again.transitions_ignored),
        (0, 1)
    );
    assert_eq!(
        all_transitions(&*f.reader, &TransitionFilter::default()).len(),
        1
    );
    assert_eq!(pod_uids(&*f.reader), vec!["a"]);
}

pub(crate) fn unknown_subjects_are_skipped(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    batch
        .transitions
        .push(transition("nobody", TransitionKind::Created, 1, 1_000));
    let done = f.writer.commit(&batch, None).unwrap();
    assert_eq!(done.skipped_unknown_subject, 1);
    assert!(all_transitions(&*f.reader, &TransitionFilter::default()).is_empty());
}

pub(crate) fn same_uid_twice_in_one_batch_last_wins_labels_kept(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    let mut first = pod("a", "ns", "p");
    first.labels_json = Some(r#"{"app":"web"}"#.into());
    let mut second = pod("a", "ns", "p");
    second.phase = Phase::Running;
    second.restarts = 2;
    batch.pods.push(first);
    batch.pods.push(second);
    f.writer.commit(&batch, None).unwrap();
    let mut seen = Vec::new();
    let filter = PodFilter {
        selector: crate::model::selector::LabelSelector::parse("app=web").unwrap(),
        ..Default::default()
    };
    f.reader
        .snapshot()
        .unwrap()
        .pods(&filter, i64::MAX, &mut |p| {
            seen.push((p.uid, p.phase, p.restarts));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen, vec![("a".to_string(), "Running", 2)]);
}

pub(crate) fn session_heartbeat_never_moves_back_and_stop_ends_it(b: &dyn Backend) {
    let mut f = b.fresh();
    let scope = Scope {
        namespace: Some("web".into()),
        selector: None,
        nodes: true,
    };
    let session = f.writer.start_session(&scope, 1_000).unwrap();
    f.writer
        .heartbeat(Heartbeat {
            session,
            at_ms: 5_000,
        })
        .unwrap();
    f.writer
        .heartbeat(Heartbeat {
            session,
            at_ms: 4_000,
        })
        .unwrap();
    let sessions = f.reader.snapshot().unwrap().sessions().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (sessions[0].end_ms(), sessions[0].stopped_at_ms),
        (5_000, None)
    );
    assert_eq!(sessions[0].scope, scope);
    f.writer
        .stop_session(Heartbeat {
            session,
            at_ms: 6_000,
        })
        .unwrap();
    let sessions = f.writer.read().unwrap().sessions().unwrap();
    assert_eq!(sessions[0].stopped_at_ms, Some(6_000));
}

pub(crate) fn open_state_round_trips(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    let mut labelled = pod("a", "ns", "p");
    labelled.labels_json = Some(r#"{"app":"web"}"#.into());
    // The columns a resuming recorder takes back (its stored state leaves them out).
    labelled.node = Some("n1".into());
    labelled.owner_kind = Some("ReplicaSet".into());
    labelled.owner_name = Some("web-1".into());
    labelled.finished_at_ms = Some(1_500);
    labelled.phase = Phase::Failed;
    labelled.resources = Effective {
        requests: Resources::new(250, 1 << 30),
        limits: Resources::new(1000, 2 << 30),
    };
    batch.pods.push(labelled);
    let mut ended = pod("b", "ns", "q");
    ended.deleted_at_ms = Some(2_000);
    batch.pods.push(ended);
    batch.pods.push(pod("c", "other", "r"));
    f.writer.commit(&batch, None).unwrap();
    let mut read = f.writer.read().unwrap();
    let mut open = Vec::new();
    read.open_pods(Some("ns"), &mut |p| open.push(p)).unwrap();
    assert_eq!(open.len(), 1, "open pods of the namespace only");
    assert_eq!(
        (
            open[0].uid.as_str(),
            open[0].namespace.as_str(),
            open[0].name.as_str()
        ),
        ("a", "ns", "p")
    );
    assert_eq!(open[0].labels_json.as_deref(), Some(r#"{"app":"web"}"#));
    assert_eq!(open[0].state, stored_state("a"));
    let o = &open[0];
    assert_eq!(
        (
            o.node.as_deref(),
            o.owner_kind.as_deref(),
            o.owner_name.as_deref()
        ),
        (Some("n1"), Some("ReplicaSet"), Some("web-1"))
    );
    assert_eq!(
        (o.created_at_ms, o.finished_at_ms, o.phase),
        (1_000, Some(1_500), Phase::Failed)
    );
    assert_eq!(o.resources.requests, Resources::new(250, 1 << 30));
    assert_eq!(o.resources.limits, Resources::new(1000, 2 << 30));
    let mut all = 0;
    read.open_pods(None, &mut |_| all += 1).unwrap();
    assert_eq!(all, 2);
}

pub(crate) fn ended_pods_go_open_pods_stay(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    let mut ended = pod("old", "ns", "gone");
    ended.deleted_at_ms = Some(2_000);
    batch.pods.push(ended);
    batch.pods.push(pod("live", "ns", "here"));
    batch
        .transitions
        .push(transition("old", TransitionKind::Created, 1, 1_000));
    batch
        .transitions
        .push(transition("live", TransitionKind::Created, 1, 1_000));
    f.writer.commit(&batch, None).unwrap();
    let (counts, done) = f.writer.prune_ended_pods(3_000, 1_000).unwrap();
    assert!(done);
    assert_eq!((counts.pods, counts.pod_transitions), (1, 1));
    assert_eq!(pod_uids(&*f.reader), vec!["live"]);
    assert_eq!(
        all_transitions(&*f.reader, &TransitionFilter::default()).len(),
        1
    );
    let (counts, done) = f.writer.prune_ended_pods(3_000, 1_000).unwrap();
    assert!(done);
    assert_eq!(counts.rows(), 0, "nothing left to prune");
}

pub(crate) fn transitions_filter_and_order(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    batch.pods.push(pod("a", "ns", "p"));
    batch.pods.push(pod("b", "other", "q"));
    batch
        .transitions
        .push(transition("a", TransitionKind::Scheduled, 2, 3_000));
    batch
        .transitions
        .push(transition("a", TransitionKind::Created, 1, 1_000));
    batch
        .transitions
        .push(transition("b", TransitionKind::Created, 1, 2_000));
    f.writer.commit(&batch, None).unwrap();
    let at = |filter: &TransitionFilter| -> Vec<(String, i64)> {
        all_transitions(&*f.reader, filter)
            .into_iter()
            .map(|t| (t.uid, t.at_ms))
            .collect()
    };
    let everything = TransitionFilter::default();
    assert_eq!(
        at(&everything),
        vec![
            ("a".into(), 1_000),
            ("b".into(), 2_000),
            ("a".into(), 3_000)
        ]
    );
    let in_ns = TransitionFilter {
        namespace: Some("ns".into()),
        ..Default::default()
    };
    assert_eq!(at(&in_ns), vec![("a".into(), 1_000), ("a".into(), 3_000)]);
    let created = TransitionFilter {
        kinds: vec![TransitionKind::Created],
        window: crate::model::time::Window {
            since_ms: Some(1_500),
            until_ms: None,
        },
        ..Default::default()
    };
    assert_eq!(at(&created), vec![("b".into(), 2_000)]);
}

pub(crate) fn pods_open_until_end_of_recording(b: &dyn Backend) {
    let mut f = b.fresh();
    let session = f.writer.start_session(&Scope::everything(), 0).unwrap();
    let mut batch = Batch::default();
    batch.pods.push(pod("a", "ns", "p"));
    let hb = Heartbeat {
        session,
        at_ms: 10_000,
    };
    f.writer.commit(&batch, Some(hb)).unwrap();
    f.writer.stop_session(hb).unwrap();
    let mut lifetimes = Vec::new();
    crate::query::for_each_pod(&*f.reader, &PodFilter::default(), 100_000, |p| {
        lifetimes.push((p.open, p.lifetime_ms));
        Ok(())
    })
    .unwrap();
    assert_eq!(lifetimes, vec![(true, 9_000)], "open until recording ended");
}

pub(crate) fn history_ambiguous_and_not_found(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    batch.pods.push(pod("a", "ns", "web"));
    batch.pods.push(pod("b", "other", "web"));
    batch
        .transitions
        .push(transition("a", TransitionKind::Created, 1, 1_000));
    f.writer.commit(&batch, None).unwrap();
    let window = crate::model::time::Window::default();
    let by_name = |namespace: Option<&str>, name: &str| {
        crate::query::history(
            &*f.reader,
            &PodRef::Name {
                namespace: namespace.map(str::to_string),
                name: name.into(),
            },
            window,
        )
    };
    match by_name(None, "web") {
        Err(QueryError::Ambiguous { namespaces, .. }) => {
            assert_eq!(namespaces, vec!["ns", "other"])
        }
        other => panic!("expected ambiguous, got {other:?}"),
    }
    let found = by_name(Some("ns"), "web").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].transitions.len(), 1);
    match by_name(Some("ns"), "nope") {
        Err(QueryError::NotFound(text)) => assert!(text.contains("no pod named"), "{text}"),
        other => panic!("expected not found, got {other:?}"),
    }
    let by_uid = crate::query::history(&*f.reader, &PodRef::Uid("b".into()), window).unwrap();
    assert_eq!(by_uid[0].namespace, "other");
}

pub(crate) fn refused_row_is_quarantined(b: &dyn Backend) {
    let mut f = b.fresh();
    b.poison(&mut f, "bad");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Fixture {
        writer,
        reader,
        _keep,
    } = f;
    let stats = Arc::new(WriterStats::default());
    runtime.block_on(async {
        let writer = Writer::spawn(writer, 4, stats.clone());
        let mut batch = Batch::default();
        for uid in ["a", "bad", "c"] {
            batch.pods.push(pod(uid, "ns", uid));
        }
        let since = Instant::now();
        assert!(writer.send(WriteMsg::Rows { batch, since }).await.is_ok());
        writer.finish(Duration::ZERO).await.unwrap();
    });
    assert_eq!(pod_uids(&*reader), vec!["a", "c"]);
    let stored = reader.snapshot().unwrap().stats().unwrap();
    assert_eq!(stored.quarantined_rows, 1);
    assert_eq!(stats.quarantined.get(), 1);
}
