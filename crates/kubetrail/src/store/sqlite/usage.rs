//! Measured usage in SQLite: writing a sample (pods and nodes by name resolved to the open
//! incarnation's key, containers to a compact integer key), reading container and node samples
//! for the reports, and removing a pruned pod's samples. See migration 0010 for the tables.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, params};

use crate::model::usage::{ContainerSample, NodeSample, UsageBatch, UsageFilter, UsageWriteStats};
use crate::store::copy::SampleCopy;

/// Writes one sample in the caller's transaction. Samples already stored (same key and
/// timestamp) change nothing; those of a pod or node without an open row are counted, not
/// written.
pub fn write_usage(tx: &Transaction, batch: &UsageBatch) -> rusqlite::Result<UsageWriteStats> {
    let mut stats = UsageWriteStats::default();
    if !batch.containers.is_empty() {
        // One scan of the open pods beats a lookup per container at 100k pods.
        let mut open: HashMap<(String, String), i64> = HashMap::new();
        let mut stmt =
            tx.prepare_cached("SELECT id, namespace, name FROM pods WHERE deleted_at_ms IS NULL")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            open.insert((r.get(1)?, r.get(2)?), r.get(0)?);
        }
        let mut find =
            tx.prepare_cached("SELECT id FROM usage_containers WHERE pod_id = ?1 AND name = ?2")?;
        let mut add = tx.prepare_cached(
            "INSERT INTO usage_containers (pod_id, name) VALUES (?1, ?2) RETURNING id",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO container_usage
                 (container_id, at_ms, window_ms, cpu_millis, memory_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for c in &batch.containers {
            let Some(pod_id) = open.get(&(c.namespace.clone(), c.pod.clone())) else {
                stats.unknown += 1;
                continue;
            };
            let id: i64 = match find.query_row(params![pod_id, c.container], |r| r.get(0)) {
                Ok(id) => id,
                Err(rusqlite::Error::QueryReturnedNoRows) => {
                    add.query_row(params![pod_id, c.container], |r| r.get(0))?
                }
                Err(e) => return Err(e),
            };
            match insert.execute(params![
                id,
                c.at_ms,
                c.window_ms,
                c.cpu_millis,
                c.memory_bytes
            ])? {
                0 => stats.duplicates += 1,
                _ => stats.containers_written += 1,
            }
        }
    }
    if !batch.nodes.is_empty() {
        let mut find = tx.prepare_cached(
            "SELECT id FROM nodes WHERE name = ?1 AND deleted_at_ms IS NULL
             ORDER BY created_at_ms DESC LIMIT 1",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO node_usage_samples
                 (node_id, at_ms, window_ms, cpu_millis, memory_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for n in &batch.nodes {
            let id: i64 = match find.query_row([&n.node], |r| r.get(0)) {
                Ok(id) => id,
                Err(rusqlite::Error::QueryReturnedNoRows) => {
                    stats.unknown += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match insert.execute(params![
                id,
                n.at_ms,
                n.window_ms,
                n.cpu_millis,
                n.memory_bytes
            ])? {
                0 => stats.duplicates += 1,
                _ => stats.nodes_written += 1,
            }
        }
    }
    Ok(stats)
}

/// The container samples `filter` selects, ordered by pod, container and time.
pub fn container_samples(
    conn: &Connection,
    filter: &UsageFilter,
    each: &mut dyn FnMut(ContainerSample),
) -> rusqlite::Result<()> {
    let mut sql = String::from(
        "SELECT p.uid, p.namespace, p.name, p.owner_kind, p.owner_name, p.node, c.name,
             u.at_ms, u.window_ms, u.cpu_millis, u.memory_bytes,
             p.cpu_request_millis, p.memory_request_bytes, p.cpu_limit_millis,
             p.memory_limit_bytes
         FROM container_usage u
         JOIN usage_containers c ON c.id = u.container_id
         JOIN pods p ON p.id = c.pod_id",
    );
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut param = |v: Value| {
        values.push(v);
        format!("?{}", values.len())
    };
    if let Some(ns) = &filter.namespace {
        conditions.push(format!("p.namespace = {}", param(Value::Text(ns.clone()))));
    }
    if let Some(pod) = &filter.pod {
        conditions.push(format!("p.name = {}", param(Value::Text(pod.clone()))));
    }
    if let Some(since) = filter.since_ms {
        conditions.push(format!("u.at_ms >= {}", param(Value::Integer(since))));
    }
    if let Some(until) = filter.until_ms {
        conditions.push(format!("u.at_ms < {}", param(Value::Integer(until))));
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY p.id, c.name, u.at_ms");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    while let Some(r) = rows.next()? {
        each(ContainerSample {
            pod_uid: r.get(0)?,
            namespace: r.get(1)?,
            pod: r.get(2)?,
            owner_kind: r.get(3)?,
            owner_name: r.get(4)?,
            node: r.get(5)?,
            container: r.get(6)?,
            at_ms: r.get(7)?,
            window_ms: r.get(8)?,
            cpu_millis: r.get(9)?,
            memory_bytes: r.get(10)?,
            pod_cpu_request_millis: r.get(11)?,
            pod_memory_request_bytes: r.get(12)?,
            pod_cpu_limit_millis: r.get(13)?,
            pod_memory_limit_bytes: r.get(14)?,
        });
    }
    Ok(())
}

/// The node samples in `[since_ms, until_ms)`, by node name then time.
pub fn node_samples(
    conn: &Connection,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    each: &mut dyn FnMut(NodeSample),
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.name, s.at_ms, s.window_ms, s.cpu_millis, s.memory_bytes, n.uid
         FROM node_usage_samples s JOIN nodes n ON n.id = s.node_id
         WHERE s.at_ms >= ?1 AND s.at_ms < ?2
         ORDER BY n.name, n.created_at_ms, s.at_ms",
    )?;
    let mut rows = stmt.query(params![
        since_ms.unwrap_or(i64::MIN),
        until_ms.unwrap_or(i64::MAX)
    ])?;
    while let Some(r) = rows.next()? {
        each(NodeSample {
            node: r.get(0)?,
            at_ms: r.get(1)?,
            window_ms: r.get(2)?,
            cpu_millis: r.get(3)?,
            memory_bytes: r.get(4)?,
            node_uid: r.get(5)?,
        });
    }
    Ok(())
}

/// Removes a pruned pod's samples and container keys, in the caller's transaction; returns
/// how many samples.
pub fn delete_pod_usage(conn: &Connection, pod_id: i64) -> rusqlite::Result<u64> {
    let samples = conn
        .prepare_cached(
            "DELETE FROM container_usage WHERE container_id IN
                 (SELECT id FROM usage_containers WHERE pod_id = ?1)",
        )?
        .execute([pod_id])? as u64;
    conn.prepare_cached(
        "DELETE FROM container_usage_hourly WHERE container_id IN
             (SELECT id FROM usage_containers WHERE pod_id = ?1)",
    )?
    .execute([pod_id])?;
    conn.prepare_cached("DELETE FROM usage_containers WHERE pod_id = ?1")?
        .execute([pod_id])?;
    Ok(samples)
}

/// Removes a pruned node's samples, in the caller's transaction.
pub fn delete_node_usage(conn: &Connection, node_id: i64) -> rusqlite::Result<u64> {
    conn.prepare_cached("DELETE FROM node_usage_samples_hourly WHERE node_id = ?1")?
        .execute([node_id])?;
    Ok(conn
        .prepare_cached("DELETE FROM node_usage_samples WHERE node_id = ?1")?
        .execute([node_id])? as u64)
}

/// Every container sample by its pod's uid and container name, for `kubetrail copy`.
pub const EXPORT_CONTAINER_SAMPLES: &str = "SELECT p.uid, c.name, u.at_ms, u.window_ms,
        u.cpu_millis, u.memory_bytes
    FROM container_usage u JOIN usage_containers c ON c.id = u.container_id
    JOIN pods p ON p.id = c.pod_id ORDER BY u.container_id, u.at_ms";

/// Every node sample by its node's uid (and no container), for `kubetrail copy`.
pub const EXPORT_NODE_SAMPLES: &str = "SELECT n.uid, NULL, s.at_ms, s.window_ms, s.cpu_millis,
        s.memory_bytes
    FROM node_usage_samples s JOIN nodes n ON n.id = s.node_id ORDER BY s.node_id, s.at_ms";

pub fn sample_row(r: &rusqlite::Row) -> rusqlite::Result<SampleCopy> {
    Ok(SampleCopy {
        uid: r.get(0)?,
        container: r.get(1)?,
        at_ms: r.get(2)?,
        window_ms: r.get(3)?,
        cpu_millis: r.get(4)?,
        memory_bytes: r.get(5)?,
    })
}
