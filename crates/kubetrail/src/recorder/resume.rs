//! Picking up where a previous run stopped: the open pods and nodes in the store, with the
//! compact state last committed for each, become the cache's starting point.

use super::codec;
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
        match codec::decode_pod(&row.state) {
            Ok(mut pod) => {
                // What the stored state leaves out, from the pods row (see PodState).
                pod.uid = row.uid.as_str().into();
                pod.namespace = row.namespace.into();
                pod.name = row.name.into();
                pod.node = row.node.map(Into::into);
                pod.owner_kind = row.owner_kind.map(Into::into);
                pod.owner_name = row.owner_name.map(Into::into);
                pod.created_at_ms = row.created_at_ms;
                pod.finished_at_ms = row.finished_at_ms.into();
                pod.phase = row.phase;
                pod.resources = row.resources;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::cache::{node_row, pod_row};
    use crate::recorder::objects::{Node, Pod, tests::POD};
    use crate::store::{Batch, HistoryWriter, sqlite};

    /// A node as the recorder projects it, its creation time included.
    const NODE: &str = r#"{"metadata": {"name": "n1", "uid": "nu", "resourceVersion": "7",
         "creationTimestamp": "2026-11-29T01:00:00Z"},
       "spec": {"unschedulable": true},
       "status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
         "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
         "conditions": [{"type": "Ready", "status": "True",
           "lastTransitionTime": "2026-11-29T01:00:10Z"}]}}"#;

    /// Commits the POD fixture (with `stored` in place of its encoded state, if given) and a
    /// second pod whose stored state is `other`, then resumes from the file.
    fn resumed_with(stored: Option<&[u8]>, other: Option<&[u8]>) -> (PodState, Vec<PodState>) {
        let mut pod: Pod = serde_json::from_str(POD).unwrap();
        pod.state.finished_at_ms = Some(1_764_381_700_000).into();
        let mut row = pod_row(&pod.state, pod.labels_json.clone(), None);
        if let Some(stored) = stored {
            row.state = stored.to_vec();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut writer = sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let mut batch = Batch::default();
        if let Some(other) = other {
            let mut second = row.clone();
            second.uid = "second".into();
            second.name = "second".into();
            second.state = other.to_vec();
            batch.pods.push(second);
        }
        batch.pods.push(row);
        writer.commit(&batch, None).unwrap();
        let mut read = writer.read().unwrap();
        let (pods, _) = load_open_state(&mut *read, None, None).unwrap();
        (pod.state, pods)
    }

    fn resumed(state_json: Option<&str>) -> (PodState, Vec<PodState>) {
        resumed_with(state_json.map(str::as_bytes), None)
    }

    /// A stored state that does not decode (corrupt, or from a newer kubetrail) costs that
    /// pod its reconciliation, not the recorder its start: the other pods resume.
    #[test]
    fn a_state_that_does_not_decode_is_skipped_and_the_rest_resume() {
        for bad in [&[1u8, 0x80, 0x10, 0][..], &[9, 9], b"{not json"] {
            let (committed, pods) = resumed_with(None, Some(bad));
            assert_eq!(pods, vec![committed.clone()], "{bad:?}");
        }
    }

    /// The stored state leaves out what the pods row holds; resuming puts it back from the
    /// row, so the cache starts from exactly the state that was committed.
    #[test]
    fn a_resumed_pod_is_the_committed_state_with_the_rows_columns() {
        let (committed, pods) = resumed(None);
        assert_eq!(pods, vec![committed]);
    }

    /// A state stored before the row's fields were left out still carries them under its old
    /// keys; it resumes the same, from the columns.
    #[test]
    fn a_state_stored_with_the_rows_fields_resumes_the_same() {
        let (committed, _) = resumed(None);
        let mut old: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&committed).unwrap()).unwrap();
        let fields = serde_json::json!({"no": "elsewhere", "p": "Pending", "ca": 1,
            "e": {"requests": {"cpu_millis": 1, "memory_bytes": 1},
                  "limits": {"cpu_millis": 1, "memory_bytes": 1}},
            "ok": "Job", "on": "other", "fa": 2});
        old.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let (committed, pods) = resumed(Some(&old.to_string()));
        assert_eq!(pods, vec![committed]);
    }

    /// A node's stored state is the whole of it (nodes are few): it resumes as committed.
    #[test]
    fn a_resumed_node_is_the_committed_state() {
        let node: Node = serde_json::from_str(NODE).unwrap();
        assert!(node.state.created_at_ms > 0);
        let dir = tempfile::tempdir().unwrap();
        let mut writer = sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let mut batch = Batch::default();
        batch.nodes.push(node_row(&node.state, None));
        writer.commit(&batch, None).unwrap();
        let mut read = writer.read().unwrap();
        let (_, nodes) = load_open_state(&mut *read, None, None).unwrap();
        assert_eq!(nodes, vec![node.state]);
    }
}
