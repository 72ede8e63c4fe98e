//! Deleting the history of pods and nodes that have ended: a pod deleted before a cutoff goes
//! with its transitions and resource history; a node deleted before a cutoff loses its
//! transitions and capacity history, and its row once no utilisation (raw or rolled up) refers
//! to it any more, because the rollups need its name for "how full was node X in March".
//!
//! Open pods and nodes (`deleted_at_ms IS NULL`) never match: the recorder reconciles its first
//! list after a restart against their rows, and their history is still being written.
//!
//! Each step is one short transaction of about `row_budget` rows, oldest first, so a recorder
//! writing the same file waits at most one step.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

/// Rows deleted, by table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneCounts {
    pub pods: u64,
    pub pod_transitions: u64,
    pub pod_resources: u64,
    pub nodes: u64,
    pub node_transitions: u64,
    pub node_capacity: u64,
}

impl PruneCounts {
    pub fn rows(&self) -> u64 {
        self.pods
            + self.pod_transitions
            + self.pod_resources
            + self.nodes
            + self.node_transitions
            + self.node_capacity
    }

    pub fn add(&mut self, other: &PruneCounts) {
        self.pods += other.pods;
        self.pod_transitions += other.pod_transitions;
        self.pod_resources += other.pod_resources;
        self.nodes += other.nodes;
        self.node_transitions += other.node_transitions;
        self.node_capacity += other.node_capacity;
    }
}

/// Pods examined per query; the row budget, not this, bounds a step.
const PODS_PER_QUERY: i64 = 256;

/// Deletes ended pods with `deleted_at_ms < cutoff_ms`, oldest first, until about `row_budget`
/// rows are gone; one transaction. Returns the counts and whether no such pod is left.
pub fn ended_pods_step(
    conn: &mut Connection,
    cutoff_ms: i64,
    row_budget: u64,
) -> rusqlite::Result<(PruneCounts, bool)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut counts = PruneCounts::default();
    let done = 'outer: loop {
        // `pods_by_deleted` (migration 0002) serves this in deletion order.
        let ids: Vec<i64> = tx
            .prepare_cached(
                "SELECT id FROM pods WHERE deleted_at_ms IS NOT NULL AND deleted_at_ms < ?1
                 ORDER BY deleted_at_ms LIMIT ?2",
            )?
            .query_map(params![cutoff_ms, PODS_PER_QUERY], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if ids.is_empty() {
            break true;
        }
        for id in ids {
            let remaining = row_budget.saturating_sub(counts.rows());
            if remaining == 0 {
                break 'outer false;
            }
            delete_pod(&tx, id, remaining, &mut counts)?;
        }
    };
    tx.commit()?;
    Ok((counts, done))
}

/// Deletes up to `limit` of the pod's history rows, and the pod itself once none is left (a
/// pod with a very long history takes several steps).
fn delete_pod(
    tx: &Transaction,
    pod_id: i64,
    limit: u64,
    counts: &mut PruneCounts,
) -> rusqlite::Result<()> {
    let limit = limit as i64;
    let transitions = tx
        .prepare_cached("DELETE FROM transitions WHERE id IN (SELECT id FROM transitions WHERE pod_id = ?1 LIMIT ?2)")?
        .execute(params![pod_id, limit])? as i64;
    counts.pod_transitions += transitions as u64;
    let resources = tx
        .prepare_cached(
            "DELETE FROM pod_resources WHERE pod_id = ?1
               AND at_ms IN (SELECT at_ms FROM pod_resources WHERE pod_id = ?1 LIMIT ?2)",
        )?
        .execute(params![pod_id, (limit - transitions).max(0)])? as i64;
    counts.pod_resources += resources as u64;
    let left: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM transitions WHERE pod_id = ?1)
                 OR EXISTS (SELECT 1 FROM pod_resources WHERE pod_id = ?1)",
        )?
        .query_row([pod_id], |r| r.get(0))?;
    if !left {
        // A deleted pod has no state left, unless an older recorder wrote one; never orphan it.
        tx.prepare_cached("DELETE FROM pod_state WHERE pod_id = ?1")?
            .execute([pod_id])?;
        let label_set: Option<Option<i64>> = tx
            .prepare_cached("DELETE FROM pods WHERE id = ?1 RETURNING label_set_id")?
            .query_row([pod_id], |r| r.get(0))
            .optional()?;
        if let Some(deleted) = label_set {
            counts.pods += 1;
            if let Some(set) = deleted {
                crate::store::labels::drop_if_unused(tx, set)?;
            }
        }
    }
    Ok(())
}

/// Deletes the history of nodes with `deleted_at_ms < cutoff_ms` until about `row_budget` rows
/// are gone; one transaction. Returns the counts and whether nothing of them is left to delete.
pub fn deleted_nodes_step(
    conn: &mut Connection,
    cutoff_ms: i64,
    row_budget: u64,
) -> rusqlite::Result<(PruneCounts, bool)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut counts = PruneCounts::default();
    // Nodes are few (thousands at most), so a scan of the table is cheap.
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM nodes WHERE deleted_at_ms IS NOT NULL AND deleted_at_ms < ?1
             ORDER BY deleted_at_ms",
        )?
        .query_map([cutoff_ms], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut done = true;
    for id in ids {
        let remaining = row_budget.saturating_sub(counts.rows()) as i64;
        if remaining == 0 {
            done = false;
            break;
        }
        let transitions = tx
            .prepare_cached(
                "DELETE FROM transitions WHERE id IN
                     (SELECT id FROM transitions WHERE pod_id IS NULL AND node_id = ?1 LIMIT ?2)",
            )?
            .execute(params![id, remaining])? as i64;
        let capacity = tx
            .prepare_cached(
                "DELETE FROM node_capacity WHERE node_id = ?1
                   AND at_ms IN (SELECT at_ms FROM node_capacity WHERE node_id = ?1 LIMIT ?2)",
            )?
            .execute(params![id, (remaining - transitions).max(0)])? as i64;
        counts.node_transitions += transitions as u64;
        counts.node_capacity += capacity as u64;
        if transitions + capacity >= remaining {
            done = false; // this node may have more
        }
        // The row goes only when nothing refers to it: rollups of a deleted node outlive its
        // transitions (--rollup-age is longer than --max-age) and need its name.
        counts.nodes += tx
            .prepare_cached(
                "DELETE FROM nodes WHERE id = ?1
                   AND NOT EXISTS (SELECT 1 FROM transitions WHERE pod_id IS NULL AND node_id = ?1)
                   AND NOT EXISTS (SELECT 1 FROM node_capacity WHERE node_id = ?1)
                   AND NOT EXISTS (SELECT 1 FROM node_usage WHERE node_id = ?1)
                   AND NOT EXISTS (SELECT 1 FROM node_usage_rollup WHERE node_id = ?1)",
            )?
            .execute([id])? as u64;
    }
    tx.commit()?;
    Ok((counts, done))
}

/// The deletion time of the oldest ended pod, if any (one index seek).
pub fn oldest_ended_pod_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT min(deleted_at_ms) FROM pods WHERE deleted_at_ms IS NOT NULL")?
        .query_row([], |r| r.get(0))
}

/// The deletion time of the oldest deleted node that still has transitions or capacity rows.
pub fn oldest_deleted_node_with_history_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT deleted_at_ms FROM nodes n
         WHERE deleted_at_ms IS NOT NULL
           AND (EXISTS (SELECT 1 FROM transitions t WHERE t.pod_id IS NULL AND t.node_id = n.id)
                OR EXISTS (SELECT 1 FROM node_capacity c WHERE c.node_id = n.id))
         ORDER BY deleted_at_ms LIMIT 1",
    )?
    .query_row([], |r| r.get(0))
    .optional()
}
