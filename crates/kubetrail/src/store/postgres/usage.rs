//! Measured usage in PostgreSQL, with the same results as SQLite's (`store::sqlite::usage`):
//! a sample's pods and nodes resolved to the cluster's open incarnations, containers to
//! integer keys, replays ignored; the samples and the containers' rollups over a window read back for the
//! reports. See migration 0005.

use std::collections::HashMap;

use postgres::{Client, Row, Transaction};

use super::reports::{Conditions, Params, stream};

use crate::model::Effective;
use crate::model::usage::{
    ContainerRollup, ContainerSample, NodeSample, UsageBatch, UsageFilter, UsageSubject,
    UsageWriteStats, resource_columns, resources_of_columns,
};

pub fn write_usage(
    tx: &mut Transaction,
    cluster: i32,
    batch: &UsageBatch,
) -> Result<UsageWriteStats, postgres::Error> {
    let mut stats = UsageWriteStats::default();
    if !batch.containers.is_empty() {
        let mut open: HashMap<(String, String), i64> = HashMap::new();
        for r in tx.query(
            "SELECT id, namespace, name FROM pods WHERE cluster_id = $1 AND deleted_at_ms IS NULL",
            &[&cluster],
        )? {
            open.insert((r.get(1), r.get(2)), r.get(0));
        }
        let keys = container_keys(tx, cluster, batch, &open, &mut stats)?;
        let (mut ids, mut ats, mut windows, mut cpus, mut mems) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (c, id) in batch.containers.iter().zip(keys) {
            let Some(id) = id else { continue };
            ids.push(id);
            ats.push(c.at_ms);
            windows.push(c.window_ms);
            cpus.push(c.cpu_millis);
            mems.push(c.memory_bytes);
        }
        let n = ids.len() as u64;
        let written = tx.execute(
            "INSERT INTO container_usage (container_id, at_ms, window_ms, cpu_millis, memory_bytes)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::bigint[])
             ON CONFLICT DO NOTHING",
            &[&ids, &ats, &windows, &cpus, &mems],
        )?;
        stats.containers_written += written;
        stats.duplicates += n - written;
    }
    if !batch.nodes.is_empty() {
        let mut open: HashMap<String, i64> = HashMap::new();
        for r in tx.query(
            "SELECT DISTINCT ON (name) id, name FROM nodes
             WHERE cluster_id = $1 AND deleted_at_ms IS NULL ORDER BY name, created_at_ms DESC",
            &[&cluster],
        )? {
            open.insert(r.get(1), r.get(0));
        }
        let (mut ids, mut ats, mut windows, mut cpus, mut mems) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for s in &batch.nodes {
            let Some(id) = open.get(&s.node) else {
                stats.unknown += 1;
                continue;
            };
            ids.push(*id);
            ats.push(s.at_ms);
            windows.push(s.window_ms);
            cpus.push(s.cpu_millis);
            mems.push(s.memory_bytes);
        }
        let n = ids.len() as u64;
        let written = tx.execute(
            "INSERT INTO node_usage_samples (node_id, at_ms, window_ms, cpu_millis, memory_bytes)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::bigint[])
             ON CONFLICT DO NOTHING",
            &[&ids, &ats, &windows, &cpus, &mems],
        )?;
        stats.nodes_written += written;
        stats.duplicates += n - written;
    }
    Ok(stats)
}

/// The four resource columns from `first` on; None if they are NULL (an older key).
/// The key of each of the batch's containers (None for a pod that is not open, counted in
/// `stats.unknown`), giving new containers a key and keeping a resized one's latest requests.
/// Three statements whatever the batch's size: the first sample after a list brings a key
/// for every container of the cluster, and one statement each made the writer, and the pods'
/// commits queued behind it, wait for 100k round trips.
fn container_keys(
    tx: &mut Transaction,
    cluster: i32,
    batch: &UsageBatch,
    open: &HashMap<(String, String), i64>,
    stats: &mut UsageWriteStats,
) -> Result<Vec<Option<i64>>, postgres::Error> {
    let pod_of: Vec<Option<i64>> = batch
        .containers
        .iter()
        .map(|c| open.get(&(c.namespace.clone(), c.pod.clone())).copied())
        .collect();
    stats.unknown += pod_of.iter().filter(|p| p.is_none()).count() as u64;
    let pods: Vec<i64> = open.values().copied().collect();
    let mut known: HashMap<(i64, String), (i64, Option<Effective>)> = HashMap::new();
    for r in tx.query(
        "SELECT id, pod_id, name, cpu_request_millis, memory_request_bytes,
             cpu_limit_millis, memory_limit_bytes
         FROM usage_containers WHERE pod_id = ANY($1)",
        &[&pods],
    )? {
        known.insert((r.get(1), r.get(2)), (r.get(0), resources_at(&r, 3)));
    }
    // What each key should hold: the last requests given for it in the batch (a sample
    // without requests leaves them as they are), in first-seen order.
    let mut wanted: Vec<((i64, &str), Option<Effective>)> = Vec::new();
    let mut at: HashMap<(i64, &str), usize> = HashMap::new();
    for (c, pod) in batch.containers.iter().zip(&pod_of) {
        let Some(pod) = *pod else { continue };
        let key = (pod, c.container.as_str());
        match at.get(&key) {
            Some(&i) if c.resources.is_some() => wanted[i].1 = c.resources,
            Some(_) => {}
            None => {
                at.insert(key, wanted.len());
                wanted.push((key, c.resources));
            }
        }
    }
    let mut new = Vec::new();
    let mut resized = Vec::new();
    for ((pod, name), resources) in wanted {
        match known.get(&(pod, name.to_string())) {
            None => new.push((pod, name, resources)),
            Some((id, stored)) if resources.is_some() && resources != *stored => {
                resized.push((*id, resources))
            }
            Some(_) => {}
        }
    }
    if !new.is_empty() {
        let pod: Vec<i64> = new.iter().map(|n| n.0).collect();
        let name: Vec<&str> = new.iter().map(|n| n.1).collect();
        let [cpu_req, mem_req, cpu_lim, mem_lim] = columns(new.iter().map(|n| n.2));
        for r in tx.query(
            "INSERT INTO usage_containers (cluster_id, pod_id, name, cpu_request_millis,
                 memory_request_bytes, cpu_limit_millis, memory_limit_bytes)
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
                                      $6::bigint[], $7::bigint[])
             RETURNING id, pod_id, name",
            &[
                &cluster, &pod, &name, &cpu_req, &mem_req, &cpu_lim, &mem_lim,
            ],
        )? {
            known.insert((r.get(1), r.get(2)), (r.get(0), None));
        }
    }
    if !resized.is_empty() {
        // An in-place resize: the key keeps the latest.
        let id: Vec<i64> = resized.iter().map(|r| r.0).collect();
        let [cpu_req, mem_req, cpu_lim, mem_lim] = columns(resized.iter().map(|r| r.1));
        tx.execute(
            "UPDATE usage_containers c SET cpu_request_millis = s.cr,
                 memory_request_bytes = s.mr, cpu_limit_millis = s.cl, memory_limit_bytes = s.ml
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
                 AS s (id, cr, mr, cl, ml)
             WHERE c.id = s.id",
            &[&id, &cpu_req, &mem_req, &cpu_lim, &mem_lim],
        )?;
    }
    Ok(batch
        .containers
        .iter()
        .zip(pod_of)
        .map(|(c, pod)| Some(known[&(pod?, c.container.clone())].0))
        .collect())
}

/// The four request and limit columns of these resources, as arrays.
fn columns(resources: impl Iterator<Item = Option<Effective>>) -> [Vec<Option<i64>>; 4] {
    let mut out: [Vec<Option<i64>>; 4] = Default::default();
    for r in resources {
        for (column, value) in out.iter_mut().zip(resource_columns(r)) {
            column.push(value);
        }
    }
    out
}

fn resources_at(r: &Row, first: usize) -> Option<Effective> {
    let get = |i: usize| r.get::<_, Option<i64>>(first + i);
    resources_of_columns([get(0), get(1), get(2), get(3)])
}

/// What every container row of a usage report carries (columns 0 to 14, read by
/// [`subject`]); the same columns as SQLite's.
const SUBJECT_COLUMNS: &str = "p.uid, p.namespace, p.name, p.owner_kind, p.owner_name, p.node,
    c.name, p.cpu_request_millis, p.memory_request_bytes, p.cpu_limit_millis,
    p.memory_limit_bytes, c.cpu_request_millis, c.memory_request_bytes, c.cpu_limit_millis,
    c.memory_limit_bytes";

/// The first column after [`SUBJECT_COLUMNS`].
const AFTER_SUBJECT: usize = 15;

fn subject(r: &Row) -> UsageSubject {
    UsageSubject {
        pod_uid: r.get(0),
        namespace: r.get(1),
        pod: r.get(2),
        owner_kind: r.get(3),
        owner_name: r.get(4),
        node: r.get(5),
        container: r.get(6),
        pod_cpu_request_millis: r.get(7),
        pod_memory_request_bytes: r.get(8),
        pod_cpu_limit_millis: r.get(9),
        pod_memory_limit_bytes: r.get(10),
        container_resources: resources_at(r, 11),
    }
}

/// The WHERE clause of `filter` (the clusters' first, `$1`), `time` naming the time column.
fn conditions(clusters: &[i32], filter: &UsageFilter, time: &str) -> (String, Params) {
    let mut w = Conditions::for_clusters("p", clusters);
    if let Some(ns) = &filter.namespace {
        let p = w.param(ns.clone());
        w.push(format!("p.namespace = {p}"));
    }
    if let Some(pod) = &filter.pod {
        let p = w.param(pod.clone());
        w.push(format!("p.name = {p}"));
    }
    if let Some(since) = filter.since_ms {
        let p = w.param(since);
        w.push(format!("{time} >= {p}"));
    }
    if let Some(until) = filter.until_ms {
        let p = w.param(until);
        w.push(format!("{time} < {p}"));
    }
    let mut sql = String::new();
    let params = w.finish(&mut sql);
    (sql, params)
}

/// The container samples `filter` selects, by pod, container and time, streamed.
pub fn container_samples(
    c: &mut Client,
    clusters: &[i32],
    filter: &UsageFilter,
    each: &mut dyn FnMut(ContainerSample),
) -> Result<(), postgres::Error> {
    let (conditions, params) = conditions(clusters, filter, "u.at_ms");
    let sql = format!(
        "SELECT {SUBJECT_COLUMNS}, u.at_ms, u.window_ms, u.cpu_millis, u.memory_bytes
         FROM container_usage u
         JOIN usage_containers c ON c.id = u.container_id
         JOIN pods p ON p.id = c.pod_id{conditions}
         ORDER BY p.id, c.name, u.at_ms"
    );
    stream(c, &sql, &params, |r| {
        each(ContainerSample {
            subject: subject(r),
            at_ms: r.get(AFTER_SUBJECT),
            window_ms: r.get(AFTER_SUBJECT + 1),
            cpu_millis: r.get(AFTER_SUBJECT + 2),
            memory_bytes: r.get(AFTER_SUBJECT + 3),
        });
        true
    })
}

/// Each container's rollups of the hours that start in `filter`'s window, merged in SQL as
/// [`crate::model::usage::Hourly::merge`] does: one row per container, by pod and container.
pub fn container_rollups(
    c: &mut Client,
    clusters: &[i32],
    filter: &UsageFilter,
    each: &mut dyn FnMut(ContainerRollup),
) -> Result<(), postgres::Error> {
    let (conditions, params) = conditions(clusters, filter, "h.hour_ms");
    // Grouped by the container's key and the pod's; `p.id` determines the pod's columns.
    let sql = format!(
        "SELECT {SUBJECT_COLUMNS}, sum(h.samples)::bigint, min(h.cpu_min),
             max(h.cpu_max), sum(h.cpu_sum)::bigint, max(h.cpu_p95), min(h.memory_min),
             max(h.memory_max), sum(h.memory_sum)::bigint, max(h.memory_p95)
         FROM container_usage_hourly h
         JOIN usage_containers c ON c.id = h.container_id
         JOIN pods p ON p.id = c.pod_id{conditions}
         GROUP BY p.id, c.id
         ORDER BY p.id, c.name"
    );
    stream(c, &sql, &params, |r| {
        each(ContainerRollup {
            subject: subject(r),
            hourly: super::usage_rollup::hourly(r, AFTER_SUBJECT),
        });
        true
    })
}

/// The node samples (of the node named `node` only, when given) in `[since_ms, until_ms)`.
pub fn node_samples(
    c: &mut Client,
    clusters: &[i32],
    node: Option<&str>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    each: &mut dyn FnMut(NodeSample),
) -> Result<(), postgres::Error> {
    for r in c.query(
        "SELECT n.name, s.at_ms, s.window_ms, s.cpu_millis, s.memory_bytes, n.uid
         FROM node_usage_samples s JOIN nodes n ON n.id = s.node_id
         WHERE n.cluster_id = ANY($1) AND s.at_ms >= $2 AND s.at_ms < $3
             AND ($4::text IS NULL OR n.name = $4)
         ORDER BY n.name, n.created_at_ms, s.at_ms",
        &[
            &clusters,
            &since_ms.unwrap_or(i64::MIN),
            &until_ms.unwrap_or(i64::MAX),
            &node,
        ],
    )? {
        each(NodeSample {
            node: r.get(0),
            at_ms: r.get(1),
            window_ms: r.get(2),
            cpu_millis: r.get(3),
            memory_bytes: r.get(4),
            node_uid: r.get(5),
        });
    }
    Ok(())
}

/// Removes a pruned pod's samples and container keys, in the caller's transaction.
pub fn delete_pod_usage(tx: &mut Transaction, pod_id: i64) -> Result<u64, postgres::Error> {
    let n = tx.execute(
        "DELETE FROM container_usage WHERE container_id IN
             (SELECT id FROM usage_containers WHERE pod_id = $1)",
        &[&pod_id],
    )?;
    tx.execute(
        "DELETE FROM container_usage_hourly WHERE container_id IN
             (SELECT id FROM usage_containers WHERE pod_id = $1)",
        &[&pod_id],
    )?;
    tx.execute("DELETE FROM usage_containers WHERE pod_id = $1", &[&pod_id])?;
    Ok(n)
}

/// Removes a pruned node's samples, in the caller's transaction.
pub fn delete_node_usage(tx: &mut Transaction, node_id: i64) -> Result<u64, postgres::Error> {
    tx.execute(
        "DELETE FROM node_usage_samples WHERE node_id = $1",
        &[&node_id],
    )
}
