//! Transition rows: the filter, the row type, and the one function that reads them. `query
//! transitions`, `query history` and `export transitions` all go through [`for_each_transition`],
//! so a row means the same thing everywhere.
//!
//! Rows come out in `(at_ms, id)` order: `at` is Kubernetes' own time (whole seconds for most
//! kinds), and the insertion order breaks ties the way the recorder saw them. That order is
//! exactly the `transitions_by_at` index, so a windowed export streams without a sort.

use serde::Serialize;

use super::error::{QueryError, handing_over};
pub use crate::model::report::{TransitionFilter, TransitionRecord};
use crate::model::time::format_time_short;
use crate::model::{Subject, TransitionKind};
use crate::output::Record;
use crate::store::HistoryReader;

/// Parses `--kind` values. A bare name means the pod kind when pods have one (`ready`, `deleted`
/// exist for both); `node:ready` or `pod:deleted` pick a subject explicitly; with `--nodes` a
/// shared name means both. Names only nodes have (`added`, `not_ready`, `cordoned`,
/// `uncordoned`, `capacity_changed`) need no prefix.
pub fn parse_kinds(names: &[String], include_nodes: bool) -> Result<Vec<TransitionKind>, String> {
    let mut kinds = Vec::new();
    for raw in names
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let found: Vec<TransitionKind> = match raw.split_once(':') {
            Some(("pod", name)) => vec![TransitionKind::from_name(Subject::Pod, name)?],
            Some(("node", name)) => vec![TransitionKind::from_name(Subject::Node, name)?],
            _ => {
                let pod = TransitionKind::from_name(Subject::Pod, raw).ok();
                let node = TransitionKind::from_name(Subject::Node, raw).ok();
                match (pod, node) {
                    (Some(p), Some(n)) if include_nodes => vec![p, n],
                    (Some(p), _) => vec![p],
                    (None, Some(n)) => vec![n],
                    (None, None) => return Err(unknown_kind(raw)),
                }
            }
        };
        for kind in found {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    Ok(kinds)
}

fn unknown_kind(name: &str) -> String {
    let names = |subject| {
        TransitionKind::ALL
            .iter()
            .filter(|k| k.subject() == subject)
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "unknown transition kind {name:?}; pod kinds: {}; node kinds: {} (prefix node: or pod: \
         to choose, e.g. node:ready)",
        names(Subject::Pod),
        names(Subject::Node)
    )
}

pub const TRANSITION_FIELDS: &[&str] = &[
    "subject",
    "uid",
    "namespace",
    "pod",
    "node",
    "kind",
    "at",
    "at_ms",
    "observed_at",
    "observed_at_ms",
    "phase_before",
    "phase_after",
    "container",
    "reason",
    "exit_code",
    "restart_count",
    "message",
    "resource_version",
    "inferred",
];

const INFERRED_NOTE: &str =
    "* inferred: reconstructed from status timestamps after a watch gap or restart, not seen live";

fn opt(value: &Option<impl ToString>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

impl Record for TransitionRecord {
    const FIELDS: &'static [&'static str] = TRANSITION_FIELDS;
    const TABLE_HEADERS: &'static [&'static str] = &[
        "AT",
        "OBJECT",
        "KIND",
        "PHASE",
        "NODE",
        "CONTAINER",
        "REASON",
        "EXIT",
    ];

    fn table_cells(&self) -> Vec<String> {
        vec![
            format_time_short(self.at_ms),
            self.subject_cell(),
            self.kind_cell(),
            self.phase_cell(),
            opt(&self.node),
            opt(&self.container),
            opt(&self.reason),
            opt(&self.exit_code),
        ]
    }

    fn table_footnote(&self) -> Option<&'static str> {
        self.inferred.then_some(INFERRED_NOTE)
    }

    fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }
}

/// A transition as a line of one pod's history: the same fields, a table without the pod's
/// name (the heading says it) and with the message.
#[derive(Serialize)]
#[serde(transparent)]
pub struct HistoryLine<'a>(pub &'a TransitionRecord);

/// Table messages are cut here; JSON and CSV carry the whole (already truncated) message.
const TABLE_MESSAGE_CHARS: usize = 80;

impl Record for HistoryLine<'_> {
    const FIELDS: &'static [&'static str] = TRANSITION_FIELDS;
    const TABLE_HEADERS: &'static [&'static str] = &[
        "AT",
        "KIND",
        "PHASE",
        "NODE",
        "CONTAINER",
        "REASON",
        "EXIT",
        "RESTARTS",
        "MESSAGE",
    ];

    fn table_cells(&self) -> Vec<String> {
        let t = self.0;
        let mut message = t
            .message
            .clone()
            .unwrap_or_default()
            .replace(['\n', '\r'], " ");
        if message.chars().count() > TABLE_MESSAGE_CHARS {
            message = message
                .chars()
                .take(TABLE_MESSAGE_CHARS - 3)
                .collect::<String>()
                + "...";
        }
        vec![
            format_time_short(t.at_ms),
            t.kind_cell(),
            t.phase_cell(),
            opt(&t.node),
            opt(&t.container),
            opt(&t.reason),
            opt(&t.exit_code),
            opt(&t.restart_count),
            message,
        ]
    }

    fn table_footnote(&self) -> Option<&'static str> {
        self.0.table_footnote()
    }

    fn cluster(&self) -> Option<&str> {
        self.0.cluster.as_deref()
    }
}

/// Reads the transitions the filter selects, in `(at_ms, id)` order, and hands each to `each`
/// as it is read (nothing is collected), all from one snapshot. Returns the number of rows
/// handed over.
pub fn for_each_transition(
    reader: &dyn HistoryReader,
    filter: &TransitionFilter,
    each: impl FnMut(TransitionRecord) -> Result<(), QueryError>,
) -> Result<u64, QueryError> {
    let mut read = reader.snapshot()?;
    handing_over(each, |each| read.transitions(filter, each))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::format_time_ms;

    #[test]
    fn kinds_resolve_shared_names_by_subject() {
        let k = |names: &[&str], nodes| {
            parse_kinds(
                &names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                nodes,
            )
        };
        assert_eq!(k(&["ready"], false).unwrap(), vec![TransitionKind::Ready]);
        assert_eq!(
            k(&["ready"], true).unwrap(),
            vec![TransitionKind::Ready, TransitionKind::NodeReady]
        );
        assert_eq!(
            k(&["node:ready"], false).unwrap(),
            vec![TransitionKind::NodeReady]
        );
        assert_eq!(
            k(&["not_ready"], false).unwrap(),
            vec![TransitionKind::NodeNotReady]
        );
        assert_eq!(
            k(&["container_terminated,failed", "failed"], false).unwrap(),
            vec![TransitionKind::ContainerTerminated, TransitionKind::Failed]
        );
        let err = k(&["oomkilled"], false).unwrap_err();
        assert!(
            err.contains("\"oomkilled\"") && err.contains("container_terminated"),
            "{err}"
        );
        assert!(k(&["node:created"], false).is_err());
    }

    #[test]
    fn fields_match_the_serialized_row() {
        let row = TransitionRecord {
            cluster: None,
            subject: "pod",
            uid: "u".into(),
            namespace: Some("ns".into()),
            pod: Some("p".into()),
            node: None,
            kind: "created",
            at: format_time_ms(0),
            at_ms: 0,
            observed_at: format_time_ms(0),
            observed_at_ms: 0,
            phase_before: None,
            phase_after: Some("Pending"),
            container: None,
            reason: None,
            exit_code: None,
            restart_count: None,
            message: None,
            resource_version: None,
            inferred: true,
        };
        assert_eq!(crate::output::json_keys(&row), TRANSITION_FIELDS);
        assert_eq!(
            crate::output::json_keys(&HistoryLine(&row)),
            TRANSITION_FIELDS
        );
        assert_eq!(row.kind_cell(), "created*");
        assert_eq!(row.phase_cell(), "Pending");
        assert_eq!(row.subject_cell(), "ns/p");
    }
}
