//! Measured usage in SQLite: writing a sample (pods and nodes by name resolved to the open
//! incarnation's key, containers to a compact integer key), reading container and node samples
//! and the containers' rollups over a window for the reports, and removing a pruned pod's
//! samples. See migration 0010 for the tables.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, params};

use crate::model::Effective;
use crate::model::usage::{
    ContainerRollup, ContainerSample, NodeSample, UsageBatch, UsageFilter, UsageSubject,
    UsageWriteStats, resource_columns, resources_of_columns,
};
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
        let mut find = tx.prepare_cached(
            "SELECT id, cpu_request_millis, memory_request_bytes, cpu_limit_millis,
                 memory_limit_bytes
             FROM usage_containers WHERE pod_id = ?1 AND name = ?2",
        )?;
        let mut add = tx.prepare_cached(
            "INSERT INTO usage_containers (pod_id, name, cpu_request_millis,
                 memory_request_bytes, cpu_limit_millis, memory_limit_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?;
        let mut resize = tx.prepare_cached(
            "UPDATE usage_containers SET cpu_request_millis = ?2, memory_request_bytes = ?3,
                 cpu_limit_millis = ?4, memory_limit_bytes = ?5
             WHERE id = ?1",
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
            let [cpu_req, mem_req, cpu_lim, mem_lim] = resource_columns(c.resources);
            let found = find.query_row(params![pod_id, c.container], |r| {
                Ok((r.get::<_, i64>(0)?, resources_at(r, 1)?))
            });
            let id: i64 = match found {
                Ok((id, stored)) => {
                    // An in-place resize: the key keeps the latest.
                    if c.resources.is_some() && c.resources != stored {
                        resize.execute(params![id, cpu_req, mem_req, cpu_lim, mem_lim])?;
                    }
                    id
                }
                Err(rusqlite::Error::QueryReturnedNoRows) => add.query_row(
                    params![pod_id, c.container, cpu_req, mem_req, cpu_lim, mem_lim],
                    |r| r.get(0),
                )?,
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

/// The four resource columns from `first` on; None if they are NULL (an older key).
pub(super) fn resources_at(r: &rusqlite::Row, first: usize) -> rusqlite::Result<Option<Effective>> {
    let get = |i: usize| r.get::<_, Option<i64>>(first + i);
    Ok(resources_of_columns([get(0)?, get(1)?, get(2)?, get(3)?]))
}

/// What every container row of a usage report carries: the pod's identity, owner and
/// requests, and the container's own (columns 0 to 14, read by [`subject`]).
const SUBJECT_COLUMNS: &str = "p.uid, p.namespace, p.name, p.owner_kind, p.owner_name, p.node,
    c.name, p.cpu_request_millis, p.memory_request_bytes, p.cpu_limit_millis,
    p.memory_limit_bytes, c.cpu_request_millis, c.memory_request_bytes, c.cpu_limit_millis,
    c.memory_limit_bytes";

/// The first column after [`SUBJECT_COLUMNS`].
const AFTER_SUBJECT: usize = 15;

fn subject(r: &rusqlite::Row) -> rusqlite::Result<UsageSubject> {
    Ok(UsageSubject {
        pod_uid: r.get(0)?,
        namespace: r.get(1)?,
        pod: r.get(2)?,
        owner_kind: r.get(3)?,
        owner_name: r.get(4)?,
        node: r.get(5)?,
        container: r.get(6)?,
        pod_cpu_request_millis: r.get(7)?,
        pod_memory_request_bytes: r.get(8)?,
        pod_cpu_limit_millis: r.get(9)?,
        pod_memory_limit_bytes: r.get(10)?,
        container_resources: resources_at(r, 11)?,
    })
}

/// The WHERE clause of `filter` (empty without conditions), `time` naming the time column.
fn where_clause(filter: &UsageFilter, time: &str) -> (String, Vec<Value>) {
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
        conditions.push(format!("{time} >= {}", param(Value::Integer(since))));
    }
    if let Some(until) = filter.until_ms {
        conditions.push(format!("{time} < {}", param(Value::Integer(until))));
    }
    if conditions.is_empty() {
        return (String::new(), values);
    }
    (format!(" WHERE {}", conditions.join(" AND ")), values)
}

/// The container samples `filter` selects, ordered by pod, container and time.
pub fn container_samples(
    conn: &Connection,
    filter: &UsageFilter,
    each: &mut dyn FnMut(ContainerSample),
) -> rusqlite::Result<()> {
    let (conditions, values) = where_clause(filter, "u.at_ms");
    let sql = format!(
        "SELECT {SUBJECT_COLUMNS}, u.at_ms, u.window_ms, u.cpu_millis, u.memory_bytes
         FROM container_usage u
         JOIN usage_containers c ON c.id = u.container_id
         JOIN pods p ON p.id = c.pod_id{conditions}
         ORDER BY p.id, c.name, u.at_ms"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    while let Some(r) = rows.next()? {
        each(ContainerSample {
            subject: subject(r)?,
            at_ms: r.get(AFTER_SUBJECT)?,
            window_ms: r.get(AFTER_SUBJECT + 1)?,
            cpu_millis: r.get(AFTER_SUBJECT + 2)?,
            memory_bytes: r.get(AFTER_SUBJECT + 3)?,
        });
    }
    Ok(())
}

/// Each container's rollups of the hours that start in `filter`'s window, merged in SQL as
/// [`Hourly::merge`] does (sums and counts added, the largest maximum and p95, the smallest
/// minimum): one row per container, however many hours, by pod and container.
pub fn container_rollups(
    conn: &Connection,
    filter: &UsageFilter,
    each: &mut dyn FnMut(ContainerRollup),
) -> rusqlite::Result<()> {
    let (conditions, values) = where_clause(filter, "h.hour_ms");
    let sql = format!(
        "SELECT {SUBJECT_COLUMNS}, sum(h.samples), min(h.cpu_min), max(h.cpu_max),
             sum(h.cpu_sum), max(h.cpu_p95), min(h.memory_min), max(h.memory_max),
             sum(h.memory_sum), max(h.memory_p95)
         FROM container_usage_hourly h
         JOIN usage_containers c ON c.id = h.container_id
         JOIN pods p ON p.id = c.pod_id{conditions}
         GROUP BY h.container_id
         ORDER BY p.id, c.name"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    while let Some(r) = rows.next()? {
        each(ContainerRollup {
            subject: subject(r)?,
            hourly: super::usage_rollup::hourly(r, AFTER_SUBJECT)?,
        });
    }
    Ok(())
}

/// The node samples (of the node named `node` only, when given) in `[since_ms, until_ms)`, by
/// node name then time.
pub fn node_samples(
    conn: &Connection,
    node: Option<&str>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    each: &mut dyn FnMut(NodeSample),
) -> rusqlite::Result<()> {
    // Two statements rather than `?3 IS NULL OR ...`, which would keep the planner from
    // going through the node's name.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT n.name, s.at_ms, s.window_ms, s.cpu_millis, s.memory_bytes, n.uid
         FROM node_usage_samples s JOIN nodes n ON n.id = s.node_id
         WHERE s.at_ms >= ?1 AND s.at_ms < ?2{}
         ORDER BY n.name, n.created_at_ms, s.at_ms",
        if node.is_some() {
            " AND n.name = ?3"
        } else {
            ""
        }
    ))?;
    let (since, until) = (since_ms.unwrap_or(i64::MIN), until_ms.unwrap_or(i64::MAX));
    let mut rows = match node {
        Some(name) => stmt.query(params![since, until, name])?,
        None => stmt.query(params![since, until])?,
    };
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
        u.cpu_millis, u.memory_bytes, c.cpu_request_millis, c.memory_request_bytes,
        c.cpu_limit_millis, c.memory_limit_bytes
    FROM container_usage u JOIN usage_containers c ON c.id = u.container_id
    JOIN pods p ON p.id = c.pod_id ORDER BY u.container_id, u.at_ms";

/// Every node sample by its node's uid (and no container), for `kubetrail copy`.
pub const EXPORT_NODE_SAMPLES: &str = "SELECT n.uid, NULL, s.at_ms, s.window_ms, s.cpu_millis,
        s.memory_bytes, NULL, NULL, NULL, NULL
    FROM node_usage_samples s JOIN nodes n ON n.id = s.node_id ORDER BY s.node_id, s.at_ms";

pub fn sample_row(r: &rusqlite::Row) -> rusqlite::Result<SampleCopy> {
    Ok(SampleCopy {
        uid: r.get(0)?,
        container: r.get(1)?,
        at_ms: r.get(2)?,
        window_ms: r.get(3)?,
        cpu_millis: r.get(4)?,
        memory_bytes: r.get(5)?,
        resources: resources_at(r, 6)?,
    })
}
