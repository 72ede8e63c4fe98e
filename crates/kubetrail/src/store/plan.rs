//! What retention would do and did, as the store reports it: a policy's [`Plan`] (computed by
//! `Snapshot::plan`, reading only) and the rows a prune step deleted ([`PruneCounts`]). Plain
//! data, the same for every backend (like `coverage`), so that the store names no layer above
//! it; retention says a plan for people (`retention::plan`) and adds counts up over a pass.
//!
//! The age rules are counted exactly (the same cutoffs and conditions as the pass uses). The
//! size budget is an estimate: the bytes a row takes are averaged per table (SQLite: page bytes
//! of the table and its indexes over its rows, from `dbstat`), and the oldest ended history is
//! walked forward until the estimate fits. A real pass measures pages after every step instead,
//! so it removes what is needed, not what was estimated.

use serde::Serialize;

use super::size::FileSize;
use crate::model::rollup::{ROLLUP_BUCKET_MS, floor_to_bucket};

/// Rows and page bytes of one table, its indexes included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableSize {
    pub table: String,
    pub rows: u64,
    /// None when SQLite was built without the `dbstat` table.
    pub bytes: Option<u64>,
}

/// The tables that hold history, in the order reports list them.
pub const HISTORY_TABLES: &[&str] = &[
    "pods",
    "label_sets",
    "pod_state",
    "transitions",
    "pod_resources",
    "nodes",
    "node_capacity",
    "node_usage",
    "node_usage_rollup",
    "events",
    "event_occurrences",
    "owners",
    "owner_scales",
    "usage_containers",
    "container_usage",
    "node_usage_samples",
    "container_usage_hourly",
    "node_usage_samples_hourly",
];

/// What the age rules would remove.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AgedOut {
    /// Pods deleted before this (`--max-age`).
    pub cutoff_ms: Option<i64>,
    pub pods: u64,
    pub pod_transitions: u64,
    pub pod_resources: u64,
    /// Deleted nodes whose transitions and capacity rows go (their rows stay while rollups
    /// name them).
    pub deleted_nodes: u64,
    pub node_transitions: u64,
    pub node_capacity: u64,
    /// Events last seen before the cutoff, and their occurrences.
    pub events: u64,
    pub event_occurrences: u64,
    /// ReplicaSets and Jobs deleted before the cutoff that no kept pod names, and their scale
    /// rows.
    pub owners: u64,
    pub owner_scales: u64,
}

/// What `--raw-usage-age` and `--rollup-age` would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageOutlook {
    /// Raw rows before this are rolled up (aligned to the hour).
    pub raw_horizon_ms: Option<i64>,
    pub raw_rows_rolled_up: u64,
    /// Rollup rows that would be written: one per node and hour covered.
    pub rollups_written: u64,
    /// Rollups ending before this go.
    pub rollup_cutoff_ms: Option<i64>,
    pub rollups_expired: u64,
}

/// What `--max-db-size` would do, estimated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SizeOutlook {
    pub budget_bytes: u64,
    /// The used pages the pass aims for: the budget less room for the write-ahead log.
    pub target_used_bytes: u64,
    pub used_bytes_now: u64,
    /// After the age rules, estimated.
    pub used_bytes_after_age_rules: u64,
    /// Ended history (and raw utilisation, rolled up) older than this would go early; None when
    /// the age rules are enough.
    pub early_cutoff_ms: Option<i64>,
    pub early_pods: u64,
    pub early_raw_rows: u64,
    /// Rollups that would go early (the newest 7 days never do).
    pub early_rollups: u64,
    /// The budget cannot hold what may never be deleted.
    pub cannot_fit: bool,
}

/// Everything a policy would do to a database now.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub now_ms: i64,
    pub policy: String,
    /// The file's size and free pages; None for a store without a file (a server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSize>,
    pub aged_out: AgedOut,
    pub usage: UsageOutlook,
    pub size: Option<SizeOutlook>,
}

/// How many hourly rollups rolling up a node's raw rows from `first_ms` to the horizon writes
/// (its deletion ends them early).
pub fn rollup_hours(first_ms: i64, deleted_ms: Option<i64>, horizon_ms: i64) -> u64 {
    let end = deleted_ms.map_or(horizon_ms, |d| d.min(horizon_ms));
    if first_ms >= end {
        return 0;
    }
    ((floor_to_bucket(end - 1) - floor_to_bucket(first_ms)) / ROLLUP_BUCKET_MS + 1) as u64
}

/// Rows deleted, by table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneCounts {
    pub pods: u64,
    pub pod_transitions: u64,
    pub pod_resources: u64,
    pub nodes: u64,
    pub node_transitions: u64,
    pub node_capacity: u64,
    pub events: u64,
    pub event_occurrences: u64,
    pub owners: u64,
    pub owner_scales: u64,
}

impl PruneCounts {
    pub fn rows(&self) -> u64 {
        self.pods
            + self.pod_transitions
            + self.pod_resources
            + self.nodes
            + self.node_transitions
            + self.node_capacity
            + self.events
            + self.event_occurrences
            + self.owners
            + self.owner_scales
    }

    pub fn add(&mut self, other: &PruneCounts) {
        self.pods += other.pods;
        self.pod_transitions += other.pod_transitions;
        self.pod_resources += other.pod_resources;
        self.nodes += other.nodes;
        self.node_transitions += other.node_transitions;
        self.node_capacity += other.node_capacity;
        self.events += other.events;
        self.event_occurrences += other.event_occurrences;
        self.owners += other.owners;
        self.owner_scales += other.owner_scales;
    }
}
