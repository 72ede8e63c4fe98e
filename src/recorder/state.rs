//! The compact projection of pods and nodes that the recorder caches, diffs and persists.
//!
//! This is what the design calls "state": only what transitions and utilisation need, never the
//! whole object (no env values, no specs, no annotations). Each projection serialises to a short
//! JSON string stored in `pods.state` / `nodes.state`, so a restarted recorder diffs the first
//! list against exactly what it last committed. Field names are short on purpose: they are
//! repeated in every row.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{Effective, Phase};
use crate::store::NodeResources;

/// Shared immutable text. Namespaces, node names, container names and reasons repeat across
/// thousands of pods; the cache stores one copy of each (see [`Interner`]), and a uid is shared
/// between the cache's key, the state and the node index.
pub type Text = Arc<str>;

/// Deduplicates the strings the cache keeps. Grows with the number of distinct values
/// (namespaces, nodes, container names, owners, reasons), not with the number of pods.
#[derive(Default)]
pub struct Interner {
    set: HashSet<Text>,
}

impl Interner {
    pub fn intern(&mut self, text: &mut Text) {
        match self.set.get(&**text) {
            Some(shared) => *text = shared.clone(),
            None => {
                self.set.insert(text.clone());
            }
        }
    }

    fn intern_opt(&mut self, text: &mut Option<Text>) {
        if let Some(text) = text {
            self.intern(text);
        }
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// How a container run ended. Boxed where it is held: most containers are running, and an
/// empty `Option<Box<_>>` costs 8 bytes where the inline struct costs 48.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    #[serde(rename = "n")]
    pub name: Text,
    /// An init container (plain or sidecar); app containers are false.
    #[serde(rename = "i", default, skip_serializing_if = "is_false")]
    pub init: bool,
    #[serde(rename = "c", default)]
    pub restart_count: i64,
    /// When the current (or last, if terminated) run started.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// `state.terminated`: the current run has ended.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<Box<Termination>>,
    /// `lastState.terminated`: how the previous run ended.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub last_terminated: Option<Box<Termination>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A container's resources as `[cpu request millis, memory request bytes, cpu limit millis,
/// memory limit bytes]`: one short JSON array in the stored state.
pub type ResourceQuad = [i64; 4];

/// One container's resources, kept to tell a resize that was asked for (spec) from one the
/// kubelet carried out (status). Init and app containers alike, in spec order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerResize {
    #[serde(rename = "n")]
    pub name: Text,
    /// `spec.containers[].resources`: what is asked for.
    #[serde(rename = "d", default)]
    pub desired: ResourceQuad,
    /// `status.containerStatuses[].resources` is present (the kubelet reports what it applied).
    #[serde(rename = "rp", default, skip_serializing_if = "is_false")]
    pub reported: bool,
    /// What the kubelet applied, when it differs from `desired` (boxed: it rarely does).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub actuated_other: Option<Box<ResourceQuad>>,
}

impl ContainerResize {
    /// What the kubelet reports as applied, if it reports anything.
    pub fn actuated(&self) -> Option<ResourceQuad> {
        self.reported.then(|| {
            self.actuated_other
                .as_deref()
                .copied()
                .unwrap_or(self.desired)
        })
    }
}

/// In-place resize: per-container resources and the pod's resize conditions. Absent for a pod
/// that declares no resources and reports none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodResize {
    #[serde(rename = "c", default)]
    pub containers: Vec<ContainerResize>,
    /// The PodResizePending condition's reason (Deferred or Infeasible).
    #[serde(rename = "pr", default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<Text>,
    #[serde(rename = "pm", default, skip_serializing_if = "Option::is_none")]
    pub pending_message: Option<Text>,
    /// The PodResizeInProgress condition is present.
    #[serde(rename = "ip", default, skip_serializing_if = "is_false")]
    pub in_progress: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    /// The identity is not in the stored JSON: `pod_state` rows belong to a `pods` row that has
    /// these columns, and [`resume`](super::resume) fills them back in.
    #[serde(skip)]
    pub uid: Text,
    #[serde(skip)]
    pub namespace: Text,
    #[serde(skip)]
    pub name: Text,
    #[serde(rename = "no", default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Text>,
    #[serde(rename = "p", default)]
    pub phase: Phase,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Text>,
    #[serde(rename = "ca")]
    pub created_at_ms: i64,
    /// `metadata.deletionTimestamp`: when the grace period ends.
    #[serde(rename = "da", default, skip_serializing_if = "Option::is_none")]
    pub deletion_at_ms: Option<i64>,
    #[serde(rename = "dg", default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_secs: Option<i64>,
    /// PodScheduled=True lastTransitionTime.
    #[serde(rename = "sa", default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at_ms: Option<i64>,
    /// `status.startTime`.
    #[serde(rename = "st", default, skip_serializing_if = "Option::is_none")]
    pub start_time_ms: Option<i64>,
    #[serde(rename = "rd", default, skip_serializing_if = "is_false")]
    pub ready: bool,
    /// Ready condition lastTransitionTime.
    #[serde(rename = "ra", default, skip_serializing_if = "Option::is_none")]
    pub ready_changed_at_ms: Option<i64>,
    #[serde(rename = "c", default)]
    pub containers: Vec<ContainerState>,
    #[serde(rename = "e", default)]
    pub resources: Effective,
    #[serde(rename = "ok", default, skip_serializing_if = "Option::is_none")]
    pub owner_kind: Option<Text>,
    #[serde(rename = "on", default, skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<Text>,
    #[serde(rename = "rv", default)]
    pub resource_version: Option<i64>,
    /// When the pod reached Succeeded or Failed (the `at` of that transition); set by the cache.
    #[serde(rename = "fa", default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// In-place resize state (see [`PodResize`]).
    #[serde(rename = "rz", default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<Box<PodResize>>,
}

impl PodState {
    /// Replaces repeated strings with the interner's shared copies (the uid stays unique).
    pub fn intern(&mut self, interner: &mut Interner) {
        interner.intern(&mut self.namespace);
        interner.intern_opt(&mut self.node);
        interner.intern_opt(&mut self.reason);
        interner.intern_opt(&mut self.owner_kind);
        interner.intern_opt(&mut self.owner_name);
        for c in &mut self.containers {
            interner.intern(&mut c.name);
            for t in [&mut c.terminated, &mut c.last_terminated]
                .into_iter()
                .flatten()
            {
                interner.intern_opt(&mut t.reason);
            }
        }
        if let Some(resize) = &mut self.resize {
            interner.intern_opt(&mut resize.pending_reason);
            for c in &mut resize.containers {
                interner.intern(&mut c.name);
            }
        }
    }

    /// Whether the pod still holds resources on its node: bound and not finished.
    pub fn holds_node_resources(&self) -> bool {
        self.node.is_some() && !self.phase.is_terminal()
    }

    /// Whether any container has ever run (phase Running, or a container start on record).
    pub fn has_started(&self) -> bool {
        self.phase == Phase::Running
            || self.start_time_ms.is_some() && self.phase.is_terminal()
            || self
                .containers
                .iter()
                .any(|c| !c.init && c.started_at_ms.is_some())
    }

    pub fn restarts(&self) -> i64 {
        self.containers.iter().map(|c| c.restart_count).sum()
    }

    /// The time the pod started running: status.startTime, else the first container start.
    pub fn started_at_ms(&self) -> Option<i64> {
        self.start_time_ms.or_else(|| {
            self.containers
                .iter()
                .filter(|c| !c.init)
                .filter_map(|c| c.started_at_ms)
                .min()
        })
    }

    /// The reason to show for how the pod ended: the pod's own (Evicted, DeadlineExceeded), else
    /// that of the last container to terminate (OOMKilled, Error, Completed).
    pub fn final_reason(&self) -> Option<Text> {
        if !self.phase.is_terminal() {
            return None;
        }
        self.reason.clone().or_else(|| {
            self.containers
                .iter()
                .filter_map(|c| c.terminated.as_ref())
                .max_by_key(|t| t.finished_at_ms)
                .and_then(|t| t.reason.clone())
        })
    }

    /// The latest finishedAt of any container, for the time a pod reached a terminal phase.
    pub fn last_finished_at_ms(&self) -> Option<i64> {
        self.containers
            .iter()
            .filter_map(|c| c.terminated.as_ref().and_then(|t| t.finished_at_ms))
            .max()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    #[serde(rename = "u")]
    pub uid: Text,
    #[serde(rename = "n")]
    pub name: Text,
    #[serde(rename = "ca")]
    pub created_at_ms: i64,
    /// Ready condition is True.
    #[serde(rename = "rd", default, skip_serializing_if = "is_false")]
    pub ready: bool,
    #[serde(rename = "ra", default, skip_serializing_if = "Option::is_none")]
    pub ready_changed_at_ms: Option<i64>,
    #[serde(rename = "us", default, skip_serializing_if = "is_false")]
    pub unschedulable: bool,
    #[serde(rename = "cap", default)]
    pub capacity: NodeResources,
    #[serde(rename = "alc", default)]
    pub allocatable: NodeResources,
    #[serde(rename = "rv", default)]
    pub resource_version: Option<i64>,
}
