//! The kind seam: what the event loop needs to know about a watched kind, so that one loop
//! (`informer`) follows every kind and a new kind is one more `impl`, not a copy of the loop.
//!
//! A watched kind is its slim serde type (`objects`: it decodes only the fields kubetrail
//! keeps, straight into its compact state in `state`), the pure detector that turns two of
//! those states and an [`Observation`] into rows (`detect`), and the cache's bookkeeping for it
//! (`cache`, where kinds meet: a node's requested sums come from its pods). This trait ties the
//! three together for the loop: which stream it is, and how its events reach the cache.

use kube::runtime::watcher::Event;
use prometheus::IntGauge;

use super::cache::Cache;
use super::detect::Observation;
use super::objects::{Node, Pod};
use super::stats::{RecorderStats, Resource};
use crate::store::Batch;

/// A kind the recorder lists and watches.
pub trait WatchedKind: Sized + Send + 'static {
    /// Its stream, for statistics, logs and probes.
    const RESOURCE: Resource;

    /// `metadata.resourceVersion` as a number, to tell replayed events from live ones.
    fn resource_version(&self) -> Option<i64>;

    /// Whether the cache already holds this object (an Apply of it is a modification).
    fn is_cached(&self, cache: &Cache) -> bool;

    /// A list begins: whatever the cache holds and the list does not show is gone at its end.
    fn begin_relist(cache: &mut Cache);

    /// An added or modified object, or one listed.
    fn apply(self, cache: &mut Cache, obs: Observation, batch: &mut Batch);

    /// A deleted object.
    fn delete(self, cache: &mut Cache, obs: Observation, batch: &mut Batch);

    /// A list ended; returns how many cached objects it did not show (gone meanwhile).
    fn end_relist(cache: &mut Cache, obs: Observation, batch: &mut Batch) -> usize;

    /// The cache has followed this kind's events until `now_ms` (after a list, and after every
    /// watch event). Most kinds have nothing to note.
    fn followed_until(_cache: &mut Cache, _now_ms: i64) {}

    /// How many objects of this kind the cache holds.
    fn cached_count(cache: &Cache) -> usize;

    /// The gauge that shows [`WatchedKind::cached_count`].
    fn cached_gauge(stats: &RecorderStats) -> &IntGauge;
}

/// What an event does to the cache; the loop does the bookkeeping around it (progress of the
/// list, statistics). Returns whether it ended a list, and how many objects that list found
/// gone.
pub fn apply_event<K: WatchedKind>(
    event: Event<K>,
    cache: &mut Cache,
    live: impl FnOnce(Option<i64>) -> Observation,
    now_ms: i64,
    batch: &mut Batch,
) -> Applied {
    let applied = match event {
        Event::Init => {
            K::begin_relist(cache);
            return Applied::ListBegan;
        }
        Event::InitApply(object) => {
            object.apply(cache, Observation::inferred(now_ms), batch);
            return Applied::Listed;
        }
        Event::InitDone => Applied::ListDone {
            gone: K::end_relist(cache, Observation::inferred(now_ms), batch),
        },
        Event::Apply(object) => {
            let obs = live(object.resource_version());
            object.apply(cache, obs, batch);
            Applied::Watched
        }
        Event::Delete(object) => {
            let obs = live(object.resource_version());
            object.delete(cache, obs, batch);
            Applied::Watched
        }
    };
    K::followed_until(cache, now_ms);
    applied
}

/// What [`apply_event`] did, for the loop's bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    ListBegan,
    Listed,
    ListDone { gone: usize },
    Watched,
}

impl WatchedKind for Pod {
    const RESOURCE: Resource = Resource::Pods;

    fn resource_version(&self) -> Option<i64> {
        self.state.resource_version.get()
    }

    fn is_cached(&self, cache: &Cache) -> bool {
        cache.has_pod(&self.state.uid)
    }

    fn begin_relist(cache: &mut Cache) {
        cache.begin_pod_relist();
    }

    fn apply(self, cache: &mut Cache, obs: Observation, batch: &mut Batch) {
        cache.apply_pod(self, obs, batch);
    }

    fn delete(self, cache: &mut Cache, obs: Observation, batch: &mut Batch) {
        cache.delete_pod(self, obs, batch);
    }

    fn end_relist(cache: &mut Cache, obs: Observation, batch: &mut Batch) -> usize {
        cache.end_pod_relist(obs, batch)
    }

    /// Pods the cache holds were there at least until now: what a restart's reconciliation
    /// and the coverage of a deletion found later rely on.
    fn followed_until(cache: &mut Cache, now_ms: i64) {
        cache.followed_pods_until(now_ms);
    }

    fn cached_count(cache: &Cache) -> usize {
        cache.pod_count()
    }

    fn cached_gauge(stats: &RecorderStats) -> &IntGauge {
        &stats.cached_pods
    }
}

impl WatchedKind for Node {
    const RESOURCE: Resource = Resource::Nodes;

    fn resource_version(&self) -> Option<i64> {
        self.state.resource_version
    }

    fn is_cached(&self, cache: &Cache) -> bool {
        cache.has_node(&self.state.name)
    }

    fn begin_relist(cache: &mut Cache) {
        cache.begin_node_relist();
    }

    fn apply(self, cache: &mut Cache, obs: Observation, batch: &mut Batch) {
        cache.apply_node(self, obs, batch);
    }

    fn delete(self, cache: &mut Cache, obs: Observation, batch: &mut Batch) {
        cache.delete_node(self, obs, batch);
    }

    fn end_relist(cache: &mut Cache, obs: Observation, batch: &mut Batch) -> usize {
        cache.end_node_relist(obs, batch)
    }

    fn cached_count(cache: &Cache) -> usize {
        cache.node_count()
    }

    fn cached_gauge(stats: &RecorderStats) -> &IntGauge {
        &stats.cached_nodes
    }
}
