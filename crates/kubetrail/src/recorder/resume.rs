//! Picking up where a previous run stopped: the open pods and nodes in the store, with the
//! compact state last committed for each, become the cache's starting point.

use super::state::{NodeState, PodState};
use crate::model::selector::LabelSelector;
use crate::store::{Snapshot, StoreError};

/// Open pods in the recorder's scope (its namespace and label selector: pods outside the scope
/// are not listed, so they must not be taken for deleted) and all open nodes.
/// Rows whose state does not parse are skipped with a warning rather than stopping the recorder.
pub fn load_open_state(
    read: &mut dyn Snapshot,
    namespace: Option<&str>,
    selector: Option<&LabelSelector>,
) -> Result<(Vec<PodState>, Vec<NodeState>), StoreError> {
    let mut pods = Vec::new();
    read.open_pods(namespace, &mut |row| {
        if selector.is_some_and(|s| !s.matches_json(row.labels_json.as_deref())) {
            return;
        }
        match serde_json::from_str::<PodState>(&row.state_json) {
            Ok(mut pod) => {
                pod.uid = row.uid.as_str().into();
                pod.namespace = row.namespace.into();
                pod.name = row.name.into();
                pods.push(pod);
            }
            Err(err) => {
                let uid = row.uid;
                tracing::warn!(%uid, %err, "skipping a pod whose stored state does not parse")
            }
        }
    })?;
    let mut nodes = Vec::new();
    read.open_nodes(
        &mut |row| match serde_json::from_str::<NodeState>(&row.state_json) {
            Ok(node) => nodes.push(node),
            Err(err) => {
                let uid = row.uid;
                tracing::warn!(%uid, %err, "skipping a node whose stored state does not parse")
            }
        },
    )?;
    Ok((pods, nodes))
}

/// Open pods whose latest scope row is `left_scope`: a previous run saw them relabelled out of
/// its selector, so seeing them again is `entered_scope`, not a first sight.
pub fn load_left_scope(
    read: &mut dyn Snapshot,
    namespace: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    read.pods_left_scope(namespace)
}
