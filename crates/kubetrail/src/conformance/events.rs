//! Conformance cases for Kubernetes Events: idempotent writes by uid and count, occurrences,
//! filters, the counts a recorder resumes from, and retention by age, through the traits only.

use std::ops::ControlFlow;

use super::Backend;
use crate::model::event::{EventFilter, EventRecord, EventType, RegardingKind};
use crate::model::time::Window;
use crate::store::{Batch, EventRow, HistoryReader};

fn event(uid: &str, pod: &str, reason: &str, count: i64, last_seen_ms: i64) -> EventRow {
    EventRow {
        uid: uid.into(),
        regarding_kind: RegardingKind::Pod,
        regarding_uid: Some(format!("uid-{pod}")),
        namespace: Some("shop".into()),
        name: pod.into(),
        container: Some("app".into()),
        reason: Some(reason.into()),
        event_type: Some(if reason == "BackOff" {
            EventType::Warning
        } else {
            EventType::Normal
        }),
        note: Some(format!("{reason} note")),
        reporting_controller: Some("kubelet".into()),
        count,
        first_seen_ms: 1_000,
        last_seen_ms,
    }
}

fn read(reader: &dyn HistoryReader, filter: &EventFilter) -> Vec<EventRecord> {
    let mut out = Vec::new();
    let mut snap = reader.snapshot().unwrap();
    snap.events(filter, &mut |e| {
        out.push(e);
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

fn commit(f: &mut super::Fixture, events: Vec<EventRow>) -> crate::store::BatchStats {
    let batch = Batch {
        events,
        ..Batch::default()
    };
    f.writer.commit(&batch, None).unwrap()
}

pub(crate) fn events_are_written_once_and_a_growing_series_updates_its_count(b: &dyn Backend) {
    let mut f = b.fresh();
    let first = vec![
        event("e1", "web-1", "Scheduled", 1, 1_000),
        event("e2", "web-1", "BackOff", 1, 2_000),
    ];
    let stats = commit(&mut f, first.clone());
    assert_eq!((stats.events_inserted, stats.events_updated), (2, 0));
    // A replay (a relist after a restart) changes nothing.
    let stats = commit(&mut f, first);
    assert_eq!((stats.events_inserted, stats.events_updated), (0, 0));
    // The series grows; an older copy arriving late changes nothing.
    let stats = commit(
        &mut f,
        vec![
            event("e2", "web-1", "BackOff", 3, 5_000),
            event("e2", "web-1", "BackOff", 2, 4_000),
        ],
    );
    assert_eq!((stats.events_inserted, stats.events_updated), (0, 1));
    let all = read(&*f.reader, &EventFilter::default());
    assert_eq!(all.len(), 2);
    let backoff = all.iter().find(|e| e.uid == "e2").unwrap();
    assert_eq!(backoff.count, 3);
    assert_eq!(
        (backoff.first_seen_ms, backoff.last_seen_ms),
        (1_000, 5_000)
    );
    assert_eq!(backoff.event_type.as_deref(), Some("Warning"));
    assert_eq!(backoff.container.as_deref(), Some("app"));
    assert_eq!(backoff.kind, "Pod");
    let stats = f.reader.snapshot().unwrap().stats().unwrap();
    assert_eq!(stats.event_count, 2);
    assert_eq!(
        super::table_rows(&*f.reader, "event_occurrences"),
        Some(1),
        "one occurrence: count 3"
    );

    // Several rows of one uid in one batch count as they would one batch each: a new series
    // that grows (inserted once, updated once) and a stored one that grows twice, each growth
    // above a count of 1 an occurrence, the last note kept.
    let mut grown = event("e2", "web-1", "BackOff", 6, 9_000);
    grown.note = Some("the last note".into());
    let stats = commit(
        &mut f,
        vec![
            event("e3", "web-2", "BackOff", 1, 6_000),
            event("e2", "web-1", "BackOff", 5, 7_000),
            event("e3", "web-2", "BackOff", 4, 8_000),
            event("e3", "web-2", "BackOff", 4, 8_500),
            grown,
        ],
    );
    assert_eq!((stats.events_inserted, stats.events_updated), (1, 3));
    let all = read(&*f.reader, &EventFilter::default());
    let e2 = all.iter().find(|e| e.uid == "e2").unwrap();
    assert_eq!((e2.count, e2.last_seen_ms), (6, 9_000));
    assert_eq!(e2.note.as_deref(), Some("the last note"));
    let e3 = all.iter().find(|e| e.uid == "e3").unwrap();
    assert_eq!(
        (e3.count, e3.first_seen_ms, e3.last_seen_ms),
        (4, 1_000, 8_000)
    );
    assert_eq!(
        super::table_rows(&*f.reader, "event_occurrences"),
        Some(4),
        "e2 at 3, 5 and 6; e3 at 4"
    );
}

pub(crate) fn events_filter_by_reason_type_pod_node_and_window(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut node_event = event("n1", "node-a", "NodeNotReady", 1, 3_000);
    node_event.regarding_kind = RegardingKind::Node;
    node_event.namespace = None;
    commit(
        &mut f,
        vec![
            event("e1", "web-1", "Scheduled", 1, 1_000),
            event("e2", "web-1", "BackOff", 4, 2_000),
            event("e3", "web-2", "Pulled", 1, 4_000),
            node_event,
        ],
    );
    let uids = |filter: EventFilter| -> Vec<String> {
        read(&*f.reader, &filter)
            .into_iter()
            .map(|e| e.uid)
            .collect()
    };
    assert_eq!(uids(EventFilter::default()), ["e1", "e2", "n1", "e3"]);
    let reasons = vec!["BackOff".to_string(), "Pulled".to_string()];
    assert_eq!(
        uids(EventFilter {
            reasons,
            ..Default::default()
        }),
        ["e2", "e3"]
    );
    let warnings = EventFilter {
        event_type: Some(EventType::Warning),
        ..Default::default()
    };
    assert_eq!(uids(warnings), ["e2"]);
    let pod = EventFilter {
        pod: Some("web-1".into()),
        ..Default::default()
    };
    assert_eq!(uids(pod), ["e1", "e2"]);
    let node = EventFilter {
        node: Some("node-a".into()),
        ..Default::default()
    };
    assert_eq!(uids(node), ["n1"]);
    let ns = EventFilter {
        namespace: Some("shop".into()),
        ..Default::default()
    };
    assert_eq!(uids(ns), ["e1", "e2", "e3"]);
    let window = EventFilter {
        window: Window {
            since_ms: Some(2_500),
            until_ms: Some(10_000),
        },
        ..Default::default()
    };
    assert_eq!(uids(window), ["n1", "e3"]);
    let by_uid = EventFilter {
        regarding_uids: Some(vec!["uid-web-2".into()]),
        ..Default::default()
    };
    assert_eq!(uids(by_uid), ["e3"]);
}

pub(crate) fn recent_event_counts_and_old_events_pruned(b: &dyn Backend) {
    let mut f = b.fresh();
    commit(
        &mut f,
        vec![
            event("old", "web-1", "BackOff", 5, 2_000),
            event("new", "web-1", "Pulled", 1, 9_000),
        ],
    );
    let mut recent = Vec::new();
    let mut snap = f.writer.read().unwrap();
    snap.recent_event_counts(5_000, &mut |uid, n| recent.push((uid, n)))
        .unwrap();
    drop(snap);
    assert_eq!(recent, [("new".to_string(), 1)]);
    let aged_out = super::max_age_plan(&*f.reader, 5_000, 10_000);
    assert_eq!((aged_out.events, aged_out.event_occurrences), (1, 1));
    let (counts, done) = f.writer.prune_events(5_000, 1_000).unwrap();
    assert!(done);
    assert_eq!((counts.events, counts.event_occurrences), (1, 1));
    let left: Vec<String> = read(&*f.reader, &EventFilter::default())
        .into_iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(left, ["new"]);
}
