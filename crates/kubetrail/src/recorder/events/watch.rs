//! The events task: lists and watches Events (events.k8s.io/v1, or core/v1 where the API
//! server does not serve that group), keeps the uid and count of what it already handed on,
//! and sends only what is new or grown to the writer through the bounded [`super::queue`].
//!
//! It runs as a task of its own beside the pod/node loop: its decoding, its relists and its
//! batches never take a turn from pod transitions, and its queue's overflow drops events, not
//! transitions. After a restart the counts the store already holds are loaded first
//! ([`Known::load`]), so the first list writes only what happened while kubetrail was away;
//! the store is idempotent by uid and count besides, so a count this task forgot (expired, or
//! dropped) is written at most once more.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::time::MissedTickBehavior;

use super::EventStats;
use super::decode::{AnyEvent, CoreEvent, EventV1};
use super::queue::{EventBatch, EventSender, NotQueued};
use crate::model::time::now_ms;
use crate::model::uid::canonical_uuid;
use crate::recorder::backoff::paced;
use crate::recorder::begin::after_initial_list;
use crate::recorder::health::describe;
use crate::store::{EventRow, Snapshot, StoreError};

/// How long an event is remembered after it was last seen. The API server keeps events for
/// an hour by default (`--event-ttl`); twice that covers it with room, and bounds the memory
/// a flood costs (one small entry per event of the last two hours).
pub const REMEMBER_MS: i64 = 2 * 3_600_000;

/// How the events watch runs.
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// Only this namespace's events (node events live in `default`, so a namespaced recorder
    /// sees none); None for all.
    pub namespace: Option<String>,
    pub page_size: u32,
    /// Server-side timeout of each watch request, in seconds.
    pub watch_timeout_secs: u32,
    /// Longest time new rows wait before they are queued.
    pub flush_interval: Duration,
    /// Rows per batch.
    pub batch_rows: usize,
}

/// The uid and count of every event handed on (or found in the store), and when it was last
/// seen, so an unchanged MODIFIED or a relist writes nothing.
#[derive(Debug, Default)]
pub struct Known {
    events: HashMap<EventKey, (i64, i64)>,
}

/// An event's uid as [`Known`] keeps it. An API server's uids are UUIDs in their canonical
/// text (36 bytes, and a heap allocation of their own): kept as 16 bytes, a 100k-pod cluster's
/// 200k events take 9 MB less. Any other text is kept as it came, so two different uids never
/// share a key (the canonical lowercase form and its 16 bytes map one to one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum EventKey {
    Uuid([u8; 16]),
    Other(Box<str>),
}

impl EventKey {
    fn of(uid: &str) -> EventKey {
        canonical_uuid(uid).map_or_else(|| EventKey::Other(uid.into()), EventKey::Uuid)
    }
}

impl Known {
    /// What the store holds of the events seen since [`REMEMBER_MS`] ago.
    pub fn load(read: &mut dyn Snapshot, now_ms: i64) -> Result<Known, StoreError> {
        let mut known = Known::default();
        read.recent_event_counts(now_ms - REMEMBER_MS, &mut |uid, count| {
            known.events.insert(EventKey::of(&uid), (count, now_ms));
        })?;
        Ok(known)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Whether `row` is new or its count grew; if so it is remembered.
    pub fn admit(&mut self, row: &EventRow) -> bool {
        match self.events.entry(EventKey::of(&row.uid)) {
            Entry::Occupied(entry) if entry.get().0 >= row.count => false,
            Entry::Occupied(mut entry) => {
                *entry.get_mut() = (row.count, row.last_seen_ms);
                true
            }
            Entry::Vacant(entry) => {
                entry.insert((row.count, row.last_seen_ms));
                true
            }
        }
    }

    /// Rows that were dropped: forgotten, so that a later sight of them is written.
    pub fn forget(&mut self, rows: &[EventRow]) {
        for row in rows {
            self.events.remove(&EventKey::of(&row.uid));
        }
    }

    /// Forgets events last seen before `before_ms`.
    pub fn expire(&mut self, before_ms: i64) {
        self.events.retain(|_, (_, seen)| *seen >= before_ms);
    }
}

/// Whether the API server serves `events.k8s.io/v1` (by discovery). A 404 means it does not;
/// any other failure is taken as yes, since every supported Kubernetes version does, and the
/// watch's own retries then say what is wrong.
pub async fn serves_events_v1(client: &Client) -> bool {
    match client.list_api_group_resources("events.k8s.io/v1").await {
        Ok(list) => list.resources.iter().any(|r| r.name == "events"),
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(err) => {
            tracing::warn!(%err, "cannot discover events.k8s.io/v1; watching it anyway");
            true
        }
    }
}

/// Runs the events watch until `stop` completes, then queues what it holds and returns.
///
/// Nothing is listed before `begin` resolves ([`after_initial_list`]): the list of events can
/// be as big as the pods' (every pod has a few events within the hour the API server keeps
/// them), and listed beside it, it would take the writer's time from it and overflow the
/// queue, dropping events while the writer is busy.
pub async fn run(
    client: Client,
    config: EventsConfig,
    known: Known,
    queue: EventSender,
    stats: Arc<EventStats>,
    begin: impl Future<Output = ()>,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    if !after_initial_list("events", begin, stop.as_mut()).await {
        return;
    }
    if serves_events_v1(&client).await {
        tracing::info!("watching events.k8s.io/v1 Events about pods and nodes");
        run_group::<EventV1>(client, config, known, queue, stats, stop).await
    } else {
        tracing::info!(
            "the API server does not serve events.k8s.io/v1; watching core v1 Events instead"
        );
        run_group::<CoreEvent>(client, config, known, queue, stats, stop).await
    }
}

struct Task {
    known: Known,
    queue: EventSender,
    stats: Arc<EventStats>,
    rows: Vec<EventRow>,
    since: Option<Instant>,
    /// Drops not yet logged, and when the last drop line was logged.
    unlogged_drops: u64,
    drop_logged: Option<Instant>,
    writer_gone: bool,
}

/// At most one line per this about dropped events (a flood would log one per batch).
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

impl Task {
    /// Takes an event in; true when it is new or grown (and so is to be written).
    fn on_row(&mut self, row: EventRow) -> bool {
        self.stats.received.inc();
        if self.known.admit(&row) {
            self.since.get_or_insert_with(Instant::now);
            self.rows.push(row);
            true
        } else {
            self.stats.unchanged.inc();
            false
        }
    }

    fn flush(&mut self) {
        if self.rows.is_empty() || self.writer_gone {
            return;
        }
        let batch = EventBatch {
            rows: std::mem::take(&mut self.rows),
            since: self.since.take().unwrap_or_else(Instant::now),
        };
        match self.queue.try_send(batch) {
            Ok(()) => {}
            Err((NotQueued::Full, batch)) => {
                let n = batch.rows.len() as u64;
                self.stats.dropped.inc_by(n);
                self.known.forget(&batch.rows);
                self.unlogged_drops += n;
                self.log_drops(false);
            }
            Err((NotQueued::Closed, _)) => self.writer_gone = true,
        }
    }

    fn log_drops(&mut self, now: bool) {
        if self.unlogged_drops == 0 {
            return;
        }
        if now
            || self
                .drop_logged
                .is_none_or(|at| at.elapsed() >= DROP_LOG_EVERY)
        {
            tracing::warn!(
                dropped = self.unlogged_drops,
                dropped_total = self.stats.dropped.get(),
                queued = self.queue.queued(),
                "the queue of events to the database is full: events dropped so that pod \
                 transitions are not delayed (kubetrail_events_dropped_total)"
            );
            self.unlogged_drops = 0;
            self.drop_logged = Some(Instant::now());
        }
    }
}

async fn run_group<K>(
    client: Client,
    config: EventsConfig,
    known: Known,
    queue: EventSender,
    stats: Arc<EventStats>,
    stop: impl Future<Output = ()>,
) where
    K: AnyEvent
        + kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match &config.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let wc = watcher::Config::default()
        .page_size(config.page_size)
        .timeout(config.watch_timeout_secs);
    let mut stream = paced(watcher::watcher(api, wc).boxed());
    let mut task = Task {
        known,
        queue,
        stats,
        rows: Vec::new(),
        since: None,
        unlogged_drops: 0,
        drop_logged: None,
        writer_gone: false,
    };
    let mut flush = tokio::time::interval(config.flush_interval);
    flush.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut expire = tokio::time::interval(Duration::from_secs(600));
    expire.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // What the current list brought: every event, and those new or grown. Counted as they
    // come, since a flush during a long list hands some of them on before it ends.
    let mut listed = 0usize;
    let mut list_writes = 0usize;
    let mut failing = false;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            item = stream.next() => match item {
                Some(Ok(Event::InitApply(e))) => {
                    listed += 1;
                    if let Some(row) = e.into_inner().row
                        && task.on_row(row)
                    {
                        list_writes += 1;
                    }
                }
                Some(Ok(Event::Apply(e))) => {
                    if let Some(row) = e.into_inner().row {
                        task.on_row(row);
                    }
                }
                Some(Ok(Event::Init)) => {
                    listed = 0;
                    list_writes = 0;
                }
                Some(Ok(Event::InitDone)) => {
                    failing = false;
                    tracing::info!(
                        listed,
                        new_or_grown = list_writes,
                        "event list done; following events"
                    );
                }
                // An event's deletion is its expiry (the API server's TTL): nothing happened.
                Some(Ok(Event::Delete(_))) => {}
                Some(Err(err)) => {
                    if !failing {
                        tracing::warn!(error = %describe(&err), "event watch failed; retrying with backoff");
                    }
                    failing = true;
                }
                None => break,
            },
            _ = flush.tick() => {
                task.flush();
                task.log_drops(false);
            }
            _ = expire.tick() => task.known.expire(now_ms() - REMEMBER_MS),
        }
        if task.rows.len() >= config.batch_rows {
            task.flush();
        }
        if task.writer_gone {
            break;
        }
    }
    task.flush();
    task.log_drops(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uid: &str, count: i64) -> EventRow {
        EventRow::about_pod(uid, count, 100 * count)
    }

    /// Not canonical (upper case, no dashes, too short): kept as text. Uids that differ in
    /// one digit are different keys.
    #[test]
    fn canonical_uuids_are_kept_as_their_bytes_and_nothing_else_is() {
        let uid = "0a1b2c3d-4e5f-4789-8abc-def012345678";
        assert!(matches!(EventKey::of(uid), EventKey::Uuid(_)));
        for other in [
            "0A1B2C3D-4E5F-4789-8ABC-DEF012345678",
            "0a1b2c3d4e5f47898abcdef012345678",
            "0a1b2c3d-4e5f-4789-8abc-def01234567",
        ] {
            assert_eq!(EventKey::of(other), EventKey::Other(other.into()));
        }
        assert_ne!(
            EventKey::of(uid),
            EventKey::of("0a1b2c3d-4e5f-4789-8abc-def012345679")
        );
    }

    #[test]
    fn known_events_are_told_apart_by_uid_whatever_its_form() {
        let mut known = Known::default();
        let uuid = "0a1b2c3d-4e5f-4789-8abc-def012345678";
        let upper = "0A1B2C3D-4E5F-4789-8ABC-DEF012345678";
        assert!(known.admit(&row(uuid, 1)));
        assert!(
            known.admit(&row(upper, 1)),
            "another uid, though the same digits"
        );
        assert!(known.admit(&row("not-a-uuid", 1)));
        assert!(!known.admit(&row(uuid, 1)), "seen, count unchanged");
        assert!(known.admit(&row(uuid, 2)), "its count grew");
        known.forget(&[row(upper, 1)]);
        assert!(known.admit(&row(upper, 1)), "forgotten, so admitted again");
        assert!(!known.admit(&row(uuid, 2)));
        assert_eq!(known.len(), 3);
    }

    #[test]
    fn a_full_queue_drops_the_batch_counts_it_and_forgets_its_events() {
        let stats = Arc::new(EventStats::default());
        let (queue, mut rx) = super::super::queue::channel(3, stats.clone());
        let mut task = Task {
            known: Known::default(),
            queue,
            stats: stats.clone(),
            rows: Vec::new(),
            since: None,
            unlogged_drops: 0,
            drop_logged: None,
            writer_gone: false,
        };
        for uid in ["a", "b", "c"] {
            task.on_row(row(uid, 1));
        }
        task.on_row(row("a", 1));
        assert_eq!(
            stats.unchanged.get(),
            1,
            "an unchanged repeat is not queued"
        );
        task.flush();
        assert_eq!(task.queue.queued(), 3);
        // The writer is behind: the next batch does not fit and is dropped, not waited for.
        task.on_row(row("d", 1));
        task.on_row(row("a", 2));
        task.flush();
        assert_eq!(stats.dropped.get(), 2);
        assert_eq!(task.queue.queued(), 3);
        // Dropped events are written when they are seen again, once there is room.
        assert_eq!(rx.try_recv().unwrap().rows.len(), 3);
        task.on_row(row("d", 1));
        task.on_row(row("a", 2));
        task.flush();
        let again: Vec<(String, i64)> = rx
            .try_recv()
            .unwrap()
            .rows
            .into_iter()
            .map(|r| (r.uid, r.count))
            .collect();
        assert_eq!(again, [("d".to_string(), 1), ("a".to_string(), 2)]);
        assert_eq!(stats.received.get(), 8);
    }

    #[test]
    fn only_new_events_and_grown_counts_are_admitted() {
        let mut known = Known::default();
        assert!(known.admit(&row("a", 1)));
        assert!(!known.admit(&row("a", 1)), "an unchanged MODIFIED");
        assert!(known.admit(&row("a", 3)), "the series grew");
        assert!(!known.admit(&row("a", 2)), "an older copy");
        known.forget(&[row("a", 3)]);
        assert!(
            known.admit(&row("a", 3)),
            "dropped rows are written when seen again"
        );
        known.expire(301);
        assert!(known.is_empty());
    }
}
