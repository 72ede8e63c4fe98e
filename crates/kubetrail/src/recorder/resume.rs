//! Picking up where a previous run stopped: the open pods and nodes in the database, with the
//! compact state last committed for each, become the cache's starting point.

use rusqlite::Connection;

use super::state::{NodeState, PodState};
use crate::model::TransitionKind;
use crate::model::selector::LabelSelector;

/// Open pods in the recorder's scope (its namespace and label selector: pods outside the scope
/// are not listed, so they must not be taken for deleted) and all open nodes.
/// Rows whose state does not parse are skipped with a warning rather than stopping the recorder.
pub fn load_open_state(
    conn: &Connection,
    namespace: Option<&str>,
    selector: Option<&LabelSelector>,
) -> rusqlite::Result<(Vec<PodState>, Vec<NodeState>)> {
    let mut pods = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT p.uid, s.state, l.labels, p.namespace, p.name
         FROM pods p JOIN pod_state s ON s.pod_id = p.id
         LEFT JOIN label_sets l ON l.id = p.label_set_id
         WHERE p.deleted_at_ms IS NULL AND (?1 IS NULL OR p.namespace = ?1)",
    )?;
    let mut rows = stmt.query([namespace])?;
    while let Some(row) = rows.next()? {
        let uid: String = row.get(0)?;
        let state: String = row.get(1)?;
        let labels: Option<String> = row.get(2)?;
        if selector.is_some_and(|s| !s.matches_json(labels.as_deref())) {
            continue;
        }
        match serde_json::from_str::<PodState>(&state) {
            Ok(mut pod) => {
                pod.uid = uid.as_str().into();
                pod.namespace = row.get::<_, String>(3)?.into();
                pod.name = row.get::<_, String>(4)?.into();
                pods.push(pod);
            }
            Err(err) => {
                tracing::warn!(%uid, %err, "skipping a pod whose stored state does not parse")
            }
        }
    }
    let mut nodes = Vec::new();
    let mut stmt = conn.prepare("SELECT uid, state FROM nodes WHERE deleted_at_ms IS NULL")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let uid: String = row.get(0)?;
        let state: String = row.get(1)?;
        match serde_json::from_str::<NodeState>(&state) {
            Ok(node) => nodes.push(node),
            Err(err) => {
                tracing::warn!(%uid, %err, "skipping a node whose stored state does not parse")
            }
        }
    }
    Ok((pods, nodes))
}

/// Open pods whose latest scope row is `left_scope`: a previous run saw them relabelled out of
/// its selector, so seeing them again is `entered_scope`, not a first sight.
pub fn load_left_scope(
    conn: &Connection,
    namespace: Option<&str>,
) -> rusqlite::Result<Vec<String>> {
    let left = TransitionKind::LeftScope.code();
    let entered = TransitionKind::EnteredScope.code();
    let mut stmt = conn.prepare(
        "SELECT p.uid FROM pods p JOIN transitions t ON t.pod_id = p.id
         WHERE p.deleted_at_ms IS NULL AND (?1 IS NULL OR p.namespace = ?1)
           AND t.kind IN (?2, ?3)
         GROUP BY p.id
         HAVING max(CASE WHEN t.kind = ?2 THEN t.id END) > coalesce(max(CASE WHEN t.kind = ?3 THEN t.id END), 0)",
    )?;
    let rows = stmt.query_map(rusqlite::params![namespace, left, entered], |r| r.get(0))?;
    rows.collect()
}
