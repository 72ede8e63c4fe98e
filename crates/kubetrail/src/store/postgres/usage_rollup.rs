//! Retention of measured usage in PostgreSQL, with the same results as SQLite's
//! (`store::sqlite::usage_rollup`): the oldest complete raw hour of this cluster rolled up per
//! container and node into exact hourly rows, rollups past `--rollup-age` removed, and the
//! rollups read back.

use postgres::{Client, Transaction};

use crate::model::rollup::{ROLLUP_BUCKET_MS as HOUR, floor_to_bucket};
use crate::model::usage::{ContainerHour, Hourly, NodeHour, UsageRollupProgress};

struct Kind {
    raw: &'static str,
    hourly: &'static str,
    key: &'static str,
    /// Joins the raw table (alias `r`) to this cluster's keys.
    scope: &'static str,
}

const CONTAINERS: Kind = Kind {
    raw: "container_usage",
    hourly: "container_usage_hourly",
    key: "container_id",
    scope: "JOIN usage_containers k ON k.id = r.container_id WHERE k.cluster_id = $1",
};
const NODES: Kind = Kind {
    raw: "node_usage_samples",
    hourly: "node_usage_samples_hourly",
    key: "node_id",
    scope: "JOIN nodes k ON k.id = r.node_id WHERE k.cluster_id = $1",
};

pub fn roll_up_step(
    client: &mut Client,
    cluster: i32,
    horizon_ms: i64,
    budget: u64,
) -> Result<UsageRollupProgress, postgres::Error> {
    let mut tx = client.transaction()?;
    let mut progress = UsageRollupProgress::default();
    for kind in [&CONTAINERS, &NODES] {
        roll_up_kind(&mut tx, kind, cluster, horizon_ms, budget, &mut progress)?;
        if progress.samples_rolled_up >= budget {
            tx.commit()?;
            return Ok(progress);
        }
    }
    tx.commit()?;
    progress.done = progress.samples_rolled_up == 0;
    Ok(progress)
}

fn roll_up_kind(
    tx: &mut Transaction,
    kind: &Kind,
    cluster: i32,
    horizon_ms: i64,
    budget: u64,
    progress: &mut UsageRollupProgress,
) -> Result<(), postgres::Error> {
    let first: Option<i64> = tx
        .query_one(
            &format!("SELECT min(r.at_ms) FROM {} r {}", kind.raw, kind.scope),
            &[&cluster],
        )?
        .get(0);
    let Some(first) = first else { return Ok(()) };
    let hour = floor_to_bucket(first);
    if hour + HOUR > horizon_ms {
        return Ok(());
    }
    let end = hour + HOUR;
    let ids: Vec<i64> = tx
        .query(
            &format!(
                "SELECT DISTINCT r.{key} FROM {raw} r {scope} AND r.at_ms >= $2 AND r.at_ms < $3
                 ORDER BY 1",
                key = kind.key,
                raw = kind.raw,
                scope = kind.scope
            ),
            &[&cluster, &hour, &end],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let read = tx.prepare(&format!(
        "SELECT cpu_millis, memory_bytes FROM {raw} WHERE {key} = $1 AND at_ms >= $2 AND at_ms < $3",
        raw = kind.raw,
        key = kind.key
    ))?;
    let delete = tx.prepare(&format!(
        "DELETE FROM {raw} WHERE {key} = $1 AND at_ms >= $2 AND at_ms < $3",
        raw = kind.raw,
        key = kind.key
    ))?;
    let insert = tx.prepare(&format!(
        "INSERT INTO {hourly} AS h ({key}, hour_ms, samples, cpu_min, cpu_max, cpu_sum, cpu_p95,
             memory_min, memory_max, memory_sum, memory_p95)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT ({key}, hour_ms) DO UPDATE SET samples = h.samples + excluded.samples,
             cpu_min = least(h.cpu_min, excluded.cpu_min),
             cpu_max = greatest(h.cpu_max, excluded.cpu_max),
             cpu_sum = h.cpu_sum + excluded.cpu_sum,
             cpu_p95 = greatest(h.cpu_p95, excluded.cpu_p95),
             memory_min = least(h.memory_min, excluded.memory_min),
             memory_max = greatest(h.memory_max, excluded.memory_max),
             memory_sum = h.memory_sum + excluded.memory_sum,
             memory_p95 = greatest(h.memory_p95, excluded.memory_p95)",
        hourly = kind.hourly,
        key = kind.key
    ))?;
    for id in ids {
        let samples: Vec<(i64, i64)> = tx
            .query(&read, &[&id, &hour, &end])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let Some(h) = Hourly::of(&samples) else {
            continue;
        };
        tx.execute(
            &insert,
            &[
                &id,
                &hour,
                &h.samples,
                &h.cpu_min,
                &h.cpu_max,
                &h.cpu_sum,
                &h.cpu_p95,
                &h.memory_min,
                &h.memory_max,
                &h.memory_sum,
                &h.memory_p95,
            ],
        )?;
        progress.samples_rolled_up += tx.execute(&delete, &[&id, &hour, &end])?;
        progress.hours_written += 1;
        if progress.samples_rolled_up >= budget {
            break;
        }
    }
    Ok(())
}

pub fn expire_step(
    client: &mut Client,
    cluster: i32,
    cutoff_ms: i64,
    budget: u64,
) -> Result<(u64, bool), postgres::Error> {
    let mut tx = client.transaction()?;
    let mut removed = 0;
    for kind in [&CONTAINERS, &NODES] {
        let left = budget.max(1).saturating_sub(removed) as i64;
        if left == 0 {
            break;
        }
        let scope = kind.scope.replace("r.", "h.");
        removed += tx.execute(
            &format!(
                "DELETE FROM {hourly} WHERE ({key}, hour_ms) IN
                     (SELECT h.{key}, h.hour_ms FROM {hourly} h {scope}
                      AND h.hour_ms + $2 <= $3 LIMIT $4)",
                hourly = kind.hourly,
                key = kind.key
            ),
            &[&cluster, &HOUR, &cutoff_ms, &left],
        )?;
    }
    tx.commit()?;
    Ok((removed, removed < budget.max(1)))
}

pub(super) fn hourly(r: &postgres::Row, from: usize) -> Hourly {
    Hourly {
        samples: r.get(from),
        cpu_min: r.get(from + 1),
        cpu_max: r.get(from + 2),
        cpu_sum: r.get(from + 3),
        cpu_p95: r.get(from + 4),
        memory_min: r.get(from + 5),
        memory_max: r.get(from + 6),
        memory_sum: r.get(from + 7),
        memory_p95: r.get(from + 8),
    }
}

pub fn container_hours(
    c: &mut Client,
    clusters: &[i32],
    each: &mut dyn FnMut(ContainerHour),
) -> Result<(), postgres::Error> {
    for r in c.query(
        "SELECT p.namespace, p.name, c.name, h.hour_ms, h.samples, h.cpu_min, h.cpu_max,
             h.cpu_sum, h.cpu_p95, h.memory_min, h.memory_max, h.memory_sum, h.memory_p95
         FROM container_usage_hourly h JOIN usage_containers c ON c.id = h.container_id
         JOIN pods p ON p.id = c.pod_id WHERE p.cluster_id = ANY($1)
         ORDER BY p.id, c.name, h.hour_ms",
        &[&clusters],
    )? {
        each(ContainerHour {
            namespace: r.get(0),
            pod: r.get(1),
            container: r.get(2),
            hour_ms: r.get(3),
            hourly: hourly(&r, 4),
        });
    }
    Ok(())
}

/// The node rollups of these clusters (of the node named `node` only, when given) whose hours
/// start in `[since_ms, until_ms)`.
pub fn node_hours(
    c: &mut Client,
    clusters: &[i32],
    node: Option<&str>,
    since_ms: i64,
    until_ms: i64,
    each: &mut dyn FnMut(NodeHour),
) -> Result<(), postgres::Error> {
    // Each call prepares the statement anew, so PostgreSQL plans it with the parameters'
    // values (a custom plan), where `$4 IS NULL` folds to a constant.
    for r in c.query(
        "SELECT n.name, h.hour_ms, h.samples, h.cpu_min, h.cpu_max, h.cpu_sum, h.cpu_p95,
             h.memory_min, h.memory_max, h.memory_sum, h.memory_p95, n.uid
         FROM node_usage_samples_hourly h JOIN nodes n ON n.id = h.node_id
         WHERE n.cluster_id = ANY($1) AND h.hour_ms >= $2 AND h.hour_ms < $3
             AND ($4::text IS NULL OR n.name = $4)
         ORDER BY n.name, h.hour_ms",
        &[&clusters, &since_ms, &until_ms, &node],
    )? {
        each(NodeHour {
            node: r.get(0),
            node_uid: r.get(11),
            hour_ms: r.get(1),
            hourly: hourly(&r, 2),
        });
    }
    Ok(())
}
