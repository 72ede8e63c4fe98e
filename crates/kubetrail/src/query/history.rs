//! `query history`: one pod's whole timeline.
//!
//! A pod is named by namespace and name, but a name is reused over time (StatefulSet pods,
//! recreated Jobs), so one name can mean several incarnations, each with its own uid. All of them
//! are returned, oldest first, each with its transitions. A bare name (no namespace) is looked up
//! in every namespace; if it exists in more than one the answer is "ambiguous", not a guess.
//!
//! Each incarnation also carries the Kubernetes Events about it (by its uid), which the table
//! merges into the timeline as `event:REASON` lines; JSON keeps them in their own array.

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::error::QueryError;
use crate::model::event::EventFilter;
pub use crate::model::report::Incarnation;
use crate::model::report::TransitionFilter;
use crate::model::time::Window;
use crate::store::{HistoryReader, Snapshot};

/// How the user named the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodRef {
    Uid(String),
    /// `namespace: None` searches every namespace.
    Name {
        namespace: Option<String>,
        name: String,
    },
}

/// The incarnations of the pod that overlap the window, oldest first, with their transitions in
/// the window.
pub fn history(
    reader: &dyn HistoryReader,
    pod: &PodRef,
    window: Window,
) -> Result<Vec<Incarnation>, QueryError> {
    // One snapshot for the incarnations and their transitions.
    let mut read = reader.snapshot()?;
    let read = &mut *read;
    let mut found = find_incarnations(read, pod)?;
    found.retain(|i| window.overlaps(i.created_at_ms, i.deleted_at_ms));
    if found.is_empty() {
        return Err(QueryError::NotFound(format!(
            "{} has no history in the requested window",
            describe(pod)
        )));
    }
    // All incarnations' transitions in one read and their events in another: on a server
    // store every statement is a round trip, and a reused name can have many incarnations.
    // Rows find their incarnation by uid; where one uid names several incarnations (a history
    // copied into two clusters of one database), each is read on its own.
    let mut uids: HashMap<&str, usize> = HashMap::new();
    for inc in &found {
        *uids.entry(inc.uid.as_str()).or_default() += 1;
    }
    let groups: Vec<Vec<usize>> = if uids.values().all(|&n| n == 1) {
        vec![(0..found.len()).collect()]
    } else {
        (0..found.len()).map(|i| vec![i]).collect()
    };
    for group in groups {
        read_timelines(read, &mut found, &group, window)?;
    }
    Ok(found)
}

/// Reads the transitions and the events of the incarnations at `group` (distinct uids).
fn read_timelines(
    read: &mut dyn Snapshot,
    found: &mut [Incarnation],
    group: &[usize],
    window: Window,
) -> Result<(), QueryError> {
    let at: HashMap<String, usize> = group.iter().map(|&i| (found[i].uid.clone(), i)).collect();
    let filter = TransitionFilter {
        pod_ids: Some(group.iter().map(|&i| found[i].pod_id).collect()),
        window,
        ..Default::default()
    };
    read.transitions(&filter, &mut |t| {
        if let Some(&i) = at.get(&t.uid) {
            found[i].transitions.push(t);
        }
        ControlFlow::Continue(())
    })?;
    let events = EventFilter {
        regarding_uids: Some(at.keys().cloned().collect()),
        window,
        ..Default::default()
    };
    read.events(&events, &mut |e| {
        if let Some(&i) = e.regarding_uid.as_ref().and_then(|uid| at.get(uid)) {
            found[i].events.push(e);
        }
        ControlFlow::Continue(())
    })?;
    Ok(())
}

fn describe(pod: &PodRef) -> String {
    match pod {
        PodRef::Uid(uid) => format!("pod with uid {uid:?}"),
        PodRef::Name {
            namespace: Some(ns),
            name,
        } => format!("pod {ns}/{name}"),
        PodRef::Name {
            namespace: None,
            name,
        } => format!("pod {name:?}"),
    }
}

/// Every incarnation the reference names, or NotFound / Ambiguous.
fn find_incarnations(
    read: &mut dyn Snapshot,
    pod: &PodRef,
) -> Result<Vec<Incarnation>, QueryError> {
    match pod {
        PodRef::Uid(uid) => {
            let found = read.pod_by_uid(uid)?;
            found.map(|i| vec![i]).ok_or_else(|| {
                QueryError::NotFound(format!("no pod with uid {uid:?} in the database"))
            })
        }
        PodRef::Name {
            namespace: Some(ns),
            name,
        } => {
            let found = read.pods_named(ns, name)?;
            if found.is_empty() {
                let elsewhere = read.namespaces_with(name)?;
                let hint = if elsewhere.is_empty() {
                    "and in no other namespace".to_string()
                } else {
                    format!("it exists in namespaces {}", elsewhere.join(", "))
                };
                return Err(QueryError::NotFound(format!(
                    "no pod named {name:?} in namespace {ns:?} ({hint})"
                )));
            }
            Ok(found)
        }
        PodRef::Name {
            namespace: None,
            name,
        } => {
            let namespaces = read.namespaces_with(name)?;
            match namespaces.as_slice() {
                [] => Err(QueryError::NotFound(format!(
                    "no pod named {name:?} in any namespace (list pods with `kubetrail query pods`)"
                ))),
                [ns] => Ok(read.pods_named(ns, name)?),
                _ => Err(QueryError::Ambiguous {
                    name: name.clone(),
                    namespaces,
                }),
            }
        }
    }
}
