//! Retention of measured usage in SQLite: samples older than the horizon replaced by hourly
//! rollups ([`Hourly`], exact over the samples of one container or node and hour), rollups
//! older than `--rollup-age` removed, and the rollups read back. One bounded transaction per
//! step; each step re-reads where it is from the tables (the oldest raw hour left).

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::model::rollup::{ROLLUP_BUCKET_MS as HOUR, floor_to_bucket};
use crate::model::usage::{ContainerHour, Hourly, NodeHour, UsageRollupProgress};
use crate::store::copy::HourCopy;

/// The two kinds of samples: their raw table, rollup table and key column.
struct Kind {
    raw: &'static str,
    hourly: &'static str,
    key: &'static str,
}

const CONTAINERS: Kind = Kind {
    raw: "container_usage",
    hourly: "container_usage_hourly",
    key: "container_id",
};
const NODES: Kind = Kind {
    raw: "node_usage_samples",
    hourly: "node_usage_samples_hourly",
    key: "node_id",
};

/// Rolls up about `budget` raw samples of the oldest complete hour before `horizon_ms`.
pub fn roll_up_step(
    conn: &mut Connection,
    horizon_ms: i64,
    budget: u64,
) -> rusqlite::Result<UsageRollupProgress> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut progress = UsageRollupProgress::default();
    for kind in [&CONTAINERS, &NODES] {
        roll_up_kind(&tx, kind, horizon_ms, budget, &mut progress)?;
        if progress.samples_rolled_up >= budget {
            tx.commit()?;
            return Ok(progress);
        }
    }
    tx.commit()?;
    // Nothing (more) before the horizon in either table.
    progress.done = progress.samples_rolled_up == 0;
    Ok(progress)
}

fn roll_up_kind(
    tx: &Transaction,
    kind: &Kind,
    horizon_ms: i64,
    budget: u64,
    progress: &mut UsageRollupProgress,
) -> rusqlite::Result<()> {
    // Table names come from the constants above, never from input.
    let first: Option<i64> = tx
        .prepare_cached(&format!("SELECT min(at_ms) FROM {}", kind.raw))?
        .query_row([], |r| r.get(0))?;
    let Some(first) = first else { return Ok(()) };
    let hour = floor_to_bucket(first);
    if hour + HOUR > horizon_ms {
        return Ok(());
    }
    let mut keys = tx.prepare_cached(&format!(
        "SELECT DISTINCT {key} FROM {raw} WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY {key}",
        key = kind.key,
        raw = kind.raw
    ))?;
    let ids: Vec<i64> = keys
        .query_map(params![hour, hour + HOUR], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut read = tx.prepare_cached(&format!(
        "SELECT cpu_millis, memory_bytes FROM {raw} WHERE {key} = ?1 AND at_ms >= ?2 AND at_ms < ?3",
        key = kind.key,
        raw = kind.raw
    ))?;
    let mut delete = tx.prepare_cached(&format!(
        "DELETE FROM {raw} WHERE {key} = ?1 AND at_ms >= ?2 AND at_ms < ?3",
        key = kind.key,
        raw = kind.raw
    ))?;
    // A late sample of an hour already rolled up merges exactly into count, min, max and sum;
    // its p95 can then only be bounded from above (the larger of the two).
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO {hourly} ({key}, hour_ms, samples, cpu_min, cpu_max, cpu_sum, cpu_p95,
             memory_min, memory_max, memory_sum, memory_p95)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT ({key}, hour_ms) DO UPDATE SET samples = samples + excluded.samples,
             cpu_min = min(cpu_min, excluded.cpu_min), cpu_max = max(cpu_max, excluded.cpu_max),
             cpu_sum = cpu_sum + excluded.cpu_sum, cpu_p95 = max(cpu_p95, excluded.cpu_p95),
             memory_min = min(memory_min, excluded.memory_min),
             memory_max = max(memory_max, excluded.memory_max),
             memory_sum = memory_sum + excluded.memory_sum,
             memory_p95 = max(memory_p95, excluded.memory_p95)",
        hourly = kind.hourly,
        key = kind.key
    ))?;
    for id in ids {
        let samples: Vec<(i64, i64)> = read
            .query_map(params![id, hour, hour + HOUR], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(h) = Hourly::of(&samples) else {
            continue;
        };
        insert.execute(params![
            id,
            hour,
            h.samples,
            h.cpu_min,
            h.cpu_max,
            h.cpu_sum,
            h.cpu_p95,
            h.memory_min,
            h.memory_max,
            h.memory_sum,
            h.memory_p95
        ])?;
        progress.samples_rolled_up += delete.execute(params![id, hour, hour + HOUR])? as u64;
        progress.hours_written += 1;
        if progress.samples_rolled_up >= budget {
            break;
        }
    }
    Ok(())
}

/// Removes at most `budget` rollups of hours that end before `cutoff_ms`; (removed, done).
pub fn expire_step(
    conn: &mut Connection,
    cutoff_ms: i64,
    budget: u64,
) -> rusqlite::Result<(u64, bool)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut removed = 0;
    for kind in [&CONTAINERS, &NODES] {
        let left = budget.max(1).saturating_sub(removed) as i64;
        if left == 0 {
            break;
        }
        removed += tx
            .prepare_cached(&format!(
                "DELETE FROM {hourly} WHERE ({key}, hour_ms) IN
                     (SELECT {key}, hour_ms FROM {hourly} WHERE hour_ms + ?1 <= ?2 LIMIT ?3)",
                hourly = kind.hourly,
                key = kind.key
            ))?
            .execute(params![HOUR, cutoff_ms, left])? as u64;
    }
    tx.commit()?;
    Ok((removed, removed < budget.max(1)))
}

/// The oldest hour of measured rollups, for the size rule.
pub fn oldest_hour_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT min(h) FROM (SELECT min(hour_ms) AS h FROM container_usage_hourly
                             UNION ALL SELECT min(hour_ms) FROM node_usage_samples_hourly)",
        [],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}

pub(super) fn hourly(r: &rusqlite::Row, from: usize) -> rusqlite::Result<Hourly> {
    Ok(Hourly {
        samples: r.get(from)?,
        cpu_min: r.get(from + 1)?,
        cpu_max: r.get(from + 2)?,
        cpu_sum: r.get(from + 3)?,
        cpu_p95: r.get(from + 4)?,
        memory_min: r.get(from + 5)?,
        memory_max: r.get(from + 6)?,
        memory_sum: r.get(from + 7)?,
        memory_p95: r.get(from + 8)?,
    })
}

/// Every container rollup, by pod, container and hour.
pub fn container_hours(
    conn: &Connection,
    each: &mut dyn FnMut(ContainerHour),
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT p.namespace, p.name, c.name, h.hour_ms, h.samples, h.cpu_min, h.cpu_max,
             h.cpu_sum, h.cpu_p95, h.memory_min, h.memory_max, h.memory_sum, h.memory_p95
         FROM container_usage_hourly h JOIN usage_containers c ON c.id = h.container_id
         JOIN pods p ON p.id = c.pod_id ORDER BY p.id, c.name, h.hour_ms",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        each(ContainerHour {
            namespace: r.get(0)?,
            pod: r.get(1)?,
            container: r.get(2)?,
            hour_ms: r.get(3)?,
            hourly: hourly(r, 4)?,
        });
    }
    Ok(())
}

/// The node rollups (of the node named `node` only, when given) of the hours that start in
/// `[since_ms, until_ms)`, by node and hour.
pub fn node_hours(
    conn: &Connection,
    node: Option<&str>,
    since_ms: i64,
    until_ms: i64,
    each: &mut dyn FnMut(NodeHour),
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(&format!(
        "SELECT n.name, h.hour_ms, h.samples, h.cpu_min, h.cpu_max, h.cpu_sum, h.cpu_p95,
             h.memory_min, h.memory_max, h.memory_sum, h.memory_p95, n.uid
         FROM node_usage_samples_hourly h JOIN nodes n ON n.id = h.node_id
         WHERE h.hour_ms >= ?1 AND h.hour_ms < ?2{}
         ORDER BY n.name, h.hour_ms",
        if node.is_some() {
            " AND n.name = ?3"
        } else {
            ""
        }
    ))?;
    let mut rows = match node {
        Some(name) => stmt.query(params![since_ms, until_ms, name])?,
        None => stmt.query(params![since_ms, until_ms])?,
    };
    while let Some(r) = rows.next()? {
        each(NodeHour {
            node: r.get(0)?,
            node_uid: r.get(11)?,
            hour_ms: r.get(1)?,
            hourly: hourly(r, 2)?,
        });
    }
    Ok(())
}

/// Every container rollup by its pod's uid and container name, for `kubetrail copy`.
pub const EXPORT_CONTAINER_HOURS: &str = "SELECT p.uid, c.name, h.hour_ms, h.samples, h.cpu_min,
        h.cpu_max, h.cpu_sum, h.cpu_p95, h.memory_min, h.memory_max, h.memory_sum, h.memory_p95,
        c.cpu_request_millis, c.memory_request_bytes, c.cpu_limit_millis, c.memory_limit_bytes
    FROM container_usage_hourly h JOIN usage_containers c ON c.id = h.container_id
    JOIN pods p ON p.id = c.pod_id ORDER BY h.container_id, h.hour_ms";

/// Every node rollup by its node's uid, for `kubetrail copy`.
pub const EXPORT_NODE_HOURS: &str = "SELECT n.uid, NULL, h.hour_ms, h.samples, h.cpu_min,
        h.cpu_max, h.cpu_sum, h.cpu_p95, h.memory_min, h.memory_max, h.memory_sum, h.memory_p95,
        NULL, NULL, NULL, NULL
    FROM node_usage_samples_hourly h JOIN nodes n ON n.id = h.node_id
    ORDER BY h.node_id, h.hour_ms";

pub fn hour_row(r: &rusqlite::Row) -> rusqlite::Result<HourCopy> {
    Ok(HourCopy {
        uid: r.get(0)?,
        container: r.get(1)?,
        hour_ms: r.get(2)?,
        hourly: hourly(r, 3)?,
        resources: super::usage::resources_at(r, 12)?,
    })
}
