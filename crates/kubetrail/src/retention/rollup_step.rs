//! Rolling raw usage up into hourly rollups, one bounded step at a time: the rule, written once
//! for every store. A store supplies the statements ([`RollupStore`], inside one write
//! transaction); this module decides which node's rows go, where a chunk ends, what the rollups
//! hold (the integrator `query nodes` runs on raw rows), and where the keyframe goes.
//!
//! The rule is handed to the store ([`roll_up`] -> `HistoryWriter::roll_up`), which opens the
//! transaction, runs it on its statements and commits: the store never names retention.

use crate::model::rollup::{ROLLUP_BUCKET_MS, RollupProgress, floor_to_bucket, merge};
use crate::model::utilisation::{Grid, Intervals, NodeIntegrator, UsageSample};
pub use crate::store::rollup::{NodeLife, RollupStore};
use crate::store::{HistoryWriter, StoreError};

/// Most buckets one node's chunk may span (keeps [`Grid::new`]'s limit out of reach when raw
/// rows are very sparse).
const MAX_CHUNK_BUCKETS: i64 = 10_000;

/// One roll-up step on `writer`, in one of its write transactions: raw rows before
/// `horizon_ms` become rollups, about `row_budget` of them. Call again until `done`.
pub fn roll_up(
    writer: &mut dyn HistoryWriter,
    horizon_ms: i64,
    row_budget: u64,
) -> Result<RollupProgress, StoreError> {
    writer.roll_up(horizon_ms, &mut |store| {
        roll_up_step(store, horizon_ms, row_budget)
    })
}

/// Rolls raw rows before `horizon_ms` up, node by node, until about `row_budget` raw rows have
/// been replaced, over the statements of one store transaction. Call again until `done`.
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
