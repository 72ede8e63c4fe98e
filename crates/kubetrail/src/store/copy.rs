//! Moving a whole history from one store into another (`kubetrail copy`): the rows as they
//! travel, whatever the backends. A source ([`super::HistoryExport`]) hands its tables out in
//! bounded [`CopyChunk`]s, in [`CopyTable::ORDER`]; a destination
//! ([`super::HistoryImport`]) writes each chunk in one transaction and says what was new.
//!
//! Rows name their pod or node by uid, as the recorder's rows do ([`super::rows`]): integer
//! keys are each store's own, and a destination that already holds part of the history (an
//! earlier copy of the same file, or a live recording of the same cluster) has other ones.
//! Every table has a natural key (uid; subject + kind + seq; subject + time; a session's start
//! and scope), which is what makes a second copy add nothing.

use crate::model::Effective;
use crate::model::usage::Hourly;
use crate::model::utilisation::BucketUsage;

use super::rows::{
    EventRow, NodeCapacityRow, NodeRow, NodeUsageRow, OwnerRow, PodResourcesRow, PodRow,
    TransitionRow,
};
use super::sessions::Session;

/// The tables a copy moves, in the order it moves them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CopyTable {
    Nodes,
    Pods,
    Transitions,
    PodResources,
    NodeCapacity,
    NodeUsage,
    NodeUsageRollups,
    ContainerSamples,
    NodeSamples,
    ContainerHours,
    NodeHours,
    Quarantine,
    Sessions,
    Events,
    EventOccurrences,
    Owners,
    OwnerScales,
}

impl CopyTable {
    /// Subjects first, so that every later row finds its pod or node; the recording sessions
    /// last, so that a copy that stops half-way never claims coverage for time whose rows it
    /// has not written yet (reports treat uncovered time as a gap, which is the truth then).
    pub const ORDER: [CopyTable; 17] = [
        CopyTable::Nodes,
        CopyTable::Pods,
        CopyTable::Transitions,
        CopyTable::PodResources,
        CopyTable::NodeCapacity,
        CopyTable::NodeUsage,
        CopyTable::NodeUsageRollups,
        CopyTable::ContainerSamples,
        CopyTable::NodeSamples,
        CopyTable::ContainerHours,
        CopyTable::NodeHours,
        CopyTable::Quarantine,
        CopyTable::Sessions,
        CopyTable::Events,
        CopyTable::EventOccurrences,
        CopyTable::Owners,
        CopyTable::OwnerScales,
    ];

    /// The table's name, as both schemas spell it.
    pub fn name(self) -> &'static str {
        match self {
            CopyTable::Nodes => "nodes",
            CopyTable::Pods => "pods",
            CopyTable::Transitions => "transitions",
            CopyTable::PodResources => "pod_resources",
            CopyTable::NodeCapacity => "node_capacity",
            CopyTable::NodeUsage => "node_usage",
            CopyTable::NodeUsageRollups => "node_usage_rollup",
            CopyTable::ContainerSamples => "container_usage",
            CopyTable::NodeSamples => "node_usage_samples",
            CopyTable::ContainerHours => "container_usage_hourly",
            CopyTable::NodeHours => "node_usage_samples_hourly",
            CopyTable::Quarantine => "quarantine",
            CopyTable::Sessions => "recording_sessions",
            CopyTable::Events => "events",
            CopyTable::EventOccurrences => "event_occurrences",
            CopyTable::Owners => "owners",
            CopyTable::OwnerScales => "owner_scales",
        }
    }
}

/// One hourly rollup of a node's utilisation (`node_usage_rollup`).
#[derive(Clone, Debug, PartialEq)]
pub struct RollupCopy {
    pub node_uid: String,
    /// `start_ms`/`end_ms` are the bucket, `present_ms` its covered time.
    pub usage: BucketUsage,
}

/// A measured sample of the metrics API (`container_usage`, `node_usage_samples`): the pod's
/// uid and the container's name, or the node's uid (`container` None).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleCopy {
    pub uid: String,
    pub container: Option<String>,
    pub at_ms: i64,
    pub window_ms: i64,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    /// A container's own requests and limits, as its key holds them; None for a node.
    pub resources: Option<Effective>,
}

/// An hourly rollup of measured samples (`container_usage_hourly`,
/// `node_usage_samples_hourly`), named as a [`SampleCopy`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourCopy {
    pub uid: String,
    pub container: Option<String>,
    pub hour_ms: i64,
    pub hourly: Hourly,
    /// As [`SampleCopy::resources`].
    pub resources: Option<Effective>,
}

/// A row the recorder's database refused for good (`quarantine`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineRow {
    pub at_ms: i64,
    pub kind: String,
    pub error: String,
    pub row: String,
}

/// A bounded piece of one table. Pods carry their labels and, while open, their compact state
/// (`state_json`, empty when there is none), so that a recorder resuming on the destination
/// reconciles as it would have on the source.
/// One growth of an event's series, by the event's uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OccurrenceCopy {
    pub event_uid: String,
    pub count: i64,
    pub at_ms: i64,
}

/// One change of an owner's replicas or revision (`owner_scales`), by the owner's uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleCopy {
    pub owner_uid: String,
    pub at_ms: i64,
    pub spec_replicas: Option<i64>,
    pub status_replicas: Option<i64>,
    pub revision: Option<i64>,
}

#[derive(Clone, Debug)]
pub enum CopyChunk {
    Nodes(Vec<NodeRow>),
    Pods(Vec<PodRow>),
    Transitions(Vec<TransitionRow>),
    PodResources(Vec<PodResourcesRow>),
    NodeCapacity(Vec<NodeCapacityRow>),
    NodeUsage(Vec<NodeUsageRow>),
    Rollups(Vec<RollupCopy>),
    ContainerSamples(Vec<SampleCopy>),
    NodeSamples(Vec<SampleCopy>),
    ContainerHours(Vec<HourCopy>),
    NodeHours(Vec<HourCopy>),
    Quarantine(Vec<QuarantineRow>),
    Sessions(Vec<Session>),
    Events(Vec<EventRow>),
    Occurrences(Vec<OccurrenceCopy>),
    /// ReplicaSets and Jobs; `observed_at_ms` is unused (their scale rows come apart).
    Owners(Vec<OwnerRow>),
    OwnerScales(Vec<ScaleCopy>),
}

impl CopyChunk {
    pub fn table(&self) -> CopyTable {
        match self {
            CopyChunk::Nodes(_) => CopyTable::Nodes,
            CopyChunk::Pods(_) => CopyTable::Pods,
            CopyChunk::Transitions(_) => CopyTable::Transitions,
            CopyChunk::PodResources(_) => CopyTable::PodResources,
            CopyChunk::NodeCapacity(_) => CopyTable::NodeCapacity,
            CopyChunk::NodeUsage(_) => CopyTable::NodeUsage,
            CopyChunk::Rollups(_) => CopyTable::NodeUsageRollups,
            CopyChunk::ContainerSamples(_) => CopyTable::ContainerSamples,
            CopyChunk::NodeSamples(_) => CopyTable::NodeSamples,
            CopyChunk::ContainerHours(_) => CopyTable::ContainerHours,
            CopyChunk::NodeHours(_) => CopyTable::NodeHours,
            CopyChunk::Quarantine(_) => CopyTable::Quarantine,
            CopyChunk::Sessions(_) => CopyTable::Sessions,
            CopyChunk::Events(_) => CopyTable::Events,
            CopyChunk::Occurrences(_) => CopyTable::EventOccurrences,
            CopyChunk::Owners(_) => CopyTable::Owners,
            CopyChunk::OwnerScales(_) => CopyTable::OwnerScales,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CopyChunk::Nodes(v) => v.len(),
            CopyChunk::Pods(v) => v.len(),
            CopyChunk::Transitions(v) => v.len(),
            CopyChunk::PodResources(v) => v.len(),
            CopyChunk::NodeCapacity(v) => v.len(),
            CopyChunk::NodeUsage(v) => v.len(),
            CopyChunk::Rollups(v) => v.len(),
            CopyChunk::ContainerSamples(v) | CopyChunk::NodeSamples(v) => v.len(),
            CopyChunk::ContainerHours(v) | CopyChunk::NodeHours(v) => v.len(),
            CopyChunk::Quarantine(v) => v.len(),
            CopyChunk::Sessions(v) => v.len(),
            CopyChunk::Events(v) => v.len(),
            CopyChunk::Occurrences(v) => v.len(),
            CopyChunk::Owners(v) => v.len(),
            CopyChunk::OwnerScales(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What writing one chunk did. The rest of the chunk's rows were already present, as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    /// Rows the destination did not have.
    pub new: u64,
    /// Rows it had, changed to the source's (a pod that has ended since the last copy, a
    /// session whose covered time grew).
    pub updated: u64,
    /// Rows whose pod or node the destination does not have (cannot happen when the source
    /// is sound: its subjects are copied first).
    pub skipped: u64,
}

impl ChunkCounts {
    /// Of `rows` written, those that were already there as they are.
    pub fn present(&self, rows: u64) -> u64 {
        rows.saturating_sub(self.new + self.updated + self.skipped)
    }

    pub fn add(&mut self, other: ChunkCounts) {
        self.new += other.new;
        self.updated += other.updated;
        self.skipped += other.skipped;
    }
}
