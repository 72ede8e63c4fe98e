//! The Kubernetes Warning Events a report draws: those about its pods (on their timelines) and
//! about its nodes (in a node's detail), read through `query::events` like `query events
//! --type Warning`, and the table of Warning reasons.
//!
//! Only Warnings: Normal events (Scheduled, Pulled, Started, ...) restate what the transitions
//! already show, and a busy cluster makes them by the million. A series is one row with its
//! count, drawn where it was last seen, as `query history` lists it.

use std::collections::HashMap;

use super::model::{WarningReason, Warnings};
use crate::model::event::{EventFilter, EventRecord, EventType};
use crate::model::time::Window;
use crate::query::QueryError;
use crate::query::events::for_each_event;
use crate::store::HistoryReader;

/// The most Warning rows a report holds; past it the newest are kept and a note says so.
pub const MAX_WARNINGS: usize = 50_000;

/// How many reasons the reasons table lists.
pub const REASON_ROWS: usize = 25;

/// What the warnings are matched against: the report's pods by uid and its nodes by name.
pub struct Subjects<'a> {
    /// Pod uid to the pod's index in the report.
    pub pods: &'a HashMap<&'a str, u32>,
    /// Node name to its index in `nodes.names`.
    pub nodes: &'a HashMap<&'a str, u32>,
}

/// Reads the Warning events seen in `window` about the report's pods and nodes.
/// `namespace` and `node` are the report's filters (events about other objects are read and
/// dropped, as the pods were).
pub fn read(
    reader: &dyn HistoryReader,
    window: Window,
    namespace: Option<&str>,
    node: Option<&str>,
    subjects: &Subjects<'_>,
    notes: &mut Vec<String>,
) -> Result<Warnings, QueryError> {
    let filter = EventFilter {
        event_type: Some(EventType::Warning),
        namespace: namespace.map(str::to_string),
        window,
        ..Default::default()
    };
    let mut rows: Vec<(Option<u32>, Option<u32>, EventRecord)> = Vec::new();
    let mut total = 0usize;
    for_each_event(reader, &filter, |e| {
        let about = match e.kind {
            "Pod" => e
                .regarding_uid
                .as_deref()
                .and_then(|uid| subjects.pods.get(uid))
                .map(|&p| (Some(p), None)),
            "Node" if node.is_none_or(|n| n == e.name) => subjects
                .nodes
                .get(e.name.as_str())
                .map(|&n| (None, Some(n))),
            _ => None,
        };
        if let Some((pod, node)) = about {
            total += 1;
            rows.push((pod, node, e));
            // Events arrive by last seen: dropping the oldest keeps the newest.
            if rows.len() >= 2 * MAX_WARNINGS {
                rows.drain(..rows.len() - MAX_WARNINGS);
            }
        }
        Ok(())
    })?;
    if rows.len() > MAX_WARNINGS {
        rows.drain(..rows.len() - MAX_WARNINGS);
    }
    if total > rows.len() {
        notes.push(format!(
            "{} of {total} Warning events are left out (a report holds the newest {MAX_WARNINGS}): \
             narrow it with -n, --owner, --node or a shorter --since",
            total - rows.len()
        ));
    }
    Ok(columns(rows))
}

fn columns(rows: Vec<(Option<u32>, Option<u32>, EventRecord)>) -> Warnings {
    let mut w = Warnings::default();
    for (pod, node, e) in rows {
        w.pod.push(pod);
        w.node.push(node);
        w.first_seen_ms.push(e.first_seen_ms);
        w.last_seen_ms.push(e.last_seen_ms);
        w.reason.push(e.reason);
        w.container.push(e.container);
        w.count.push(e.count);
        w.note.push(e.note);
        w.source.push(e.reporting_controller);
    }
    w
}

/// Warning reasons by how often they happened (a series counts its occurrences), most first,
/// at most [`REASON_ROWS`].
pub fn reasons(warnings: &Warnings) -> Vec<WarningReason> {
    let mut by_reason: HashMap<&str, WarningReason> = HashMap::new();
    for i in 0..warnings.len() {
        let reason = warnings.reason[i].as_deref().unwrap_or("");
        let row = by_reason.entry(reason).or_insert_with(|| WarningReason {
            reason: reason.to_string(),
            ..Default::default()
        });
        row.occurrences += warnings.count[i].max(1);
        if warnings.pod[i].is_some() {
            row.pods += 1;
        } else {
            row.nodes += 1;
        }
        row.last_seen_ms = row.last_seen_ms.max(warnings.last_seen_ms[i]);
    }
    let mut rows: Vec<WarningReason> = by_reason.into_values().collect();
    rows.sort_by(|a, b| {
        b.occurrences
            .cmp(&a.occurrences)
            .then_with(|| a.reason.cmp(&b.reason))
    });
    rows.truncate(REASON_ROWS);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(rows: &[(Option<u32>, &str, i64, i64)]) -> Warnings {
        let mut w = Warnings::default();
        for &(pod, reason, count, last) in rows {
            w.pod.push(pod);
            w.node.push(pod.is_none().then_some(0));
            w.first_seen_ms.push(last);
            w.last_seen_ms.push(last);
            w.reason.push(Some(reason.to_string()));
            w.container.push(None);
            w.count.push(count);
            w.note.push(None);
            w.source.push(None);
        }
        w
    }

    #[test]
    fn reasons_count_a_series_by_its_occurrences_and_split_pods_from_nodes() {
        let w = warnings(&[
            (Some(0), "BackOff", 40, 10),
            (Some(1), "BackOff", 2, 30),
            (Some(0), "Unhealthy", 41, 20),
            (None, "NodeNotReady", 1, 5),
        ]);
        let rows = reasons(&w);
        let got: Vec<(&str, i64, u32, u32, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.reason.as_str(),
                    r.occurrences,
                    r.pods,
                    r.nodes,
                    r.last_seen_ms,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("BackOff", 42, 2, 0, 30),
                ("Unhealthy", 41, 1, 0, 20),
                ("NodeNotReady", 1, 0, 1, 5),
            ]
        );
    }
}
