//! Shared test helper (also used by examples/soak.rs): node utilisation per bucket over raw
//! and rolled-up history together, the way `query nodes` combines them: raw `node_usage` rows
//! integrated with `query::utilisation::integrate`, hourly rollups placed on the same grid with
//! `model::rollup::regrid`, and the two merged where they share a bucket.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kubetrail::model::Resources;
use kubetrail::model::utilisation::{BucketUsage, Grid, UsageSample, integrate};
use kubetrail::store::sqlite::rollup::{for_each_rollup, merge, regrid};
use rusqlite::Connection;

/// Buckets keyed by (node uid, bucket start).
pub type Buckets = BTreeMap<(String, i64), BucketUsage>;

/// Integrates the raw rows of every node on `grid`, starting from the row in force at the
/// grid's start.
pub fn raw_buckets(conn: &Connection, grid: Grid) -> Buckets {
    let mut nodes = conn
        .prepare("SELECT id, uid, created_at_ms, deleted_at_ms FROM nodes ORDER BY id")
        .unwrap();
    let nodes: Vec<(i64, String, i64, Option<i64>)> = nodes
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = conn
        .prepare(
            "SELECT at_ms, cpu_requested_millis, memory_requested_bytes, cpu_limits_millis,
                    memory_limits_bytes, pod_count, cpu_allocatable_millis, memory_allocatable_bytes
             FROM node_usage WHERE node_id = ?1 AND at_ms < ?3
               AND at_ms >= coalesce((SELECT max(at_ms) FROM node_usage WHERE node_id = ?1 AND at_ms <= ?2), ?2)
             ORDER BY at_ms",
        )
        .unwrap();
    let mut out = Buckets::new();
    for (id, uid, created, deleted) in nodes {
        let samples: Vec<UsageSample> = rows
            .query_map([id, grid.since_ms, grid.until_ms], |r| {
                Ok(UsageSample {
                    at_ms: r.get(0)?,
                    requested: Resources::new(r.get(1)?, r.get(2)?),
                    limits: Resources::new(r.get(3)?, r.get(4)?),
                    pod_count: r.get(5)?,
                    allocatable: Resources::new(r.get(6)?, r.get(7)?),
                })
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for bucket in integrate(grid, created, deleted, &samples) {
            out.insert((uid.clone(), bucket.start_ms), bucket);
        }
    }
    out
}

/// Raw buckets merged with the rollups on the same grid.
pub fn combined_buckets(conn: &Connection, grid: Grid) -> Buckets {
    let mut out = raw_buckets(conn, grid);
    let mut by_node: BTreeMap<String, Vec<BucketUsage>> = BTreeMap::new();
    for_each_rollup(conn, None, grid.since_ms, grid.until_ms, |r| {
        by_node.entry(r.node_uid).or_default().push(r.usage);
        Ok(())
    })
    .unwrap();
    for (uid, rollups) in by_node {
        for bucket in regrid(&grid, rollups) {
            out.entry((uid.clone(), bucket.start_ms))
                .and_modify(|raw| merge(raw, &bucket))
                .or_insert(bucket);
        }
    }
    out
}
