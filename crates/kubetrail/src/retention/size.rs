//! The size budget (`--max-db-size`): choosing what goes when the file is over it.
//!
//! Deleting rows only puts pages on SQLite's freelist; the file keeps its size. The pass then
//! hands the free pages back and empties the write-ahead log in bounded steps, with the file
//! mechanics behind `HistoryWriter::give_back_step` and `checkpoint` (databases are created with `auto_vacuum = INCREMENTAL`).
//!
//! What goes first when the file is over budget: detail before summaries, oldest first.
//! 0. Raw measured usage (metrics API samples) is rolled up early, except the last hour: it
//!    loses only resolution, and it is the bulk of a file that samples a big cluster.
//! 1. Ended history (pods and nodes deleted longest ago) and raw utilisation, interleaved by
//!    age; raw utilisation is rolled up early rather than dropped, but never the last hour.
//! 2. Hourly rollups, oldest first, except the newest [`KEEP_NEWEST_ROLLUPS_MS`].
//!
//! The state of open pods and nodes is never touched. If the budget cannot hold it, the pass
//! stops with a warning instead.

use super::prune::PruneCounts;
use super::rollup_step::roll_up;
pub use crate::model::rollup::KEEP_NEWEST_ROLLUPS_MS;
use crate::model::rollup::{ROLLUP_BUCKET_MS, RollupProgress, floor_to_bucket};
use crate::model::usage::UsageRollupProgress;
use crate::store::{Bounds, HistoryWriter, StoreError};

/// How much raw utilisation the size budget always leaves un-rolled (before now).
const KEEP_RAW_USAGE_MS: i64 = ROLLUP_BUCKET_MS;

/// What one shrinking step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShrinkStep {
    /// The used pages fit the target; nothing was deleted.
    Fits,
    /// Ended history went.
    Pruned(PruneCounts),
    /// Raw utilisation was rolled up early.
    RolledUp(RollupProgress),
    /// Raw measured usage was rolled up early.
    UsageRolledUp(UsageRollupProgress),
    /// Old rollups went.
    RollupsExpired(u64),
    /// Over the target, and nothing more may be deleted: the rest is live state, the last
    /// hour of utilisation and the newest rollups.
    NothingLeft,
}

/// One bounded step towards `target_used_bytes` of used pages: deletes (or rolls up) about
/// `row_budget` rows of the oldest history that may go, or says that it fits or that nothing
/// more may go.
pub fn shrink_step(
    store: &mut dyn HistoryWriter,
    target_used_bytes: u64,
    now_ms: i64,
    row_budget: u64,
) -> Result<ShrinkStep, StoreError> {
    // A store without a size of its own has no budget to fit.
    match store.space()? {
        Some(space) if space.used_bytes() > target_used_bytes => {}
        _ => return Ok(ShrinkStep::Fits),
    }
    let raw_floor = floor_to_bucket(now_ms - KEEP_RAW_USAGE_MS);
    let measured = store.roll_up_usage(raw_floor, row_budget)?;
    if measured.samples_rolled_up > 0 {
        return Ok(ShrinkStep::UsageRolledUp(measured));
    }
    let bounds = store.read()?.bounds()?;
    let ended_pod = bounds.oldest_ended_pod_ms;
    let ended_node = bounds.oldest_deleted_node_with_history_ms;
    let raw = bounds.raw_from_ms.filter(|&at| at < raw_floor);

    let oldest = [ended_pod, ended_node, raw].into_iter().flatten().min();
    let Some(oldest) = oldest else {
        return shrink_rollups(store, &bounds, now_ms, row_budget);
    };
    // The next-oldest candidate of another kind bounds this step, so kinds interleave by age.
    let next_other = |own: Option<i64>| {
        [ended_pod, ended_node, raw]
            .into_iter()
            .flatten()
            .filter(|&t| Some(t) != own)
            .min()
    };
    if ended_pod == Some(oldest) {
        let cutoff = next_other(ended_pod).map_or(i64::MAX, |t| t.max(oldest + 1));
        let (counts, _) = store.prune_ended_pods(cutoff, row_budget)?;
        return Ok(ShrinkStep::Pruned(counts));
    }
    if ended_node == Some(oldest) {
        let (counts, _) = store.prune_deleted_nodes(oldest + 1, row_budget)?;
        return Ok(ShrinkStep::Pruned(counts));
    }
    // Raw utilisation: roll up about one budget's worth of the globally oldest rows.
    let nth = store.read()?.nth_raw_usage_ms(row_budget)?;
    let mut horizon = nth
        .map_or(raw_floor, floor_to_bucket)
        .max(floor_to_bucket(oldest) + ROLLUP_BUCKET_MS);
    if let Some(other) = next_other(raw) {
        horizon =
            horizon.min(floor_to_bucket(other).max(floor_to_bucket(oldest) + ROLLUP_BUCKET_MS));
    }
    let progress = roll_up(store, horizon.min(raw_floor), row_budget)?;
    Ok(ShrinkStep::RolledUp(progress))
}

fn shrink_rollups(
    store: &mut dyn HistoryWriter,
    bounds: &Bounds,
    now_ms: i64,
    row_budget: u64,
) -> Result<ShrinkStep, StoreError> {
    // Measured usage rollups older than the newest ones kept go last, after node rollups.
    let measured = |store: &mut dyn HistoryWriter| -> Result<ShrinkStep, StoreError> {
        let (deleted, _) =
            store.expire_usage_rollups(now_ms - KEEP_NEWEST_ROLLUPS_MS, row_budget)?;
        Ok(if deleted == 0 {
            ShrinkStep::NothingLeft
        } else {
            ShrinkStep::RollupsExpired(deleted)
        })
    };
    let (Some(newest), Some(oldest)) = (bounds.rolled_up_until_ms, bounds.oldest_rollup_ms) else {
        return measured(store);
    };
    let keep_from = newest - KEEP_NEWEST_ROLLUPS_MS;
    if oldest + ROLLUP_BUCKET_MS > keep_from {
        return measured(store);
    }
    // A day of the oldest rollups per step; the row budget bounds it further.
    let (deleted, _) = store.expire_rollups(oldest + 86_400_000, Some(keep_from), row_budget)?;
    if deleted == 0 {
        return measured(store);
    }
    Ok(ShrinkStep::RollupsExpired(deleted))
}
