//! Rollups in SQLite: rolling raw `node_usage` rows up past the horizon into hourly
//! `node_usage_rollup` rows, expiring them, and reading them back (see `model::rollup` for
//! what a rollup is).
//!
//! The rule of a roll-up step (which rows, where a chunk ends, what a rollup holds, the
//! keyframe) is retention's, the same for every store, and comes in as a [`RollupRule`]; this
//! module supplies its statements ([`RollupStore`]) on one write transaction.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::error::db_error;
use super::file::db_path;
use crate::model::Resources;
pub use crate::model::rollup::{ROLLUP_BUCKET_MS, RollupProgress, RollupRow, merge, regrid};
use crate::model::utilisation::{BucketUsage, Grid, Intervals, RatioStat, Stat, UsageSample};
use crate::store::StoreError;
use crate::store::rollup::{NodeLife, RollupRule, RollupStore};

/// The first raw usage row of a node: where its exact step function starts. Rollups of the
/// node cover only time before it.
pub fn raw_start_ms(conn: &Connection, node_id: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT min(at_ms) FROM node_usage WHERE node_id = ?1")?
        .query_row([node_id], |r| r.get(0))
}

/// The end of the newest rollup bucket of any node: before it, utilisation may be hourly
/// rollups only; None when nothing has been rolled up. One primary-key seek per node.
pub fn rolled_up_until_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT max((SELECT r.bucket_start_ms + r.bucket_ms FROM node_usage_rollup r
                     WHERE r.node_id = n.id ORDER BY r.bucket_start_ms DESC LIMIT 1))
         FROM nodes n",
    )?
    .query_row([], |r| r.get(0))
}

/// One roll-up step: `rule` over the statements, in one IMMEDIATE transaction.
pub fn roll_up(
    conn: &mut Connection,
    rule: &mut RollupRule<'_>,
) -> Result<RollupProgress, StoreError> {
    let path = db_path(conn).unwrap_or_default();
    let fail = |e| db_error(&path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let progress = rule(&mut SqliteRollup {
        tx: &tx,
        path: &path,
    })?;
    tx.commit().map_err(fail)?;
    Ok(progress)
}

/// [`RollupStore`] on one SQLite write transaction.
struct SqliteRollup<'a> {
    tx: &'a Transaction<'a>,
    path: &'a std::path::Path,
}

impl SqliteRollup<'_> {
    fn run<T>(&self, f: impl FnOnce(&Transaction) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        f(self.tx).map_err(|e| db_error(self.path, e))
    }
}

impl RollupStore for SqliteRollup<'_> {
    fn nodes(&mut self) -> Result<Vec<NodeLife>, StoreError> {
        self.run(|tx| {
            let mut stmt = tx
                .prepare_cached("SELECT id, created_at_ms, deleted_at_ms FROM nodes ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(NodeLife {
                    id: r.get(0)?,
                    created_ms: r.get(1)?,
                    deleted_ms: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    fn covered(&mut self) -> Result<Option<Intervals>, StoreError> {
        let sessions = self.run(|tx| super::sessions::read_all(tx))?;
        Ok(crate::store::Coverage::from_sessions(sessions).intervals())
    }

    fn raw_start_ms(&mut self, node: i64) -> Result<Option<i64>, StoreError> {
        self.run(|tx| raw_start_ms(tx, node))
    }

    fn nth_raw_ms(
        &mut self,
        node: i64,
        before_ms: i64,
        offset: u64,
    ) -> Result<Option<i64>, StoreError> {
        self.run(|tx| {
            tx.prepare_cached(
                "SELECT at_ms FROM node_usage WHERE node_id = ?1 AND at_ms < ?2
                 ORDER BY at_ms LIMIT 1 OFFSET ?3",
            )?
            .query_row(params![node, before_ms, offset as i64], |r| r.get(0))
            .optional()
        })
    }

    fn raw_samples(
        &mut self,
        node: i64,
        before_ms: i64,
        each: &mut dyn FnMut(UsageSample),
    ) -> Result<(), StoreError> {
        self.run(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT at_ms, cpu_requested_millis, memory_requested_bytes, cpu_limits_millis,
                        memory_limits_bytes, pod_count, cpu_allocatable_millis,
                        memory_allocatable_bytes
                 FROM node_usage WHERE node_id = ?1 AND at_ms < ?2 ORDER BY at_ms",
            )?;
            let mut rows = stmt.query(params![node, before_ms])?;
            while let Some(row) = rows.next()? {
                each(UsageSample {
                    at_ms: row.get(0)?,
                    requested: Resources::new(row.get(1)?, row.get(2)?),
                    limits: Resources::new(row.get(3)?, row.get(4)?),
                    pod_count: row.get(5)?,
                    allocatable: Resources::new(row.get(6)?, row.get(7)?),
                });
            }
            Ok(())
        })
    }

    fn rollup(&mut self, node: i64, start_ms: i64) -> Result<Option<BucketUsage>, StoreError> {
        self.run(|tx| {
            tx.prepare_cached(&format!(
                "SELECT {ROLLUP_COLUMNS} FROM node_usage_rollup WHERE node_id = ?1 AND bucket_start_ms = ?2"
            ))?
            .query_row(params![node, start_ms], |r| bucket_from_row(r, 0))
            .optional()
        })
    }

    fn put_rollup(&mut self, node: i64, row: &BucketUsage) -> Result<(), StoreError> {
        self.run(|tx| {
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO node_usage_rollup (node_id, {ROLLUP_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                         ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
            ))?
            .execute(params![
                node,
                row.start_ms,
                row.end_ms - row.start_ms,
                row.present_ms,
                row.pods.avg,
                row.pods.peak,
                row.cpu_requested.avg,
                row.cpu_requested.peak,
                row.memory_requested.avg,
                row.memory_requested.peak,
                row.cpu_limits.avg,
                row.cpu_limits.peak,
                row.memory_limits.avg,
                row.memory_limits.peak,
                row.cpu_allocatable.avg,
                row.cpu_allocatable.peak,
                row.memory_allocatable.avg,
                row.memory_allocatable.peak,
                row.cpu_requested_ratio.avg,
                row.cpu_requested_ratio.peak,
                row.memory_requested_ratio.avg,
                row.memory_requested_ratio.peak,
                row.cpu_limits_ratio.avg,
                row.cpu_limits_ratio.peak,
                row.memory_limits_ratio.avg,
                row.memory_limits_ratio.peak
            ])?;
            Ok(())
        })
    }

    fn put_keyframe(
        &mut self,
        node: i64,
        at_ms: i64,
        last: &UsageSample,
    ) -> Result<bool, StoreError> {
        self.run(|tx| {
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO node_usage (node_id, at_ms, cpu_requested_millis,
                         memory_requested_bytes, cpu_limits_millis, memory_limits_bytes, pod_count,
                         cpu_allocatable_millis, memory_allocatable_bytes, keyframe)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)",
                )?
                .execute(params![
                    node,
                    at_ms,
                    last.requested.cpu_millis,
                    last.requested.memory_bytes,
                    last.limits.cpu_millis,
                    last.limits.memory_bytes,
                    last.pod_count,
                    last.allocatable.cpu_millis,
                    last.allocatable.memory_bytes
                ])?;
            Ok(inserted == 1)
        })
    }

    fn delete_raw_before(&mut self, node: i64, before_ms: i64) -> Result<u64, StoreError> {
        self.run(|tx| {
            tx.prepare_cached("DELETE FROM node_usage WHERE node_id = ?1 AND at_ms < ?2")?
                .execute(params![node, before_ms])
                .map(|n| n as u64)
        })
    }
}

pub(super) const ROLLUP_COLUMNS: &str =
    "bucket_start_ms, bucket_ms, covered_ms, pods_avg, pods_peak,
    cpu_requested_avg_millis, cpu_requested_peak_millis, memory_requested_avg_bytes,
    memory_requested_peak_bytes, cpu_limits_avg_millis, cpu_limits_peak_millis,
    memory_limits_avg_bytes, memory_limits_peak_bytes, cpu_allocatable_avg_millis,
    cpu_allocatable_peak_millis, memory_allocatable_avg_bytes, memory_allocatable_peak_bytes,
    cpu_requested_ratio_avg, cpu_requested_ratio_peak, memory_requested_ratio_avg,
    memory_requested_ratio_peak, cpu_limits_ratio_avg, cpu_limits_ratio_peak,
    memory_limits_ratio_avg, memory_limits_ratio_peak";

/// Decodes the [`ROLLUP_COLUMNS`] starting at column `at`.
pub(super) fn bucket_from_row(row: &Row, at: usize) -> rusqlite::Result<BucketUsage> {
    let stat = |i: usize| -> rusqlite::Result<Stat> {
        Ok(Stat {
            avg: row.get(at + i)?,
            peak: row.get(at + i + 1)?,
        })
    };
    let ratio = |i: usize| -> rusqlite::Result<RatioStat> {
        Ok(RatioStat {
            avg: row.get(at + i)?,
            peak: row.get(at + i + 1)?,
        })
    };
    let start_ms: i64 = row.get(at)?;
    let bucket_ms: i64 = row.get(at + 1)?;
    Ok(BucketUsage {
        start_ms,
        end_ms: start_ms + bucket_ms,
        present_ms: row.get(at + 2)?,
        pods: stat(3)?,
        cpu_requested: stat(5)?,
        memory_requested: stat(7)?,
        cpu_limits: stat(9)?,
        memory_limits: stat(11)?,
        cpu_allocatable: stat(13)?,
        memory_allocatable: stat(15)?,
        cpu_requested_ratio: ratio(17)?,
        memory_requested_ratio: ratio(19)?,
        cpu_limits_ratio: ratio(21)?,
        memory_limits_ratio: ratio(23)?,
    })
}

/// Deletes rollup buckets that end at or before `cutoff_ms`, at most about `row_budget` rows,
/// one transaction; `keep_from_ms` protects newer buckets whatever the cutoff (the size budget
/// uses it to keep the newest rollups). Returns (rows deleted, done).
pub fn expire_step(
    conn: &mut Connection,
    cutoff_ms: i64,
    keep_from_ms: Option<i64>,
    row_budget: u64,
) -> rusqlite::Result<(u64, bool)> {
    let cutoff = keep_from_ms.map_or(cutoff_ms, |keep| cutoff_ms.min(keep));
    let nodes: Vec<i64> = conn
        .prepare_cached("SELECT id FROM nodes ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deleted = 0u64;
    let mut done = true;
    for node in nodes {
        if deleted >= row_budget {
            done = false;
            break;
        }
        // Buckets are one hour wide; the key range `bucket_start_ms < cutoff` finds candidates
        // by primary key, the sum keeps a bucket that straddles the cutoff.
        let n = tx
            .prepare_cached(
                "DELETE FROM node_usage_rollup
                 WHERE node_id = ?1 AND bucket_start_ms < ?2 AND bucket_start_ms + bucket_ms <= ?2
                   AND bucket_start_ms < coalesce(
                       (SELECT bucket_start_ms FROM node_usage_rollup
                        WHERE node_id = ?1 ORDER BY bucket_start_ms LIMIT 1 OFFSET ?3), ?2)",
            )?
            .execute(params![node, cutoff, (row_budget - deleted) as i64])? as u64;
        if n >= row_budget - deleted {
            done = false; // this node may have more
        }
        deleted += n;
    }
    tx.commit()?;
    Ok((deleted, done))
}

/// The start of the oldest rollup bucket of any node (one primary-key seek per node).
pub fn oldest_rollup_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT min((SELECT r.bucket_start_ms FROM node_usage_rollup r
                     WHERE r.node_id = n.id ORDER BY r.bucket_start_ms LIMIT 1))
         FROM nodes n",
    )?
    .query_row([], |r| r.get(0))
}

/// Streams the rollups of nodes named `node` (every node when None) that overlap
/// `[since_ms, until_ms)`, ordered like `query nodes` orders raw rows: by node name, creation,
/// id, then bucket start. A bucket is indivisible: one that straddles an end of the window is
/// returned whole.
pub fn for_each_rollup(
    conn: &Connection,
    node: Option<&str>,
    since_ms: i64,
    until_ms: i64,
    mut each: impl FnMut(RollupRow) -> rusqlite::Result<()>,
) -> rusqlite::Result<u64> {
    // `bucket_start_ms > since - width` keeps the primary-key range usable; the sum is exact.
    let mut params: Vec<Value> = vec![
        Value::Integer(since_ms),
        Value::Integer(until_ms),
        Value::Integer(since_ms - ROLLUP_BUCKET_MS),
    ];
    let node_condition = match node {
        Some(name) => {
            params.push(Value::Text(name.to_string()));
            "WHERE n.name = ?4"
        }
        None => "",
    };
    let sql = format!(
        "SELECT n.id, n.uid, n.name, n.created_at_ms, n.deleted_at_ms, {ROLLUP_COLUMNS}
         FROM nodes n
         JOIN node_usage_rollup r ON r.node_id = n.id
              AND r.bucket_start_ms > ?3 AND r.bucket_start_ms < ?2
              AND r.bucket_start_ms + r.bucket_ms > ?1
         {node_condition}
         ORDER BY n.name, n.created_at_ms, n.id, r.bucket_start_ms"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        each(RollupRow {
            node_id: row.get(0)?,
            node_uid: row.get(1)?,
            node_name: row.get(2)?,
            node_created_ms: row.get(3)?,
            node_deleted_ms: row.get(4)?,
            usage: bucket_from_row(row, 5)?,
        })?;
        count += 1;
    }
    Ok(count)
}

/// [`for_each_rollup`] into a vector, for tests and small windows.
pub fn read_rollups(
    conn: &Connection,
    node: Option<&str>,
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<Vec<RollupRow>> {
    let mut out = Vec::new();
    for_each_rollup(conn, node, since_ms, until_ms, |row| {
        out.push(row);
        Ok(())
    })?;
    Ok(out)
}

/// A node that has rollups in a window, for readers that list nodes from raw rows and must not
/// miss those whose raw rows are all gone (deleted long ago).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolledUpNode {
    pub node_id: i64,
    pub node_uid: String,
    pub node_name: String,
    pub node_created_ms: i64,
    pub node_deleted_ms: Option<i64>,
}

/// The nodes named `node` (every node when None) with at least one rollup overlapping
/// `[since_ms, until_ms)`, ordered like `query nodes`: name, creation, id. One primary-key seek
/// per node.
pub fn nodes_with_rollups(
    conn: &Connection,
    node: Option<&str>,
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<Vec<RolledUpNode>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.id, n.uid, n.name, n.created_at_ms, n.deleted_at_ms FROM nodes n
         WHERE (?4 IS NULL OR n.name = ?4)
           AND EXISTS (SELECT 1 FROM node_usage_rollup r WHERE r.node_id = n.id
                       AND r.bucket_start_ms > ?3 AND r.bucket_start_ms < ?2
                       AND r.bucket_start_ms + r.bucket_ms > ?1)
         ORDER BY n.name, n.created_at_ms, n.id",
    )?;
    let rows = stmt.query_map(
        params![since_ms, until_ms, since_ms - ROLLUP_BUCKET_MS, node],
        |r| {
            Ok(RolledUpNode {
                node_id: r.get(0)?,
                node_uid: r.get(1)?,
                node_name: r.get(2)?,
                node_created_ms: r.get(3)?,
                node_deleted_ms: r.get(4)?,
            })
        },
    )?;
    rows.collect()
}

/// One node's rollups placed on a query grid ([`regrid`]), in time order: what `query nodes`
/// shows for the node's rolled-up range. They all start before the node's first raw row (see
/// [`raw_start_ms`]); at most the last of them shares its grid bucket with the first bucket
/// integrated from raw rows, and the two are combined with [`merge`].
pub fn node_rollups_on_grid(
    conn: &Connection,
    node_id: i64,
    grid: &Grid,
) -> rusqlite::Result<Vec<BucketUsage>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROLLUP_COLUMNS} FROM node_usage_rollup
         WHERE node_id = ?1 AND bucket_start_ms > ?2 AND bucket_start_ms < ?3 AND bucket_start_ms + bucket_ms > ?4
         ORDER BY bucket_start_ms"
    ))?;
    let rows = stmt.query_map(
        params![
            node_id,
            grid.since_ms - ROLLUP_BUCKET_MS,
            grid.until_ms,
            grid.since_ms
        ],
        |r| bucket_from_row(r, 0),
    )?;
    let buckets = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(regrid(grid, buckets))
}
