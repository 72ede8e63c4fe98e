//! The rows the recorder hands to the writer: one struct per table, in machine units
//! (milliseconds since the epoch, millicores, bytes). Pods and nodes are referred to by uid; the
//! writer turns uids into the integer keys the tables use.

use std::collections::BTreeMap;

use crate::model::event::{EventType, RegardingKind};
use crate::model::owner::OwnerKind;
use crate::model::{Effective, Phase, Resources, TransitionKind};

/// The current summary of one pod incarnation. Sent whenever the recorder's projection of the
/// pod changes; the writer upserts it by uid.
#[derive(Clone, Debug, PartialEq)]
pub struct PodRow {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    /// Labels as a JSON object, for `-l` in queries.
    pub labels_json: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub deleted_at_ms: Option<i64>,
    pub phase: Phase,
    pub reason: Option<String>,
    pub restarts: i64,
    pub resources: Effective,
    /// The recorder's compact projection (see recorder::state) in its stored form (see
    /// recorder::codec), for reconciliation on restart; kept in `pod_state` while the pod is
    /// open, dropped once it is deleted (or when empty).
    pub state: Vec<u8>,
}

/// Node capacity or allocatable: cpu, memory and the pod slots.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NodeResources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: i64,
}

impl NodeResources {
    pub fn cpu_memory(&self) -> Resources {
        Resources::new(self.cpu_millis, self.memory_bytes)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeRow {
    pub uid: String,
    pub name: String,
    pub created_at_ms: i64,
    pub deleted_at_ms: Option<i64>,
    pub capacity: NodeResources,
    pub allocatable: NodeResources,
    pub state_json: String,
}

/// Which pod or node a transition is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubjectUid {
    Pod(String),
    Node(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TransitionRow {
    pub subject: SubjectUid,
    pub kind: TransitionKind,
    /// Tells apart repeats of one kind for the same subject (the idempotency key is
    /// subject + kind + seq). 0 for kinds that happen once.
    pub seq: i64,
    pub at_ms: i64,
    pub observed_at_ms: i64,
    pub phase_before: Option<Phase>,
    pub phase_after: Option<Phase>,
    pub container: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub exit_code: Option<i64>,
    pub restart_count: Option<i64>,
    pub resource_version: Option<i64>,
    pub inferred: bool,
}

impl TransitionRow {
    /// A row with only the required fields set; callers fill in the rest with struct update.
    pub fn new(subject: SubjectUid, kind: TransitionKind, at_ms: i64, observed_at_ms: i64) -> Self {
        TransitionRow {
            subject,
            kind,
            seq: 0,
            at_ms,
            observed_at_ms,
            phase_before: None,
            phase_after: None,
            container: None,
            reason: None,
            message: None,
            exit_code: None,
            restart_count: None,
            resource_version: None,
            inferred: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PodResourcesRow {
    pub pod_uid: String,
    pub at_ms: i64,
    pub resources: Effective,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeCapacityRow {
    pub node_uid: String,
    pub at_ms: i64,
    pub capacity: NodeResources,
    pub allocatable: NodeResources,
}

/// One step of a node's utilisation step function.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeUsageRow {
    pub node_uid: String,
    pub at_ms: i64,
    pub requested: Resources,
    pub limits: Resources,
    pub pod_count: i64,
    pub allocatable: Resources,
    pub keyframe: bool,
}

/// One Kubernetes Event about a pod or node, as last seen. Keyed by its uid; a row whose
/// `count` is not above the stored one changes nothing, and one that is updates the count and
/// the times and adds an occurrence (`count`, `last_seen_ms`), so a replay writes nothing twice.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub uid: String,
    pub regarding_kind: RegardingKind,
    pub regarding_uid: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub container: Option<String>,
    pub reason: Option<String>,
    pub event_type: Option<EventType>,
    /// Already truncated (`model::event::truncate_note`).
    pub note: Option<String>,
    pub reporting_controller: Option<String>,
    pub count: i64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

#[cfg(test)]
impl EventRow {
    /// A bare event about pod `p` (the recorder's unit tests), with only what they vary.
    pub(crate) fn about_pod(uid: &str, count: i64, last_seen_ms: i64) -> EventRow {
        EventRow {
            uid: uid.into(),
            regarding_kind: RegardingKind::Pod,
            regarding_uid: None,
            namespace: None,
            name: "p".into(),
            container: None,
            reason: None,
            event_type: None,
            note: None,
            reporting_controller: None,
            count,
            first_seen_ms: 0,
            last_seen_ms,
        }
    }
}

/// One ReplicaSet or Job as last seen (see `model::owner`). Keyed by its uid: a row that
/// differs from the stored one updates it, and a change of the replica counts or the revision
/// also adds a scale row at `observed_at_ms`; a row equal to the stored one writes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRow {
    pub uid: String,
    pub kind: OwnerKind,
    pub namespace: String,
    pub name: String,
    /// The Deployment or CronJob above it (its controller ownerReference).
    pub controller_kind: Option<String>,
    pub controller_name: Option<String>,
    pub revision: Option<i64>,
    pub template_hash: Option<String>,
    /// Container images in spec order, joined by `,` (an image reference holds no comma).
    pub images: String,
    pub created_at_ms: i64,
    /// When the API server said it was deleted (or a relist found it gone); kept once set.
    pub deleted_at_ms: Option<i64>,
    pub spec_replicas: Option<i64>,
    pub status_replicas: Option<i64>,
    /// When the recorder saw this state (a ReplicaSet keeps no time of its scaling).
    pub observed_at_ms: i64,
}

/// Everything one transaction writes. Order inside a batch: nodes and pods first (so the rows
/// that point at them find their keys), then everything else.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub nodes: Vec<NodeRow>,
    pub pods: Vec<PodRow>,
    pub transitions: Vec<TransitionRow>,
    pub pod_resources: Vec<PodResourcesRow>,
    pub node_capacity: Vec<NodeCapacityRow>,
    pub node_usage: Vec<NodeUsageRow>,
    /// Events stand apart: nothing else in a batch refers to them, and they refer to pods
    /// and nodes by uid only (an event may come before its pod's row, or after it is pruned).
    pub events: Vec<EventRow>,
    /// ReplicaSets and Jobs; they refer to nothing else in the batch.
    pub owners: Vec<OwnerRow>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.pods.len()
            + self.transitions.len()
            + self.pod_resources.len()
            + self.node_capacity.len()
            + self.node_usage.len()
            + self.events.len()
            + self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn append(&mut self, other: &mut Batch) {
        self.nodes.append(&mut other.nodes);
        self.pods.append(&mut other.pods);
        self.transitions.append(&mut other.transitions);
        self.pod_resources.append(&mut other.pod_resources);
        self.node_capacity.append(&mut other.node_capacity);
        self.node_usage.append(&mut other.node_usage);
        self.events.append(&mut other.events);
        self.owners.append(&mut other.owners);
    }
}

/// What a committed batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub rows: usize,
    /// Transitions that were new.
    pub transitions_inserted: usize,
    /// The same, by kind (for `kubetrail_transitions_written_total`).
    pub inserted_by_kind: BTreeMap<TransitionKind, u64>,
    /// Transitions already present (replays); not an error.
    pub transitions_ignored: usize,
    /// Events that were new, and events whose count grew (an occurrence was added).
    pub events_inserted: usize,
    pub events_updated: usize,
    /// Owners new or changed, and scale rows added.
    pub owners_written: usize,
    pub owner_scales_added: usize,
    /// Rows skipped because their pod or node was never written.
    pub skipped_unknown_subject: usize,
}

/// FNV-1a (64 bits) of a label set's JSON text, as every backend stores it in
/// `label_sets.hash`. It must never
/// change: rows written by earlier versions are found by it.
pub fn labels_hash(json: &str) -> i64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in json.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}
