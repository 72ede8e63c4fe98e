//! Rolling up in PostgreSQL: the statements of [`RollupStore`] for one cluster, inside one
//! transaction. The rule itself (which rows, where a chunk ends, what a rollup holds) is
//! retention's, the same for every store, and comes in as a [`RollupRule`].

use postgres::Transaction;

use super::partitions::Partitioned;
use super::reports::{ROLLUP_COLUMNS, bucket_from_row};
use super::{PgWriter, sessions};
use crate::model::rollup::{ROLLUP_BUCKET_MS, RollupProgress};
use crate::model::utilisation::{BucketUsage, Intervals, UsageSample};
use crate::store::rollup::{NodeLife, RollupRule, RollupStore};
use crate::store::{Coverage, StoreError};

struct PgRollup<'a, 'b> {
    tx: &'a mut Transaction<'b>,
    cluster: i32,
    target: String,
}

impl PgRollup<'_, '_> {
    fn db(&self, err: postgres::Error) -> StoreError {
        let (detail, transient) = super::describe(&err);
        StoreError::Database {
            target: self.target.clone(),
            detail,
            transient,
        }
    }
}

impl RollupStore for PgRollup<'_, '_> {
    fn nodes(&mut self) -> Result<Vec<NodeLife>, StoreError> {
        let rows = self
            .tx
            .query(
                "SELECT id, created_at_ms, deleted_at_ms FROM nodes WHERE cluster_id = $1 ORDER BY id",
                &[&self.cluster],
            )
            .map_err(|e| self.db(e))?;
        Ok(rows
            .iter()
            .map(|r| NodeLife {
                id: r.get(0),
                created_ms: r.get(1),
                deleted_ms: r.get(2),
            })
            .collect())
    }

    fn covered(&mut self) -> Result<Option<Intervals>, StoreError> {
        let all = sessions::read_all(self.tx, &[self.cluster]).map_err(|e| self.db(e))?;
        Ok(Coverage::from_sessions(all).intervals())
    }

    fn raw_start_ms(&mut self, node: i64) -> Result<Option<i64>, StoreError> {
        self.tx
            .query_one(
                "SELECT min(at_ms) FROM node_usage WHERE node_id = $1",
                &[&node],
            )
            .map(|r| r.get(0))
            .map_err(|e| self.db(e))
    }

    fn nth_raw_ms(
        &mut self,
        node: i64,
        before_ms: i64,
        offset: u64,
    ) -> Result<Option<i64>, StoreError> {
        self.tx
            .query_opt(
                "SELECT at_ms FROM node_usage WHERE node_id = $1 AND at_ms < $2
                 ORDER BY at_ms OFFSET $3 LIMIT 1",
                &[&node, &before_ms, &(offset as i64)],
            )
            .map(|r| r.map(|r| r.get(0)))
            .map_err(|e| self.db(e))
    }

    fn raw_samples(
        &mut self,
        node: i64,
        before_ms: i64,
        each: &mut dyn FnMut(UsageSample),
    ) -> Result<(), StoreError> {
        let rows = self
            .tx
            .query(
                "SELECT at_ms, cpu_requested_millis, memory_requested_bytes, cpu_limits_millis,
                        memory_limits_bytes, pod_count, cpu_allocatable_millis,
                        memory_allocatable_bytes
                 FROM node_usage WHERE node_id = $1 AND at_ms < $2 ORDER BY at_ms",
                &[&node, &before_ms],
            )
            .map_err(|e| self.db(e))?;
        for r in &rows {
            each(super::reports::sample_from_row(r));
        }
        Ok(())
    }

    fn rollup(&mut self, node: i64, start_ms: i64) -> Result<Option<BucketUsage>, StoreError> {
        self.tx
            .query_opt(
                &format!(
                    "SELECT {ROLLUP_COLUMNS} FROM node_usage_rollup
                     WHERE node_id = $1 AND bucket_start_ms = $2"
                ),
                &[&node, &start_ms],
            )
            .map(|r| r.map(|r| bucket_from_row(&r, 0)))
            .map_err(|e| self.db(e))
    }

    fn put_rollup(&mut self, node: i64, b: &BucketUsage) -> Result<(), StoreError> {
        let width = b.end_ms - b.start_ms;
        self.tx
            .execute(
                &format!(
                    "INSERT INTO node_usage_rollup (cluster_id, node_id, {ROLLUP_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                             $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
                     ON CONFLICT (node_id, bucket_start_ms) DO UPDATE SET
                         bucket_ms = excluded.bucket_ms, covered_ms = excluded.covered_ms,
                         pods_avg = excluded.pods_avg, pods_peak = excluded.pods_peak,
                         cpu_requested_avg_millis = excluded.cpu_requested_avg_millis,
                         cpu_requested_peak_millis = excluded.cpu_requested_peak_millis,
                         memory_requested_avg_bytes = excluded.memory_requested_avg_bytes,
                         memory_requested_peak_bytes = excluded.memory_requested_peak_bytes,
                         cpu_limits_avg_millis = excluded.cpu_limits_avg_millis,
                         cpu_limits_peak_millis = excluded.cpu_limits_peak_millis,
                         memory_limits_avg_bytes = excluded.memory_limits_avg_bytes,
                         memory_limits_peak_bytes = excluded.memory_limits_peak_bytes,
                         cpu_allocatable_avg_millis = excluded.cpu_allocatable_avg_millis,
                         cpu_allocatable_peak_millis = excluded.cpu_allocatable_peak_millis,
                         memory_allocatable_avg_bytes = excluded.memory_allocatable_avg_bytes,
                         memory_allocatable_peak_bytes = excluded.memory_allocatable_peak_bytes,
                         cpu_requested_ratio_avg = excluded.cpu_requested_ratio_avg,
                         cpu_requested_ratio_peak = excluded.cpu_requested_ratio_peak,
                         memory_requested_ratio_avg = excluded.memory_requested_ratio_avg,
                         memory_requested_ratio_peak = excluded.memory_requested_ratio_peak,
                         cpu_limits_ratio_avg = excluded.cpu_limits_ratio_avg,
                         cpu_limits_ratio_peak = excluded.cpu_limits_ratio_peak,
                         memory_limits_ratio_avg = excluded.memory_limits_ratio_avg,
                         memory_limits_ratio_peak = excluded.memory_limits_ratio_peak"
                ),
                &[
                    &self.cluster,
                    &node,
                    &b.start_ms,
                    &width,
                    &b.present_ms,
                    &b.pods.avg,
                    &b.pods.peak,
                    &b.cpu_requested.avg,
                    &b.cpu_requested.peak,
                    &b.memory_requested.avg,
                    &b.memory_requested.peak,
                    &b.cpu_limits.avg,
                    &b.cpu_limits.peak,
                    &b.memory_limits.avg,
                    &b.memory_limits.peak,
                    &b.cpu_allocatable.avg,
                    &b.cpu_allocatable.peak,
                    &b.memory_allocatable.avg,
                    &b.memory_allocatable.peak,
                    &b.cpu_requested_ratio.avg,
                    &b.cpu_requested_ratio.peak,
                    &b.memory_requested_ratio.avg,
                    &b.memory_requested_ratio.peak,
                    &b.cpu_limits_ratio.avg,
                    &b.cpu_limits_ratio.peak,
                    &b.memory_limits_ratio.avg,
                    &b.memory_limits_ratio.peak,
                ],
            )
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    fn put_keyframe(&mut self, node: i64, at_ms: i64, s: &UsageSample) -> Result<bool, StoreError> {
        self.tx
            .execute(
                "INSERT INTO node_usage (cluster_id, node_id, at_ms, cpu_requested_millis,
                     memory_requested_bytes, cpu_limits_millis, memory_limits_bytes, pod_count,
                     cpu_allocatable_millis, memory_allocatable_bytes, keyframe)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, true)
                 ON CONFLICT (node_id, at_ms) DO NOTHING",
                &[
                    &self.cluster,
                    &node,
                    &at_ms,
                    &s.requested.cpu_millis,
                    &s.requested.memory_bytes,
                    &s.limits.cpu_millis,
                    &s.limits.memory_bytes,
                    &s.pod_count,
                    &s.allocatable.cpu_millis,
                    &s.allocatable.memory_bytes,
                ],
            )
            .map(|n| n == 1)
            .map_err(|e| self.db(e))
    }

    fn delete_raw_before(&mut self, node: i64, before_ms: i64) -> Result<u64, StoreError> {
        self.tx
            .execute(
                "DELETE FROM node_usage WHERE node_id = $1 AND at_ms < $2",
                &[&node, &before_ms],
            )
            .map_err(|e| self.db(e))
    }
}

/// One roll-up step for the writer's cluster: `rule` over the statements, in one transaction.
pub fn roll_up(
    w: &mut PgWriter,
    horizon_ms: i64,
    rule: &mut RollupRule<'_>,
) -> Result<RollupProgress, StoreError> {
    let target = w.target.clone();
    let cluster = w.cluster_id;
    // The rollups land in partitions by bucket start: make sure the months up to the horizon
    // exist (the oldest raw row bounds them from below).
    let oldest: Option<i64> = w.with(|c, cluster| {
        c.query_one(
            "SELECT min(at_ms) FROM node_usage WHERE cluster_id = $1",
            &[&cluster],
        )
        .map(|r| r.get(0))
    })?;
    let Some(oldest) = oldest else {
        return Ok(RollupProgress {
            done: true,
            ..Default::default()
        });
    };
    let months = super::partitions::months_between(oldest - ROLLUP_BUCKET_MS, horizon_ms);
    w.ensure_partitions(Partitioned::NodeUsageRollup, months)?;
    let client = w.client_mut()?;
    let mut tx = client
        .transaction()
        .map_err(|e| super::store_error(&target, e))?;
    let progress = rule(&mut PgRollup {
        tx: &mut tx,
        cluster,
        target: target.clone(),
    })?;
    tx.commit().map_err(|e| super::store_error(&target, e))?;
    Ok(progress)
}
