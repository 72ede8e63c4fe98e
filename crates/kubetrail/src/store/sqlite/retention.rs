//! Retention's statements in SQLite: deleting ended pods and deleted nodes in bounded steps,
//! and where the parts of the history begin (for the size rule). Which rows go, and in what
//! order, is retention's rule (`retention::prune`, `retention::size`); rolling up is in
//! [`super::rollup`].
//!
//! Open pods and nodes (`deleted_at_ms IS NULL`) never match: the recorder reconciles its first
//! list after a restart against their rows, and their history is still being written.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::store::api::Bounds;
use crate::store::plan::PruneCounts;

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
        // Its measured usage goes with it (samples are bounded by --usage-interval and its life).
        super::usage::delete_pod_usage(tx, pod_id)?;
        let label_set: Option<Option<i64>> = tx
            .prepare_cached("DELETE FROM pods WHERE id = ?1 RETURNING label_set_id")?
            .query_row([pod_id], |r| r.get(0))
            .optional()?;
        if let Some(deleted) = label_set {
            counts.pods += 1;
            if let Some(set) = deleted {
                super::labels::drop_if_unused(tx, set)?;
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
        super::usage::delete_node_usage(&tx, id)?;
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

/// Where the parts of the history begin and end, for the size rule.
pub fn bounds(conn: &Connection) -> rusqlite::Result<Bounds> {
    // min over an index: one seek.
    let raw_from_ms: Option<i64> = conn
        .prepare_cached("SELECT min(at_ms) FROM node_usage")?
        .query_row([], |r| r.get(0))?;
    Ok(Bounds {
        raw_from_ms,
        oldest_rollup_ms: super::rollup::oldest_rollup_ms(conn)?,
        rolled_up_until_ms: super::rollup::rolled_up_until_ms(conn)?,
        oldest_ended_pod_ms: oldest_ended_pod_ms(conn)?,
        oldest_deleted_node_with_history_ms: oldest_deleted_node_with_history_ms(conn)?,
    })
}

/// The time of the raw usage row `offset` rows after the oldest.
pub fn nth_raw_usage_ms(conn: &Connection, offset: u64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT at_ms FROM node_usage ORDER BY at_ms LIMIT 1 OFFSET ?1")?
        .query_row([offset as i64], |r| r.get(0))
        .optional()
}
