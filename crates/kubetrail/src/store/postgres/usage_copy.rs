//! `kubetrail copy` of measured usage into PostgreSQL: the metrics API's samples and their
//! hourly rollups, found by their pod (uid and container name) or node (uid) and their time,
//! so that a second copy adds nothing.
//!
//! An hour is either raw samples or one rollup in a store, never both: reports add the two, and
//! an hour held twice would count twice. Retention on either side may roll an hour up between
//! two copies, so:
//! - a raw sample is not added where the server already holds that hour's rollup (its own
//!   retention rolled the samples of an earlier copy up);
//! - a rollup replaces the raw samples the server holds for its hour (the file's retention
//!   rolled up samples that an earlier copy had moved): the rollup was made from them.

use postgres::Transaction;

use crate::model::Effective;
use crate::model::rollup::ROLLUP_BUCKET_MS as HOUR;
use crate::model::usage::resource_columns;
use crate::store::copy::{ChunkCounts, HourCopy, SampleCopy};

/// The two kinds of subject: how a row's uid (and container) finds its key on the server.
struct Subject {
    raw: &'static str,
    hourly: &'static str,
    key: &'static str,
    /// Resolves `s.uid` (and `s.name`) of this cluster (`$1`) to `k.id`, the key.
    join: &'static str,
}

const CONTAINERS: Subject = Subject {
    raw: "container_usage",
    hourly: "container_usage_hourly",
    key: "container_id",
    join: "JOIN pods p ON p.cluster_id = $1 AND p.uid = s.uid
           JOIN usage_containers k ON k.pod_id = p.id AND k.name = s.name",
};

const NODES: Subject = Subject {
    raw: "node_usage_samples",
    hourly: "node_usage_samples_hourly",
    key: "node_id",
    join: "JOIN nodes k ON k.cluster_id = $1 AND k.uid = s.uid",
};

fn subject(containers: bool) -> &'static Subject {
    if containers { &CONTAINERS } else { &NODES }
}

/// Gives each (pod, container) of the rows its key once, as the recorder does on a first
/// sample, with the container's requests and limits; a key the server holds takes the file's
/// requests where the file has them (the file's are the latest the recorder saw).
fn ensure_containers(
    tx: &mut Transaction,
    cluster: i32,
    uid: &[&str],
    name: &[&str],
    resources: &[Option<Effective>],
) -> Result<(), postgres::Error> {
    let columns: Vec<[Option<i64>; 4]> = resources.iter().map(|r| resource_columns(*r)).collect();
    let column = |i: usize| columns.iter().map(|c| c[i]).collect::<Vec<Option<i64>>>();
    let (cpu, memory, cpu_limit, memory_limit) = (column(0), column(1), column(2), column(3));
    // DISTINCT ON: one row per key (an upsert may not touch a row twice), one with requests
    // first.
    tx.execute(
        "INSERT INTO usage_containers (cluster_id, pod_id, name, cpu_request_millis,
             memory_request_bytes, cpu_limit_millis, memory_limit_bytes)
         SELECT DISTINCT ON (p.id, s.name) p.cluster_id, p.id, s.name, s.cpu, s.memory,
             s.cpu_limit, s.memory_limit
         FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
             AS s (uid, name, cpu, memory, cpu_limit, memory_limit)
         JOIN pods p ON p.cluster_id = $1 AND p.uid = s.uid
         ORDER BY p.id, s.name, s.cpu IS NULL
         ON CONFLICT (pod_id, name) DO UPDATE SET
             cpu_request_millis = coalesce(EXCLUDED.cpu_request_millis,
                                           usage_containers.cpu_request_millis),
             memory_request_bytes = coalesce(EXCLUDED.memory_request_bytes,
                                             usage_containers.memory_request_bytes),
             cpu_limit_millis = coalesce(EXCLUDED.cpu_limit_millis,
                                         usage_containers.cpu_limit_millis),
             memory_limit_bytes = coalesce(EXCLUDED.memory_limit_bytes,
                                           usage_containers.memory_limit_bytes)",
        &[
            &cluster,
            &uid,
            &name,
            &cpu,
            &memory,
            &cpu_limit,
            &memory_limit,
        ],
    )?;
    Ok(())
}

/// A chunk of container samples (`containers`) or node samples.
pub fn import_samples(
    tx: &mut Transaction,
    cluster: i32,
    containers: bool,
    rows: &[SampleCopy],
) -> Result<ChunkCounts, postgres::Error> {
    let uid: Vec<&str> = rows.iter().map(|s| s.uid.as_str()).collect();
    let name: Vec<&str> = rows
        .iter()
        .map(|s| s.container.as_deref().unwrap_or(""))
        .collect();
    let at: Vec<i64> = rows.iter().map(|s| s.at_ms).collect();
    let window: Vec<i64> = rows.iter().map(|s| s.window_ms).collect();
    let cpu: Vec<i64> = rows.iter().map(|s| s.cpu_millis).collect();
    let memory: Vec<i64> = rows.iter().map(|s| s.memory_bytes).collect();
    if containers {
        let resources: Vec<_> = rows.iter().map(|s| s.resources).collect();
        ensure_containers(tx, cluster, &uid, &name, &resources)?;
    }
    let Subject {
        raw,
        hourly,
        key,
        join,
    } = subject(containers);
    let r = tx.query_one(
        &format!(
            "WITH src AS (
                 SELECT k.id, s.at_ms, s.window_ms, s.cpu, s.memory
                 FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[],
                             $7::int8[]) AS s (uid, name, at_ms, window_ms, cpu, memory)
                 {join}),
             ins AS (
                 INSERT INTO {raw} ({key}, at_ms, window_ms, cpu_millis, memory_bytes)
                 SELECT id, at_ms, window_ms, cpu, memory FROM src
                 WHERE NOT EXISTS (SELECT 1 FROM {hourly} h WHERE h.{key} = src.id
                                   AND h.hour_ms = src.at_ms - src.at_ms % {HOUR})
                 ON CONFLICT DO NOTHING RETURNING 1)
             SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins)"
        ),
        &[&cluster, &uid, &name, &at, &window, &cpu, &memory],
    )?;
    Ok(ChunkCounts {
        new: r.get::<_, i64>(1) as u64,
        updated: 0,
        skipped: rows.len() as u64 - r.get::<_, i64>(0) as u64,
    })
}

/// A chunk of container rollups (`containers`) or node rollups. A rollup that replaces raw
/// samples counts as updated.
pub fn import_hours(
    tx: &mut Transaction,
    cluster: i32,
    containers: bool,
    rows: &[HourCopy],
) -> Result<ChunkCounts, postgres::Error> {
    let uid: Vec<&str> = rows.iter().map(|h| h.uid.as_str()).collect();
    let name: Vec<&str> = rows
        .iter()
        .map(|h| h.container.as_deref().unwrap_or(""))
        .collect();
    let hour: Vec<i64> = rows.iter().map(|h| h.hour_ms).collect();
    let column = |f: fn(&HourCopy) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
    let samples = column(|h| h.hourly.samples);
    let cpu_min = column(|h| h.hourly.cpu_min);
    let cpu_max = column(|h| h.hourly.cpu_max);
    let cpu_sum = column(|h| h.hourly.cpu_sum);
    let cpu_p95 = column(|h| h.hourly.cpu_p95);
    let memory_min = column(|h| h.hourly.memory_min);
    let memory_max = column(|h| h.hourly.memory_max);
    let memory_sum = column(|h| h.hourly.memory_sum);
    let memory_p95 = column(|h| h.hourly.memory_p95);
    if containers {
        let resources: Vec<_> = rows.iter().map(|h| h.resources).collect();
        ensure_containers(tx, cluster, &uid, &name, &resources)?;
    }
    let Subject {
        raw,
        hourly,
        key,
        join,
    } = subject(containers);
    let r = tx.query_one(
        &format!(
            "WITH src AS (
                 SELECT k.id, s.* FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[],
                     $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[],
                     $12::int8[], $13::int8[])
                 AS s (uid, name, hour_ms, samples, cpu_min, cpu_max, cpu_sum, cpu_p95,
                       memory_min, memory_max, memory_sum, memory_p95)
                 {join}),
             ins AS (
                 INSERT INTO {hourly} ({key}, hour_ms, samples, cpu_min, cpu_max, cpu_sum,
                     cpu_p95, memory_min, memory_max, memory_sum, memory_p95)
                 SELECT id, hour_ms, samples, cpu_min, cpu_max, cpu_sum, cpu_p95, memory_min,
                     memory_max, memory_sum, memory_p95 FROM src
                 ON CONFLICT DO NOTHING RETURNING {key}, hour_ms),
             replaced AS (
                 DELETE FROM {raw} r USING ins
                 WHERE r.{key} = ins.{key} AND r.at_ms >= ins.hour_ms
                   AND r.at_ms < ins.hour_ms + {HOUR}
                 RETURNING ins.{key}, ins.hour_ms)
             SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins),
                    (SELECT count(*) FROM (SELECT DISTINCT * FROM replaced) d)"
        ),
        &[
            &cluster,
            &uid,
            &name,
            &hour,
            &samples,
            &cpu_min,
            &cpu_max,
            &cpu_sum,
            &cpu_p95,
            &memory_min,
            &memory_max,
            &memory_sum,
            &memory_p95,
        ],
    )?;
    let (found, inserted, replacing) = (
        r.get::<_, i64>(0) as u64,
        r.get::<_, i64>(1) as u64,
        r.get::<_, i64>(2) as u64,
    );
    Ok(ChunkCounts {
        new: inserted - replacing,
        updated: replacing,
        skipped: rows.len() as u64 - found,
    })
}
