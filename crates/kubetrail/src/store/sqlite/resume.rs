//! What a resuming recorder reads back: the open pods and nodes with their last committed
//! compact state, and the pods a previous run saw leave its scope.

use rusqlite::Connection;

use crate::model::{Effective, Phase, Resources, TransitionKind};
use crate::store::api::{OpenNode, OpenPod};

/// Open pods (in `namespace`, or all) that have a compact state.
pub fn open_pods(
    conn: &Connection,
    namespace: Option<&str>,
    each: &mut dyn FnMut(OpenPod),
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT p.uid, s.state, l.labels, p.namespace, p.name, p.node, p.owner_kind,
             p.owner_name, p.created_at_ms, p.finished_at_ms, p.phase, p.cpu_request_millis,
             p.memory_request_bytes, p.cpu_limit_millis, p.memory_limit_bytes
         FROM pods p JOIN pod_state s ON s.pod_id = p.id
         LEFT JOIN label_sets l ON l.id = p.label_set_id
         WHERE p.deleted_at_ms IS NULL AND (?1 IS NULL OR p.namespace = ?1)",
    )?;
    let mut rows = stmt.query([namespace])?;
    while let Some(row) = rows.next()? {
        each(OpenPod {
            uid: row.get(0)?,
            state: row.get(1)?,
            labels_json: row.get(2)?,
            namespace: row.get(3)?,
            name: row.get(4)?,
            node: row.get(5)?,
            owner_kind: row.get(6)?,
            owner_name: row.get(7)?,
            created_at_ms: row.get(8)?,
            finished_at_ms: row.get(9)?,
            phase: Phase::from_code(row.get(10)?),
            resources: Effective {
                requests: Resources::new(row.get(11)?, row.get(12)?),
                limits: Resources::new(row.get(13)?, row.get(14)?),
            },
        });
    }
    Ok(())
}

/// Every open node with its compact state.
pub fn open_nodes(conn: &Connection, each: &mut dyn FnMut(OpenNode)) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT uid, state FROM nodes WHERE deleted_at_ms IS NULL")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        each(OpenNode {
            uid: row.get(0)?,
            state_json: row.get(1)?,
        });
    }
    Ok(())
}

/// Open pods whose latest scope row is `left_scope`.
pub fn pods_left_scope(
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
