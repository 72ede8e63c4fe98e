//! Rolling raw usage up into hourly rollups, one bounded step at a time: the rule, written once
//! for every store. A store supplies the statements ([`RollupStore`], inside one write
//! transaction); this module decides which node's rows go, where a chunk ends, what the rollups
//! hold (the integrator `query nodes` runs on raw rows), and where the keyframe goes.

use crate::model::rollup::{ROLLUP_BUCKET_MS, RollupProgress, floor_to_bucket, merge};
use crate::model::utilisation::{BucketUsage, Grid, Intervals, NodeIntegrator, UsageSample};
use crate::store::StoreError;

/// Most buckets one node's chunk may span (keeps [`Grid::new`]'s limit out of reach when raw
/// rows are very sparse).
const MAX_CHUNK_BUCKETS: i64 = 10_000;

/// A node's life, as rolling up needs it.
#[derive(Clone, Copy, Debug)]
pub struct NodeLife {
    pub id: i64,
    pub created_ms: i64,
    pub deleted_ms: Option<i64>,
}

/// The statements of one roll-up step, all inside one write transaction of the store.
pub trait RollupStore {
    /// Every node of the history being rolled up.
    fn nodes(&mut self) -> Result<Vec<NodeLife>, StoreError>;
    /// The recorded time (sessions), or None when all time counts.
    fn covered(&mut self) -> Result<Option<Intervals>, StoreError>;
    /// The node's first raw row.
    fn raw_start_ms(&mut self, node: i64) -> Result<Option<i64>, StoreError>;
    /// The time of the node's raw row `offset` rows after its first, before `before_ms`.
    fn nth_raw_ms(
        &mut self,
        node: i64,
        before_ms: i64,
        offset: u64,
    ) -> Result<Option<i64>, StoreError>;
    /// The node's raw rows before `before_ms`, in time order.
    fn raw_samples(
        &mut self,
        node: i64,
        before_ms: i64,
        each: &mut dyn FnMut(UsageSample),
    ) -> Result<(), StoreError>;
    /// The node's rollup starting at `start_ms`, if one is stored.
    fn rollup(&mut self, node: i64, start_ms: i64) -> Result<Option<BucketUsage>, StoreError>;
    /// Stores the rollup, replacing one with the same start.
    fn put_rollup(&mut self, node: i64, bucket: &BucketUsage) -> Result<(), StoreError>;
    /// Stores `sample` as a keyframe row at `at_ms` unless a row is there; true if stored.
    fn put_keyframe(
        &mut self,
        node: i64,
        at_ms: i64,
        sample: &UsageSample,
    ) -> Result<bool, StoreError>;
    /// Deletes the node's raw rows before `before_ms`; returns how many.
    fn delete_raw_before(&mut self, node: i64, before_ms: i64) -> Result<u64, StoreError>;
}

/// Rolls raw rows before `horizon_ms` up, node by node, until about `row_budget` raw rows have
/// been replaced. Call again until `done`.
pub fn roll_up_step(
    store: &mut dyn RollupStore,
    horizon_ms: i64,
    row_budget: u64,
) -> Result<RollupProgress, StoreError> {
    let mut progress = RollupProgress {
        done: true,
        ..Default::default()
    };
    let covered = store.covered()?;
    for node in store.nodes()? {
        if progress.raw_rows_deleted >= row_budget {
            progress.done = false;
            break;
        }
        let Some(from) = store.raw_start_ms(node.id)? else {
            continue;
        };
        if from >= horizon_ms {
            continue;
        }
        // Stop this node's chunk at the bucket holding its n-th row, so a year of backlog is
        // many short transactions, not one long one.
        let remaining = (row_budget - progress.raw_rows_deleted).max(1);
        let nth = store.nth_raw_ms(node.id, horizon_ms, remaining)?;
        let first_bucket = floor_to_bucket(from);
        let mut end = match nth {
            Some(at) => floor_to_bucket(at)
                .max(first_bucket + ROLLUP_BUCKET_MS)
                .min(horizon_ms),
            None => horizon_ms,
        };
        end = end.min(first_bucket + MAX_CHUNK_BUCKETS * ROLLUP_BUCKET_MS);
        if end < horizon_ms {
            progress.done = false;
        }
        let done = roll_up_node(store, node, covered.clone(), first_bucket, end)?;
        progress.add(&done);
    }
    Ok(progress)
}

/// Replaces one node's raw rows before `end_ms` by rollups (merged into existing buckets) and a
/// keyframe at `end_ms`.
fn roll_up_node(
    store: &mut dyn RollupStore,
    node: NodeLife,
    covered: Option<Intervals>,
    since_ms: i64,
    end_ms: i64,
) -> Result<RollupProgress, StoreError> {
    let mut progress = RollupProgress::default();
    let Ok(grid) = Grid::new(since_ms, end_ms, ROLLUP_BUCKET_MS) else {
        return Ok(progress); // unreachable: since < end and the span is bounded
    };
    let mut buckets = Vec::new();
    // Only recorded time goes into a rollup: after it, no query can tell a gap apart.
    let mut integrator =
        NodeIntegrator::new(grid, node.created_ms, node.deleted_ms).covering(covered);
    let mut last: Option<UsageSample> = None;
    store.raw_samples(node.id, end_ms, &mut |sample| {
        integrator.push(sample, &mut |b| buckets.push(b));
        last = Some(sample);
    })?;
    integrator.finish(&mut |b| buckets.push(b));
    for bucket in buckets.iter().filter(|b| b.present_ms > 0) {
        // Raw rows that arrived late, behind an earlier horizon, merge into the stored bucket
        // with the same rule readers use.
        let mut row = bucket.clone();
        row.end_ms = row.start_ms + ROLLUP_BUCKET_MS;
        if let Some(mut existing) = store.rollup(node.id, bucket.start_ms)? {
            merge(&mut existing, bucket);
            row = existing;
        }
        store.put_rollup(node.id, &row)?;
        progress.rollups_written += 1;
    }
    // The value in force at `end` keeps the step function exact from there on. A row at exactly
    // `end` already says it.
    if let Some(last) = last
        && node.deleted_ms.is_none_or(|deleted| deleted > end_ms)
        && store.put_keyframe(node.id, end_ms, &last)?
    {
        progress.keyframes_written += 1;
    }
    progress.raw_rows_deleted = store.delete_raw_before(node.id, end_ms)?;
    Ok(progress)
}
