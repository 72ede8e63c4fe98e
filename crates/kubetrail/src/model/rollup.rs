//! Hourly rollups of node utilisation (`node_usage_rollup`): what a rollup is, the hourly
//! grid they sit on ([`floor_to_bucket`]), and the rules every reader and the roll-up step share
//! to combine them ([`merge`], [`regrid`]). Plain data and pure rules, here because three
//! layers use them: the store reads and writes rollups (`store::sqlite::rollup`), the node
//! report merges them with raw rows (`query::nodes`), and retention makes them
//! (`retention::rollup_step`) and keeps the newest within the size budget.
//!
//! Rolling up reuses the integrator that `query nodes` runs on raw rows
//! (`model::utilisation::NodeIntegrator`), so a rollup holds exactly what a 1h query over the raw rows would have
//! printed. Before it deletes a node's raw rows older than a point `end`, it writes the value in
//! force at `end` as a keyframe row at `end`: the step function stays exact from `end` on, and the
//! rolled-up range (before `end`) and the raw range (from `end`) never overlap.
//!
//! Every step is one short transaction over a bounded number of raw rows, so the recorder keeps
//! committing and queries keep answering while a large backlog is rolled up.

use super::utilisation::{BucketUsage, Grid, RatioStat, Stat};

/// The width of a rollup bucket: an hour, aligned to the hour (UTC).
pub const ROLLUP_BUCKET_MS: i64 = 3_600_000;

/// The newest rollups the size budget never deletes, counted back from the newest bucket.
pub const KEEP_NEWEST_ROLLUPS_MS: i64 = 7 * 86_400_000;

/// The start of the rollup bucket holding `t_ms`.
pub fn floor_to_bucket(t_ms: i64) -> i64 {
    t_ms.div_euclid(ROLLUP_BUCKET_MS) * ROLLUP_BUCKET_MS
}

/// One rollup row with its node, as `store::sqlite::rollup::read_rollups` returns it. `usage.start_ms`/`end_ms` are
/// the bucket's bounds and `usage.present_ms` is the time the node was covered in it.
#[derive(Clone, Debug, PartialEq)]
pub struct RollupRow {
    pub node_id: i64,
    pub node_uid: String,
    pub node_name: String,
    pub node_created_ms: i64,
    pub node_deleted_ms: Option<i64>,
    pub usage: BucketUsage,
}

/// What one rollup step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RollupProgress {
    /// Raw `node_usage` rows deleted (replaced by rollups).
    pub raw_rows_deleted: u64,
    /// Rollup rows written (new or merged).
    pub rollups_written: u64,
    /// Keyframes written at a horizon.
    pub keyframes_written: u64,
    /// Whether every node's raw rows are now at or after the horizon.
    pub done: bool,
}

impl RollupProgress {
    pub fn add(&mut self, other: &RollupProgress) {
        self.raw_rows_deleted += other.raw_rows_deleted;
        self.rollups_written += other.rollups_written;
        self.keyframes_written += other.keyframes_written;
    }
}

/// Combines `other` into `into` as if both had been integrated together: present time adds up,
/// averages are weighted by present time, peaks take the max, bounds widen. Ratios are weighted
/// by present time too (exact unless allocatable was unknown for part of a bucket).
pub fn merge(into: &mut BucketUsage, other: &BucketUsage) {
    if other.present_ms <= 0 {
        return;
    }
    if into.present_ms <= 0 {
        let (start, end) = (
            into.start_ms.min(other.start_ms),
            into.end_ms.max(other.end_ms),
        );
        *into = other.clone();
        into.start_ms = start;
        into.end_ms = end;
        return;
    }
    let (a, b) = (into.present_ms as f64, other.present_ms as f64);
    let stat = |x: &mut Stat, y: &Stat| {
        x.avg = (x.avg * a + y.avg * b) / (a + b);
        x.peak = x.peak.max(y.peak);
    };
    let ratio = |x: &mut RatioStat, y: &RatioStat| {
        x.avg = match (x.avg, y.avg) {
            (Some(p), Some(q)) => Some((p * a + q * b) / (a + b)),
            (p, q) => p.or(q),
        };
        x.peak = match (x.peak, y.peak) {
            (Some(p), Some(q)) => Some(p.max(q)),
            (p, q) => p.or(q),
        };
    };
    stat(&mut into.pods, &other.pods);
    stat(&mut into.cpu_requested, &other.cpu_requested);
    stat(&mut into.memory_requested, &other.memory_requested);
    stat(&mut into.cpu_limits, &other.cpu_limits);
    stat(&mut into.memory_limits, &other.memory_limits);
    stat(&mut into.cpu_allocatable, &other.cpu_allocatable);
    stat(&mut into.memory_allocatable, &other.memory_allocatable);
    ratio(&mut into.cpu_requested_ratio, &other.cpu_requested_ratio);
    ratio(
        &mut into.memory_requested_ratio,
        &other.memory_requested_ratio,
    );
    ratio(&mut into.cpu_limits_ratio, &other.cpu_limits_ratio);
    ratio(&mut into.memory_limits_ratio, &other.memory_limits_ratio);
    into.present_ms += other.present_ms;
    into.start_ms = into.start_ms.min(other.start_ms);
    into.end_ms = into.end_ms.max(other.end_ms);
}

/// Places one node's rollup buckets (in time order) on a query grid, merging those that fall in
/// the same grid bucket. With a step of an hour or more (a multiple of an hour, as 1h and 1d
/// are) every rollup lies inside one grid bucket and the result is exact; with a finer step the
/// rollups are returned at their own hourly resolution, clipped to the window.
pub fn regrid(grid: &Grid, rollups: impl IntoIterator<Item = BucketUsage>) -> Vec<BucketUsage> {
    let mut out: Vec<BucketUsage> = Vec::new();
    for rollup in rollups {
        let (start, end) = if grid.step_ms >= ROLLUP_BUCKET_MS {
            let start = rollup.start_ms.div_euclid(grid.step_ms) * grid.step_ms;
            (start, start.saturating_add(grid.step_ms))
        } else {
            (rollup.start_ms, rollup.end_ms)
        };
        let bounds = (start.max(grid.since_ms), end.min(grid.until_ms));
        match out.last_mut() {
            Some(last) if last.start_ms == bounds.0 => merge(last, &rollup),
            _ => {
                let mut bucket = rollup;
                bucket.start_ms = bounds.0;
                bucket.end_ms = bounds.1;
                out.push(bucket);
            }
        }
        if let Some(last) = out.last_mut() {
            (last.start_ms, last.end_ms) = bounds;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = ROLLUP_BUCKET_MS;

    fn bucket(start_ms: i64, present_ms: i64, cpu: f64, peak: i64) -> BucketUsage {
        BucketUsage {
            start_ms,
            end_ms: start_ms + H,
            present_ms,
            cpu_requested: Stat { avg: cpu, peak },
            cpu_requested_ratio: RatioStat {
                avg: Some(cpu / 1000.0),
                peak: Some(peak as f64 / 1000.0),
            },
            ..Default::default()
        }
    }

    #[test]
    fn merge_weights_by_present_time_and_keeps_the_peak() {
        let mut a = bucket(0, H / 2, 100.0, 300);
        merge(&mut a, &bucket(H, H, 400.0, 500));
        assert_eq!(a.present_ms, H + H / 2);
        assert!((a.cpu_requested.avg - 300.0).abs() < 1e-9); // (100*0.5 + 400*1) / 1.5
        assert_eq!(a.cpu_requested.peak, 500);
        assert_eq!((a.start_ms, a.end_ms), (0, 2 * H));
        assert!((a.cpu_requested_ratio.avg.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(a.cpu_requested_ratio.peak, Some(0.5));
    }

    #[test]
    fn merging_an_empty_bucket_changes_nothing_and_into_empty_copies() {
        let mut a = bucket(0, H, 100.0, 100);
        merge(&mut a, &BucketUsage::default());
        assert_eq!(a, bucket(0, H, 100.0, 100));
        let mut empty = BucketUsage {
            start_ms: 0,
            end_ms: H,
            ..Default::default()
        };
        merge(&mut empty, &bucket(0, H, 7.0, 7));
        assert_eq!(empty.cpu_requested, Stat { avg: 7.0, peak: 7 });
    }

    #[test]
    fn regrid_sums_hours_into_days_and_keeps_hours_for_finer_steps() {
        let day = 24 * H;
        let rollups = vec![
            bucket(22 * H, H, 100.0, 100),
            bucket(23 * H, H, 300.0, 300),
            bucket(day, H, 50.0, 50),
        ];
        let daily = regrid(&Grid::new(0, 2 * day, day).unwrap(), rollups.clone());
        assert_eq!(daily.len(), 2);
        assert_eq!(
            (daily[0].start_ms, daily[0].end_ms, daily[0].present_ms),
            (0, day, 2 * H)
        );
        assert!((daily[0].cpu_requested.avg - 200.0).abs() < 1e-9);
        assert_eq!(daily[1].start_ms, day);
        let fine = regrid(
            &Grid::new(22 * H + 30 * 60_000, 2 * day, 60_000).unwrap(),
            rollups,
        );
        assert_eq!(fine.len(), 3);
        assert_eq!(
            (fine[0].start_ms, fine[0].end_ms),
            (22 * H + 30 * 60_000, 23 * H)
        );
    }
}
