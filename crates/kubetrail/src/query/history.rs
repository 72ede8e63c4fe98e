//! `query history`: one pod's whole timeline.
//!
//! A pod is named by namespace and name, but a name is reused over time (StatefulSet pods,
//! recreated Jobs), so one name can mean several incarnations, each with its own uid. All of them
//! are returned, oldest first, each with its transitions. A bare name (no namespace) is looked up
//! in every namespace; if it exists in more than one the answer is "ambiguous", not a guess.
//!
//! Each incarnation also carries the Kubernetes Events about it (by its uid), which the table
//! merges into the timeline as `event:REASON` lines; JSON keeps them in their own array.

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
    for inc in &mut found {
        let filter = TransitionFilter {
            pod_id: Some(inc.pod_id),
            window,
            ..Default::default()
        };
        read.transitions(&filter, &mut |t| {
            inc.transitions.push(t);
            ControlFlow::Continue(())
        })?;
        let events = EventFilter {
            regarding_uid: Some(inc.uid.clone()),
            window,
            ..Default::default()
        };
        read.events(&events, &mut |e| {
            inc.events.push(e);
            ControlFlow::Continue(())
        })?;
    }
    Ok(found)
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
