//! The reports' vocabulary: the filters the store's reads take and the rows they return
//! (transitions, pod summaries, a pod's incarnations). Plain data with its small rules, shared
//! by the store (which turns a filter into statements and rows into these records) and `query`
//! (which renders them); how they print as a table lives in `query`.

use serde::Serialize;

use super::owner::DirectOwner;

use super::selector::LabelSelector;
use super::time::{Window, format_time_short};
use super::{Phase, Subject, TransitionKind};

/// Which transitions to read. The default reads every pod transition.
#[derive(Clone, Debug, Default)]
pub struct TransitionFilter {
    /// Only these kinds (pod or node kinds); empty means every kind of the included subjects.
    pub kinds: Vec<TransitionKind>,
    /// Include node transitions when `kinds` is empty (`--nodes`).
    pub include_nodes: bool,
    /// Only rows whose reason is one of these (exact match).
    pub reasons: Vec<String>,
    /// Pod rows in this namespace. Node rows have no namespace and are not filtered by it.
    pub namespace: Option<String>,
    /// Pod rows of pods bound to this node, and node rows of this node.
    pub node: Option<String>,
    /// Pod rows whose pod matches; node rows are not filtered by it.
    pub selector: LabelSelector,
    /// Rows whose `at` falls in the window.
    pub window: Window,
    /// Only these pod incarnations (`pods.id`), for `query history`: all of a name's
    /// incarnations in one read. `Some` of an empty list reads nothing.
    pub pod_ids: Option<Vec<i64>>,
    pub limit: Option<u64>,
}

impl TransitionFilter {
    pub(crate) fn includes_pods(&self) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k.subject() == Subject::Pod)
    }

    pub(crate) fn includes_nodes(&self) -> bool {
        if self.pod_ids.is_some() {
            return false;
        }
        if self.kinds.is_empty() {
            self.include_nodes
        } else {
            self.kinds.iter().any(|k| k.subject() == Subject::Node)
        }
    }
}

/// One transition, in machine units. The field order is the CSV header (`query::transitions::TRANSITION_FIELDS`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransitionRecord {
    /// The cluster's name, only when the report reads more than one (a PostgreSQL database
    /// with several clusters): then it is the first column of every format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// "pod" or "node".
    pub subject: &'static str,
    /// The pod's or node's uid.
    pub uid: String,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    /// The node: the pod's node for pod rows, the node itself for node rows.
    pub node: Option<String>,
    pub kind: &'static str,
    pub at: String,
    pub at_ms: i64,
    pub observed_at: String,
    pub observed_at_ms: i64,
    pub phase_before: Option<&'static str>,
    pub phase_after: Option<&'static str>,
    pub container: Option<String>,
    pub reason: Option<String>,
    pub exit_code: Option<i64>,
    pub restart_count: Option<i64>,
    pub message: Option<String>,
    pub resource_version: Option<i64>,
    pub inferred: bool,
}

impl TransitionRecord {
    /// The kind with `*` appended when the row was inferred.
    pub(crate) fn kind_cell(&self) -> String {
        if self.inferred {
            format!("{}*", self.kind)
        } else {
            self.kind.to_string()
        }
    }

    /// "Pending->Running", "->Failed", or empty when the row carries no phase.
    pub(crate) fn phase_cell(&self) -> String {
        match (self.phase_before, self.phase_after) {
            (Some(b), Some(a)) if a != b => format!("{b}->{a}"),
            (_, Some(a)) => a.to_string(),
            (Some(b), None) => b.to_string(),
            (None, None) => String::new(),
        }
    }

    pub(crate) fn subject_cell(&self) -> String {
        match (self.subject, &self.namespace, &self.pod) {
            ("pod", Some(ns), Some(pod)) => format!("{ns}/{pod}"),
            _ => format!("node/{}", self.node.as_deref().unwrap_or_default()),
        }
    }
}

/// Which pods to list. The default lists every pod ever recorded.
#[derive(Clone, Debug, Default)]
pub struct PodFilter {
    pub namespace: Option<String>,
    pub node: Option<String>,
    /// The pod's current (last recorded) phase.
    pub phase: Option<Phase>,
    pub selector: LabelSelector,
    /// Pods alive at some point in the window: created before its end and not deleted before
    /// its start.
    pub window: Window,
    pub limit: Option<u64>,
    /// Only pods whose direct owner is one of these (`--owner`, resolved through the chain by
    /// `query`); Some(empty) selects no pod.
    pub owners: Option<Vec<DirectOwner>>,
}

/// One pod incarnation's lifecycle, in machine units.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PodSummary {
    /// The cluster's name, only when the report reads more than one (a PostgreSQL database
    /// with several clusters): then it is the first column of every format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    pub created: String,
    pub created_at_ms: i64,
    pub started: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished: Option<String>,
    pub finished_at_ms: Option<i64>,
    pub deleted: Option<String>,
    pub deleted_at_ms: Option<i64>,
    /// Deletion minus creation; for a pod still open, now (or the end of recording, if that is
    /// earlier) minus creation.
    pub lifetime_ms: i64,
    /// Not deleted as far as the recorder knows.
    pub open: bool,
    pub phase: &'static str,
    pub reason: Option<String>,
    pub restarts: i64,
    pub cpu_request_millis: i64,
    pub memory_request_bytes: i64,
    pub cpu_limit_millis: i64,
    pub memory_limit_bytes: i64,
}

/// One incarnation (uid) of a pod and its transitions. Serialised as one element of the
/// `query history -o json` array.
#[derive(Clone, Debug, Serialize)]
pub struct Incarnation {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub created: String,
    pub created_at_ms: i64,
    pub deleted: Option<String>,
    pub deleted_at_ms: Option<i64>,
    /// The last phase recorded, and its reason.
    pub phase: &'static str,
    pub reason: Option<String>,
    pub transitions: Vec<TransitionRecord>,
    /// The Kubernetes Events about this incarnation in the window, by last seen. Kept apart
    /// from `transitions` (their fields differ); the table merges both by time.
    pub events: Vec<super::event::EventRecord>,
    /// The store's id of this incarnation, to read its transitions.
    #[serde(skip)]
    pub(crate) pod_id: i64,
}

impl Incarnation {
    /// The line printed above this incarnation's table.
    pub fn heading(&self, index: usize, of: usize) -> String {
        let mut line = format!("pod {}/{}   uid {}", self.namespace, self.name, self.uid);
        if of > 1 {
            line.push_str(&format!("   (incarnation {} of {of})", index + 1));
        }
        line.push_str(&format!(
            "\n  created {}",
            format_time_short(self.created_at_ms)
        ));
        match self.deleted_at_ms {
            Some(at) => line.push_str(&format!(", deleted {}", format_time_short(at))),
            None => line.push_str(", not deleted"),
        }
        if let Some(node) = &self.node {
            line.push_str(&format!(", node {node}"));
        }
        line.push_str(&format!(", last phase {}", self.phase));
        if let Some(reason) = &self.reason {
            line.push_str(&format!(" ({reason})"));
        }
        line
    }
}
