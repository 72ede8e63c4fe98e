//! The object store behind the simulated API server: current objects per resource, the
//! resourceVersion counter, the retained event history that watches resume from, saved list
//! snapshots for `continue` tokens, and the broadcast that fans changes out to watchers.
//!
//! Objects live in persistent ordered maps (`imbl::OrdMap`), so a consistent snapshot of a whole
//! resource is an O(1) clone: a paginated list serves every page from the map as it was at the
//! first page's resourceVersion, and a watch that starts with the current state takes the
//! snapshot and subscribes to changes under the same lock, so nothing falls in between.
//!
//! Each object's JSON is serialised once per change (`Bytes`, shared by the map, the history
//! and every watcher), so a list is a concatenation and a watch event is a copy.
//!
//! There is one writer (the scenario engine); readers are the HTTP handlers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use imbl::OrdMap;
use tokio::sync::broadcast;

/// The resources the simulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Pods,
    Nodes,
    Namespaces,
    /// Core v1 Events.
    Events,
    /// The same Events as `events.k8s.io/v1` shows them.
    EventsV1,
    /// `apps/v1`, minimal: the owners of the simulated pods (see `owners`).
    ReplicaSets,
    Deployments,
    /// `batch/v1`.
    Jobs,
}

impl ResourceKind {
    /// Core v1's first: a plural is looked up in this order for `/api/v1/...`.
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::Pods,
        ResourceKind::Nodes,
        ResourceKind::Namespaces,
        ResourceKind::Events,
        ResourceKind::EventsV1,
        ResourceKind::ReplicaSets,
        ResourceKind::Deployments,
        ResourceKind::Jobs,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            ResourceKind::Pods => "Pod",
            ResourceKind::Nodes => "Node",
            ResourceKind::Namespaces => "Namespace",
            ResourceKind::Events | ResourceKind::EventsV1 => "Event",
            ResourceKind::ReplicaSets => "ReplicaSet",
            ResourceKind::Deployments => "Deployment",
            ResourceKind::Jobs => "Job",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::Pods => "pods",
            ResourceKind::Nodes => "nodes",
            ResourceKind::Namespaces => "namespaces",
            ResourceKind::Events | ResourceKind::EventsV1 => "events",
            ResourceKind::ReplicaSets => "replicasets",
            ResourceKind::Deployments => "deployments",
            ResourceKind::Jobs => "jobs",
        }
    }

    /// The `apiVersion` of its objects and lists.
    pub fn api_version(self) -> &'static str {
        match self {
            ResourceKind::EventsV1 => "events.k8s.io/v1",
            ResourceKind::ReplicaSets | ResourceKind::Deployments => "apps/v1",
            ResourceKind::Jobs => "batch/v1",
            _ => "v1",
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(self, ResourceKind::Nodes | ResourceKind::Namespaces)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Map key: namespace ("" for cluster-scoped objects) then name, which is also the order in
/// which a real apiserver lists objects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjectKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// What label and field selectors look at, kept beside the JSON so filtering never parses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectableFields {
    pub labels: Vec<(String, String)>,
    /// Pods: `spec.nodeName` ("" when unscheduled).
    pub node_name: String,
    /// Pods: `status.phase`.
    pub phase: String,
}

/// One version of one object.
#[derive(Debug)]
pub struct StoredObject {
    pub key: ObjectKey,
    pub rv: u64,
    pub json: Bytes,
    pub fields: SelectableFields,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change, as retained in the history and broadcast to watchers. `prev` lets a watch with
/// a selector turn "stopped matching" into DELETED and "started matching" into ADDED, as the
/// real apiserver does.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub change_type: ChangeType,
    pub object: Arc<StoredObject>,
    pub prev: Option<Arc<StoredObject>>,
}

pub type ObjectMap = OrdMap<ObjectKey, Arc<StoredObject>>;

/// Where a watch starts, decided atomically with its subscription.
pub enum WatchStart {
    /// Send every current object as ADDED, then changes after `rv`.
    Initial {
        rv: u64,
        objects: ObjectMap,
        rx: broadcast::Receiver<Arc<Change>>,
        /// [`Store::compactions`] when the watch began.
        compactions: u64,
    },
    /// Send the retained changes after the requested rv, then live ones.
    Resume {
        backlog: Vec<Arc<Change>>,
        rx: broadcast::Receiver<Arc<Change>>,
        /// [`Store::compactions`] when the watch began.
        compactions: u64,
    },
    /// The requested rv is older than the retained history: the watcher must relist.
    TooOld { requested: u64, oldest: u64 },
}

/// What [`Store::bookmark_rv`] allows a watch stream to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bookmark {
    Send(u64),
    /// Changes are still queued for this watcher.
    NotYet,
    /// A compaction came after the watch began: end the stream.
    Compacted,
}

/// Limits on what the store retains.
#[derive(Clone, Debug)]
pub struct RetentionLimits {
    /// Events kept per resource for watches to resume from.
    pub history_events: usize,
    /// How long a list snapshot stays valid for `continue` (the real default is about 5 minutes
    /// of etcd history; 60 s is plenty for a client paging through).
    pub snapshot_ttl: Duration,
    /// Buffered events per watcher before it is considered too slow and its stream is closed.
    pub watcher_buffer: usize,
}

impl Default for RetentionLimits {
    fn default() -> Self {
        RetentionLimits {
            history_events: 100_000,
            snapshot_ttl: Duration::from_secs(60),
            watcher_buffer: 65_536,
        }
    }
}

struct ResourceState {
    objects: ObjectMap,
    history: VecDeque<Arc<Change>>,
    /// A watch may resume from rv N only if N >= compacted_rv (every change after N is kept).
    compacted_rv: u64,
    snapshots: BTreeMap<u64, (ObjectMap, Instant)>,
    tx: broadcast::Sender<Arc<Change>>,
}

struct Inner {
    rv: u64,
    /// Explicit compactions so far (the `compact` fault); a watch stream that began before one
    /// delivers nothing after it (see [`Store::compact`]).
    compactions: u64,
    /// The rv each of them took, in order.
    compaction_rvs: Vec<u64>,
    resources: Vec<ResourceState>,
}

/// Counters for `/_sim/stats`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StoreStats {
    pub resource_version: u64,
    pub pods: usize,
    pub nodes: usize,
    pub namespaces: usize,
    pub events_emitted: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    limits: RetentionLimits,
    events_emitted: AtomicU64,
    /// The scenario's virtual "now", for ages in kubectl tables.
    virtual_now_ms: AtomicI64,
    /// What the metrics API's usage depends on, kept beside the objects by the scenario.
    pub usage: super::metrics::UsagePlans,
}

impl Store {
    pub fn new(limits: RetentionLimits) -> Arc<Store> {
        let resources = ResourceKind::ALL
            .iter()
            .map(|_| ResourceState {
                objects: OrdMap::new(),
                history: VecDeque::new(),
                compacted_rv: 0,
                snapshots: BTreeMap::new(),
                tx: broadcast::channel(limits.watcher_buffer).0,
            })
            .collect();
        Arc::new(Store {
            inner: Mutex::new(Inner {
                rv: 0,
                compactions: 0,
                compaction_rvs: Vec::new(),
                resources,
            }),
            limits,
            events_emitted: AtomicU64::new(0),
            usage: super::metrics::UsagePlans::default(),
            virtual_now_ms: AtomicI64::new(0),
        })
    }

    /// A poisoned lock only means a panic elsewhere; the data is still consistent because every
    /// mutation is completed before anything that could panic.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// The current objects of a resource and the rv they are consistent with.
    pub fn snapshot(&self, resource: ResourceKind) -> (u64, ObjectMap) {
        let inner = self.lock();
        (inner.rv, inner.resources[resource.index()].objects.clone())
    }

    /// Remembers a snapshot so later pages of the same list can be served from it.
    pub fn save_snapshot(&self, resource: ResourceKind, rv: u64, objects: ObjectMap) {
        let mut inner = self.lock();
        let ttl = self.limits.snapshot_ttl;
        let state = &mut inner.resources[resource.index()];
        state.snapshots.retain(|_, (_, at)| at.elapsed() < ttl);
        // A newer list at the same rv refreshes the entry (the engine may be paused).
        state.snapshots.insert(rv, (objects, Instant::now()));
        // Bound memory if a client lists in a tight loop.
        while state.snapshots.len() > 256 {
            state.snapshots.pop_first();
        }
    }

    /// A snapshot saved by an earlier page, if it has not expired. Each use extends its life,
    /// so a slow client paging through a big list is not cut off.
    pub fn saved_snapshot(&self, resource: ResourceKind, rv: u64) -> Option<ObjectMap> {
        let mut inner = self.lock();
        let (objects, at) = inner.resources[resource.index()].snapshots.get_mut(&rv)?;
        if at.elapsed() >= self.limits.snapshot_ttl {
            return None;
        }
        *at = Instant::now();
        Some(objects.clone())
    }

    pub fn get(&self, resource: ResourceKind, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        self.lock().resources[resource.index()]
            .objects
            .get(key)
            .cloned()
    }

    /// Starts a watch: `from` None means "current state first" (rv unset, "0", or
    /// sendInitialEvents), Some(rv) means "changes after rv".
    pub fn watch(&self, resource: ResourceKind, from: Option<u64>) -> WatchStart {
        let inner = self.lock();
        let state = &inner.resources[resource.index()];
        match from {
            None => WatchStart::Initial {
                rv: inner.rv,
                objects: state.objects.clone(),
                rx: state.tx.subscribe(),
                compactions: inner.compactions,
            },
            Some(rv) if rv < state.compacted_rv => WatchStart::TooOld {
                requested: rv,
                oldest: state.compacted_rv,
            },
            Some(rv) => {
                let start = state.history.partition_point(|change| change.rv <= rv);
                WatchStart::Resume {
                    backlog: state.history.range(start..).cloned().collect(),
                    rx: state.tx.subscribe(),
                    compactions: inner.compactions,
                }
            }
        }
    }

    /// A BOOKMARK's rv for a watcher that began at compaction count `compactions`: the current
    /// rv when `rx` has nothing left (every change up to it has been handed to this watcher),
    /// [`Bookmark::NotYet`] while changes wait, [`Bookmark::Compacted`] once a compaction came
    /// after the watch began (the stream must end instead).
    pub fn bookmark_rv(&self, rx: &broadcast::Receiver<Arc<Change>>, compactions: u64) -> Bookmark {
        // Changes are sent under the lock, so an empty receiver seen under the lock has them all.
        let inner = self.lock();
        if inner.compactions != compactions {
            Bookmark::Compacted
        } else if rx.is_empty() {
            Bookmark::Send(inner.rv)
        } else {
            Bookmark::NotYet
        }
    }

    /// The rv of the first compaction after the first `compactions` ones, if there is one:
    /// a stream that began at that count may deliver changes before it, none after.
    pub fn first_compaction_after(&self, compactions: u64) -> Option<u64> {
        self.lock()
            .compaction_rvs
            .get(compactions as usize)
            .copied()
    }

    /// Drops the retained history. The rv is bumped once (without a change) so that every rv a
    /// client holds, even one fully caught up, is now too old: its next watch gets 410 Gone and
    /// it must relist, which is what this fault exists to test.
    ///
    /// Every open watch stream ends too, delivering nothing from after this instant (each checks
    /// [`Store::first_compaction_after`] before it sends a change, and [`Store::bookmark_rv`]
    /// before a bookmark); what was published before it is still delivered. Otherwise a change or a
    /// bookmark sent between the compaction and the cut that follows it would give its watcher
    /// an rv newer than the compaction, and that watcher would resume without a 410: the fault
    /// would depend on timing (the flaky "exactly one relist" tests).
    pub fn compact(&self) -> u64 {
        let mut inner = self.lock();
        inner.rv += 1;
        inner.compactions += 1;
        let rv = inner.rv;
        inner.compaction_rvs.push(rv);
        for state in &mut inner.resources {
            state.history.clear();
            state.compacted_rv = rv;
        }
        rv
    }

    pub fn set_virtual_now_ms(&self, at_ms: i64) {
        self.virtual_now_ms.store(at_ms, Ordering::Relaxed);
    }

    pub fn virtual_now_ms(&self) -> i64 {
        self.virtual_now_ms.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> StoreStats {
        let inner = self.lock();
        StoreStats {
            resource_version: inner.rv,
            pods: inner.resources[ResourceKind::Pods.index()].objects.len(),
            nodes: inner.resources[ResourceKind::Nodes.index()].objects.len(),
            namespaces: inner.resources[ResourceKind::Namespaces.index()]
                .objects
                .len(),
            events_emitted: self.events_emitted.load(Ordering::Relaxed),
        }
    }

    /// Creates or replaces an object. `render` gets the new resourceVersion and returns the
    /// object's JSON with that rv in `metadata.resourceVersion`.
    pub fn put(
        &self,
        resource: ResourceKind,
        key: ObjectKey,
        fields: SelectableFields,
        render: impl FnOnce(u64) -> Vec<u8>,
    ) -> u64 {
        let mut inner = self.lock();
        inner.rv += 1;
        let rv = inner.rv;
        let object = Arc::new(StoredObject {
            key: key.clone(),
            rv,
            json: render(rv).into(),
            fields,
        });
        let state = &mut inner.resources[resource.index()];
        let prev = state.objects.insert(key, object.clone());
        let change_type = if prev.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.publish(
            state,
            Change {
                rv,
                change_type,
                object,
                prev,
            },
        );
        rv
    }

    /// Removes an object; `render` gives its final JSON (with the deletion's rv), which the
    /// DELETED event carries. Returns None if there was no such object.
    pub fn remove(
        &self,
        resource: ResourceKind,
        key: &ObjectKey,
        render: impl FnOnce(u64) -> Vec<u8>,
    ) -> Option<u64> {
        let mut inner = self.lock();
        if !inner.resources[resource.index()].objects.contains_key(key) {
            return None;
        }
        inner.rv += 1;
        let rv = inner.rv;
        let state = &mut inner.resources[resource.index()];
        let prev = state.objects.remove(key)?;
        let object = Arc::new(StoredObject {
            key: key.clone(),
            rv,
            json: render(rv).into(),
            fields: prev.fields.clone(),
        });
        self.publish(
            state,
            Change {
                rv,
                change_type: ChangeType::Deleted,
                object,
                prev: Some(prev),
            },
        );
        Some(rv)
    }

    fn publish(&self, state: &mut ResourceState, change: Change) {
        let change = Arc::new(change);
        state.history.push_back(change.clone());
        while state.history.len() > self.limits.history_events {
            if let Some(dropped) = state.history.pop_front() {
                state.compacted_rv = dropped.rv;
            }
        }
        self.events_emitted.fetch_add(1, Ordering::Relaxed);
        // No receivers is fine: nobody is watching.
        let _ = state.tx.send(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(store: &Store, name: &str) -> u64 {
        store.put(
            ResourceKind::Pods,
            ObjectKey::new("ns", name),
            SelectableFields::default(),
            |rv| format!("{{\"rv\":{rv}}}").into_bytes(),
        )
    }

    #[test]
    fn snapshots_are_isolated_from_later_changes() {
        let store = Store::new(RetentionLimits::default());
        put(&store, "a");
        let (rv, snap) = store.snapshot(ResourceKind::Pods);
        put(&store, "b");
        assert_eq!(rv, 1);
        assert_eq!(snap.len(), 1);
        assert_eq!(store.snapshot(ResourceKind::Pods).1.len(), 2);
    }

    #[test]
    fn watch_resumes_after_rv_and_compaction_expires_every_old_rv() {
        let store = Store::new(RetentionLimits::default());
        for name in ["a", "b", "c"] {
            put(&store, name);
        }
        match store.watch(ResourceKind::Pods, Some(1)) {
            WatchStart::Resume { backlog, .. } => {
                assert_eq!(backlog.iter().map(|c| c.rv).collect::<Vec<_>>(), vec![2, 3]);
            }
            _ => panic!("expected a resume"),
        }
        let rv = store.compact();
        assert!(matches!(
            store.watch(ResourceKind::Pods, Some(3)),
            WatchStart::TooOld { .. }
        ));
        assert!(matches!(
            store.watch(ResourceKind::Pods, Some(rv)),
            WatchStart::Resume { .. }
        ));
    }

    #[test]
    fn a_watch_begun_before_a_compaction_may_send_no_bookmark_after_it() {
        let store = Store::new(RetentionLimits::default());
        put(&store, "a");
        let WatchStart::Resume {
            rx, compactions, ..
        } = store.watch(ResourceKind::Pods, Some(1))
        else {
            panic!("expected a resume");
        };
        assert_eq!(store.bookmark_rv(&rx, compactions), Bookmark::Send(1));
        store.compact();
        assert_eq!(store.bookmark_rv(&rx, compactions), Bookmark::Compacted);
    }

    #[test]
    fn history_limit_compacts() {
        let limits = RetentionLimits {
            history_events: 2,
            ..Default::default()
        };
        let store = Store::new(limits);
        for name in ["a", "b", "c", "d"] {
            put(&store, name);
        }
        assert!(matches!(
            store.watch(ResourceKind::Pods, Some(1)),
            WatchStart::TooOld { .. }
        ));
        assert!(matches!(
            store.watch(ResourceKind::Pods, Some(2)),
            WatchStart::Resume { .. }
        ));
    }
}
