//! The report as the page reads it: one JSON document (`/api/report`, and compressed inside a
//! report file). docs/report.md documents every field.
//!
//! Pods, events and node series are *columnar*: one array per field, all of one length, and
//! rows refer to each other by index (a pod's `workload`, an event's `pod`, a pod's `node`).
//! 100k pods as objects would repeat every key 100k times; as columns each key appears once,
//! and the page builds no object per pod until it draws one.
//!
//! Units are the machine units of `query -o json`: milliseconds since the epoch, millicores;
//! memory is in MiB (whole), which is plenty for a chart and halves the digits.

use serde::Serialize;

/// The whole report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The shape's version; bumped when a field changes meaning.
    pub version: u32,
    pub generated_at_ms: i64,
    /// Where the history came from (a file path or a server URL without password).
    pub source: String,
    pub request: RequestInfo,
    pub window: WindowInfo,
    pub coverage: CoverageInfo,
    /// Things a reader must know (pods left out, partial node sums, no usage recorded).
    pub notes: Vec<String>,
    pub overview: Overview,
    pub nodes: Nodes,
    pub namespaces: Vec<String>,
    pub workloads: Workloads,
    pub pods: Pods,
    pub events: Events,
    /// Kubernetes Warning Events about those pods and nodes.
    pub warnings: Warnings,
    pub tables: Tables,
}

/// The filters as given.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RequestInfo {
    pub namespace: Option<String>,
    pub owner: Option<String>,
    pub node: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// The window drawn, after clipping to the recorded time, and its buckets.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WindowInfo {
    pub since_ms: i64,
    pub until_ms: i64,
    pub step_ms: i64,
    /// Bucket `i` starts here (the first is clipped to `since_ms`); buckets are aligned to
    /// multiples of the step since the epoch, as in `query nodes`.
    pub bucket_starts_ms: Vec<i64>,
}

impl WindowInfo {
    /// The index of the bucket holding `t_ms` (clamped to the window).
    pub fn bucket_of(&self, t_ms: i64) -> usize {
        let first = self.since_ms.div_euclid(self.step_ms);
        let last = self.bucket_starts_ms.len().saturating_sub(1) as i64;
        (t_ms.div_euclid(self.step_ms) - first).clamp(0, last.max(0)) as usize
    }

    /// The end of bucket `i` (the last is clipped to `until_ms`).
    pub fn bucket_end(&self, i: usize) -> i64 {
        self.bucket_starts_ms
            .get(i + 1)
            .copied()
            .unwrap_or(self.until_ms)
    }
}

/// The recorded time within the window (`store::Coverage`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CoverageInfo {
    /// False for a database without recording sessions: then everything counts as recorded.
    pub known: bool,
    /// Recorded `[from, to)` stretches within the window.
    pub intervals: Vec<[i64; 2]>,
    /// The window's unrecorded stretches.
    pub gaps: Vec<[i64; 2]>,
    pub covered_ms: i64,
    /// `-n`/`-l` scopes of sessions in the window: node sums then count only those pods.
    pub partial_scopes: Vec<String>,
}

/// Cluster-wide series, one value per bucket.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overview {
    /// Time-weighted average number of pods in the phase over the bucket (from the pods'
    /// created, started, finished and deleted times).
    pub pending: Vec<f64>,
    pub running: Vec<f64>,
    pub succeeded: Vec<f64>,
    pub failed: Vec<f64>,
    /// Counts of transitions in the bucket.
    pub restarts: Vec<u32>,
    pub oom_kills: Vec<u32>,
    pub evictions: Vec<u32>,
}

/// Per-node series (`query nodes`' time-weighted averages), one row per node name, one value
/// per bucket; null where the bucket has no recorded time for the node.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Nodes {
    /// Every node named by a pod or a node row, sorted.
    pub names: Vec<String>,
    pub cpu_requested_millis: Vec<Vec<Option<i64>>>,
    pub cpu_limits_millis: Vec<Vec<Option<i64>>>,
    pub cpu_allocatable_millis: Vec<Vec<Option<i64>>>,
    pub memory_requested_mib: Vec<Vec<Option<i64>>>,
    pub memory_limits_mib: Vec<Vec<Option<i64>>>,
    pub memory_allocatable_mib: Vec<Vec<Option<i64>>>,
    pub pods_peak: Vec<Vec<Option<i64>>>,
    /// Some bucket of the node was recorded with `-n`/`-l` (sums of those pods only).
    pub partial: Vec<bool>,
    /// `[node, from_ms, to_ms]`: the node was NotReady (or cordoned) then, clipped to the window.
    pub not_ready: Vec<[i64; 3]>,
    pub cordoned: Vec<[i64; 3]>,
    pub events: NodeEvents,
}

/// Node transitions in the window (added, deleted, ready, not_ready, cordoned, uncordoned,
/// capacity_changed), columnar.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeEvents {
    pub node: Vec<u32>,
    pub at_ms: Vec<i64>,
    pub kind: Vec<&'static str>,
    pub reason: Vec<Option<String>>,
    pub message: Vec<Option<String>>,
}

/// Workloads: pods grouped by their direct owner as recorded (namespace, kind, name); a pod
/// without an owner is its own workload of kind `Pod`. Sorted by trouble, worst first.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Workloads {
    pub namespace: Vec<u32>,
    pub kind: Vec<String>,
    pub name: Vec<String>,
    pub pods: Vec<u32>,
    pub restarts: Vec<i64>,
    pub oom_kills: Vec<u32>,
    pub evictions: Vec<u32>,
    pub failed: Vec<u32>,
}

/// Pod incarnations alive in the window (`query pods`' rows), oldest first.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pods {
    pub namespace: Vec<u32>,
    pub name: Vec<String>,
    // No uid: 100k random uids were a third of a big report's compressed size. A pod is named
    // by namespace, name and `created_ms` (what `/api/history` answers with, per incarnation).
    pub workload: Vec<u32>,
    /// Index into `nodes.names`, or null while never scheduled.
    pub node: Vec<Option<u32>>,
    pub created_ms: Vec<i64>,
    pub started_ms: Vec<Option<i64>>,
    pub finished_ms: Vec<Option<i64>>,
    pub deleted_ms: Vec<Option<i64>>,
    pub phase: Vec<&'static str>,
    pub reason: Vec<Option<String>>,
    pub restarts: Vec<i64>,
}

impl Pods {
    pub fn len(&self) -> usize {
        self.name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_empty()
    }
}

/// The pod transitions drawn as markers (restarts, terminations other than Completed,
/// failures and evictions, waiting reasons), in time order, columnar. The fields are
/// `query transitions`' of the same name.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Events {
    pub pod: Vec<u32>,
    pub at_ms: Vec<i64>,
    pub kind: Vec<&'static str>,
    pub container: Vec<Option<String>>,
    pub reason: Vec<Option<String>>,
    pub exit_code: Vec<Option<i64>>,
    pub restart_count: Vec<Option<i64>>,
    pub message: Vec<Option<String>>,
    pub inferred: Vec<bool>,
}

impl Events {
    pub fn len(&self) -> usize {
        self.pod.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pod.is_empty()
    }
}

/// Kubernetes Warning Events (`query events --type Warning`) about the report's pods and
/// nodes, seen in the window, by last seen, columnar. A series (BackOff x40) is one row with its
/// count; it is drawn where it was last seen.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Warnings {
    /// Index into `pods` for an event about a pod, else null.
    pub pod: Vec<Option<u32>>,
    /// Index into `nodes.names` for an event about a node, else null.
    pub node: Vec<Option<u32>>,
    pub first_seen_ms: Vec<i64>,
    pub last_seen_ms: Vec<i64>,
    pub reason: Vec<Option<String>>,
    /// The container the event names (`fieldPath`), if any.
    pub container: Vec<Option<String>>,
    pub count: Vec<i64>,
    /// The event's note (at most 1 KiB, as recorded).
    pub note: Vec<Option<String>>,
    /// The reporting controller (kubelet, default-scheduler, ...).
    pub source: Vec<Option<String>>,
}

impl Warnings {
    pub fn len(&self) -> usize {
        self.last_seen_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_seen_ms.is_empty()
    }
}

/// One row of the Warning reasons table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WarningReason {
    pub reason: String,
    /// Occurrences: a series counts its count.
    pub occurrences: i64,
    /// Warning rows about pods and about nodes with this reason.
    pub pods: u32,
    pub nodes: u32,
    pub last_seen_ms: i64,
}

/// The "top" tables, as indexes into `pods` or `events`, each at most [`super::summary::TABLE_ROWS`]
/// long, with the full counts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tables {
    /// Pods by restarts, most first (only pods that restarted).
    pub top_restarts: Vec<u32>,
    /// OOMKilled terminations (events), newest first.
    pub oom_kills: Vec<u32>,
    pub oom_kills_total: u32,
    /// Evictions (failed with reason Evicted; events), newest first.
    pub evictions: Vec<u32>,
    pub evictions_total: u32,
    /// `[pod, pending_ms]`, longest first: from creation to start (or to the end of the pod or
    /// of the window, for a pod that never started).
    pub longest_pending: Vec<[i64; 2]>,
    /// Warning reasons, most occurrences first.
    pub warning_reasons: Vec<WarningReason>,
}
