//! Node utilisation per time bucket, integrated exactly from the recorded step function. Pure:
//! samples in, bucket statistics out, no I/O (the SQL side is `query::nodes`).
//!
//! A node's `node_usage` rows form a step function: each row's values hold from its `at_ms`
//! until the node's next row, and the last row holds until the node is deleted (or the end of
//! the window). Within one bucket this module computes, for every quantity, the time-weighted
//! average and the peak over the time the node existed and had a value ("present" time). A node
//! deleted mid-bucket is averaged over the part of the bucket it existed in, not diluted by the
//! rest; ratios against allocatable are integrated segment by segment, so a change of allocatable
//! inside a bucket is weighted correctly.
//!
//! Buckets are aligned to multiples of the step since the Unix epoch (1h buckets start on the
//! hour, 1d buckets at midnight UTC) and clipped to the window, so the first and last bucket may
//! be shorter than the step.

use std::sync::Arc;

use crate::model::Resources;

/// The most buckets one node may produce; a finer step is almost surely a typo (1s over a month).
pub const MAX_BUCKETS: i64 = 100_000;

/// The bucket layout: `[since_ms, until_ms)` cut at multiples of `step_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub since_ms: i64,
    pub until_ms: i64,
    pub step_ms: i64,
}

impl Grid {
    /// Refuses an empty or inverted window, a step <= 0 and more than [`MAX_BUCKETS`] buckets.
    pub fn new(since_ms: i64, until_ms: i64, step_ms: i64) -> Result<Grid, String> {
        if step_ms <= 0 {
            return Err("--step must be longer than zero".into());
        }
        if until_ms < since_ms {
            return Err("the window ends before it starts".into());
        }
        let grid = Grid {
            since_ms,
            until_ms,
            step_ms,
        };
        let buckets = grid.bucket_count();
        if buckets > MAX_BUCKETS {
            return Err(format!(
                "the window holds {buckets} buckets of that --step per node (at most \
                 {MAX_BUCKETS}); use a larger --step or a shorter --since/--until window"
            ));
        }
        Ok(grid)
    }

    fn index_of(&self, t_ms: i64) -> i64 {
        t_ms.div_euclid(self.step_ms)
    }

    pub fn bucket_count(&self) -> i64 {
        if self.until_ms <= self.since_ms {
            return 0;
        }
        self.index_of(self.until_ms - 1) - self.index_of(self.since_ms) + 1
    }

    /// The clipped `[start, end)` of the bucket with this epoch index.
    fn bounds(&self, index: i64) -> (i64, i64) {
        let start = index.saturating_mul(self.step_ms);
        let end = start.saturating_add(self.step_ms);
        (start.max(self.since_ms), end.min(self.until_ms))
    }
}

/// One `node_usage` row: the values in force from `at_ms` on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageSample {
    pub at_ms: i64,
    pub requested: Resources,
    pub limits: Resources,
    pub pod_count: i64,
    pub allocatable: Resources,
}

/// Time-weighted average and peak of one quantity over a bucket's present time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    pub avg: f64,
    pub peak: i64,
}

/// A quantity divided by allocatable. `None` when allocatable was 0 all along (unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RatioStat {
    pub avg: Option<f64>,
    pub peak: Option<f64>,
}

/// One node's statistics over one bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketUsage {
    pub start_ms: i64,
    pub end_ms: i64,
    /// How long within the bucket the node existed and had a recorded value; the averages are
    /// over this time.
    pub present_ms: i64,
    pub pods: Stat,
    pub cpu_requested: Stat,
    pub memory_requested: Stat,
    pub cpu_limits: Stat,
    pub memory_limits: Stat,
    pub cpu_allocatable: Stat,
    pub memory_allocatable: Stat,
    pub cpu_requested_ratio: RatioStat,
    pub memory_requested_ratio: RatioStat,
    pub cpu_limits_ratio: RatioStat,
    pub memory_limits_ratio: RatioStat,
}

#[derive(Clone, Copy)]
struct Integral {
    /// Sum of value x milliseconds; i128 because bytes x a month of ms overflows i64.
    sum: i128,
    /// i64::MIN until the first value (cheaper than an Option on this hot path).
    peak: i64,
}

impl Default for Integral {
    fn default() -> Self {
        Integral {
            sum: 0,
            peak: i64::MIN,
        }
    }
}

impl Integral {
    fn add(&mut self, value: i64, ms: i64) {
        self.sum += value as i128 * ms as i128;
        self.peak = self.peak.max(value);
    }

    fn stat(&self, present_ms: i64) -> Stat {
        Stat {
            avg: self.sum as f64 / present_ms as f64,
            peak: if self.peak == i64::MIN { 0 } else { self.peak },
        }
    }
}

/// The integral of value / allocatable. Allocatable changes rarely, so values are integrated
/// exactly per run of constant allocatable and divided once per run, not once per sample: this
/// is the inner loop of a month-long report over millions of rows.
#[derive(Clone, Copy, Default)]
struct RatioIntegral {
    run_allocatable: i64,
    run_sum: i128,
    run_ms: i64,
    run_peak: i64,
    sum: f64,
    ms: i64,
    peak: Option<f64>,
}

impl RatioIntegral {
    fn add(&mut self, value: i64, allocatable: i64, ms: i64) {
        if allocatable <= 0 {
            return;
        }
        if allocatable != self.run_allocatable {
            self.close_run();
            self.run_allocatable = allocatable;
            self.run_peak = value;
        }
        self.run_sum += value as i128 * ms as i128;
        self.run_ms += ms;
        self.run_peak = self.run_peak.max(value);
    }

    fn close_run(&mut self) {
        if self.run_ms > 0 {
            let allocatable = self.run_allocatable as f64;
            self.sum += self.run_sum as f64 / allocatable;
            self.ms += self.run_ms;
            let peak = self.run_peak as f64 / allocatable;
            self.peak = Some(self.peak.map_or(peak, |p| p.max(peak)));
        }
        self.run_sum = 0;
        self.run_ms = 0;
    }

    fn stat(&self) -> RatioStat {
        let mut done = *self;
        done.close_run();
        RatioStat {
            avg: (done.ms > 0).then(|| done.sum / done.ms as f64),
            peak: done.peak,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Accumulator {
    present_ms: i64,
    pods: Integral,
    cpu_requested: Integral,
    memory_requested: Integral,
    cpu_limits: Integral,
    memory_limits: Integral,
    cpu_allocatable: Integral,
    memory_allocatable: Integral,
    cpu_requested_ratio: RatioIntegral,
    memory_requested_ratio: RatioIntegral,
    cpu_limits_ratio: RatioIntegral,
    memory_limits_ratio: RatioIntegral,
}

impl Accumulator {
    fn add(&mut self, s: &UsageSample, ms: i64) {
        self.present_ms += ms;
        self.pods.add(s.pod_count, ms);
        self.cpu_requested.add(s.requested.cpu_millis, ms);
        self.memory_requested.add(s.requested.memory_bytes, ms);
        self.cpu_limits.add(s.limits.cpu_millis, ms);
        self.memory_limits.add(s.limits.memory_bytes, ms);
        self.cpu_allocatable.add(s.allocatable.cpu_millis, ms);
        self.memory_allocatable.add(s.allocatable.memory_bytes, ms);
        self.cpu_requested_ratio
            .add(s.requested.cpu_millis, s.allocatable.cpu_millis, ms);
        self.memory_requested_ratio
            .add(s.requested.memory_bytes, s.allocatable.memory_bytes, ms);
        self.cpu_limits_ratio
            .add(s.limits.cpu_millis, s.allocatable.cpu_millis, ms);
        self.memory_limits_ratio
            .add(s.limits.memory_bytes, s.allocatable.memory_bytes, ms);
    }

    fn finish(&self, (start_ms, end_ms): (i64, i64)) -> BucketUsage {
        let p = self.present_ms;
        BucketUsage {
            start_ms,
            end_ms,
            present_ms: p,
            pods: self.pods.stat(p),
            cpu_requested: self.cpu_requested.stat(p),
            memory_requested: self.memory_requested.stat(p),
            cpu_limits: self.cpu_limits.stat(p),
            memory_limits: self.memory_limits.stat(p),
            cpu_allocatable: self.cpu_allocatable.stat(p),
            memory_allocatable: self.memory_allocatable.stat(p),
            cpu_requested_ratio: self.cpu_requested_ratio.stat(),
            memory_requested_ratio: self.memory_requested_ratio.stat(),
            cpu_limits_ratio: self.cpu_limits_ratio.stat(),
            memory_limits_ratio: self.memory_limits_ratio.stat(),
        }
    }
}

/// Covered time as `[from_ms, to_ms)` intervals in time order (the recording sessions).
pub type Intervals = Arc<[(i64, i64)]>;

/// Integrates one node's samples, pushed in time order, into buckets. Buckets are emitted as
/// soon as they are complete, so memory does not grow with the window.
pub struct NodeIntegrator {
    grid: Grid,
    /// Where the node's step function may count: its lifetime clipped to the window.
    from_ms: i64,
    to_ms: i64,
    /// The recorded (covered) intervals, in time order; None counts all time. Outside them the
    /// value is unknown, not the last one recorded (`query::coverage`).
    covered: Option<Arc<[(i64, i64)]>>,
    /// The first covered interval that may still overlap a segment (segments come in order).
    cursor: usize,
    current: Option<UsageSample>,
    bucket: Option<(i64, Accumulator)>,
}

impl NodeIntegrator {
    /// `created_ms`/`deleted_ms` are the node's lifetime (`deleted_ms: None` = still there).
    pub fn new(grid: Grid, created_ms: i64, deleted_ms: Option<i64>) -> NodeIntegrator {
        NodeIntegrator {
            grid,
            from_ms: created_ms.max(grid.since_ms),
            to_ms: deleted_ms.unwrap_or(i64::MAX).min(grid.until_ms),
            covered: None,
            cursor: 0,
            current: None,
            bucket: None,
        }
    }

    /// Counts only time inside these `[from, to)` intervals (sorted, not overlapping): the
    /// recording sessions. `None` counts all time.
    pub fn covering(mut self, covered: Option<Arc<[(i64, i64)]>>) -> NodeIntegrator {
        self.covered = covered;
        self.cursor = 0;
        self
    }

    /// Adds the next sample (at or after the previous one). The previous sample's value holds
    /// until this one's `at_ms`.
    pub fn push(&mut self, sample: UsageSample, emit: &mut impl FnMut(BucketUsage)) {
        if let Some(previous) = self.current.replace(sample) {
            self.add_segment(&previous, previous.at_ms, sample.at_ms, emit);
        }
    }

    /// Closes the last segment at the end of the node's life (or of the window) and emits the
    /// last bucket.
    pub fn finish(mut self, emit: &mut impl FnMut(BucketUsage)) {
        if let Some(last) = self.current.take() {
            self.add_segment(&last, last.at_ms, self.to_ms, emit);
        }
        if let Some((index, acc)) = self.bucket.take() {
            emit(acc.finish(self.grid.bounds(index)));
        }
    }

    fn add_segment(
        &mut self,
        sample: &UsageSample,
        from: i64,
        to: i64,
        emit: &mut impl FnMut(BucketUsage),
    ) {
        let from = from.max(self.from_ms);
        let to = to.min(self.to_ms);
        if from >= to {
            return;
        }
        let Some(count) = self.covered.as_ref().map(|c| c.len()) else {
            self.add_piece(sample, from, to, emit);
            return;
        };
        // Copy each interval out before adding, so `self` is not borrowed across the call.
        let interval = |me: &Self, i: usize| me.covered.as_ref().map_or((0, 0), |c| c[i]);
        while self.cursor < count && interval(self, self.cursor).1 <= from {
            self.cursor += 1;
        }
        let mut i = self.cursor;
        while i < count {
            let (a, b) = interval(self, i);
            if a >= to {
                break;
            }
            let (a, b) = (a.max(from), b.min(to));
            if a < b {
                self.add_piece(sample, a, b, emit);
            }
            i += 1;
        }
    }

    /// Adds `[from, to)` (inside the node's life and the recorded time) to its buckets.
    fn add_piece(
        &mut self,
        sample: &UsageSample,
        from: i64,
        end: i64,
        emit: &mut impl FnMut(BucketUsage),
    ) {
        let mut t = from;
        while t < end {
            let index = self.grid.index_of(t);
            let piece_end = self.grid.bounds(index).1.min(end);
            match &mut self.bucket {
                Some((current, acc)) if *current == index => acc.add(sample, piece_end - t),
                slot => {
                    if let Some((done, acc)) = slot.take() {
                        emit(acc.finish(self.grid.bounds(done)));
                    }
                    let mut acc = Accumulator::default();
                    acc.add(sample, piece_end - t);
                    *slot = Some((index, acc));
                }
            }
            t = piece_end;
        }
    }
}

/// Convenience for tests and small callers: all buckets of one node.
pub fn integrate(
    grid: Grid,
    created_ms: i64,
    deleted_ms: Option<i64>,
    samples: &[UsageSample],
) -> Vec<BucketUsage> {
    let mut out = Vec::new();
    let mut emit = |b| out.push(b);
    let mut node = NodeIntegrator::new(grid, created_ms, deleted_ms);
    for s in samples {
        node.push(*s, &mut emit);
    }
    node.finish(&mut emit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const M: i64 = 60_000;

    fn sample(at_ms: i64, cpu: i64, pods: i64, alloc_cpu: i64) -> UsageSample {
        UsageSample {
            at_ms,
            requested: Resources::new(cpu, cpu * 1000),
            limits: Resources::new(2 * cpu, 0),
            pod_count: pods,
            allocatable: Resources::new(alloc_cpu, alloc_cpu * 1000),
        }
    }

    #[test]
    fn the_step_function_stops_at_the_end_of_recording_and_skips_its_gaps() {
        // Recorded 0:00-0:30 and 1:30-2:00; the node's only row (at 0) would otherwise hold on
        // through the gap and after the end of recording, to the end of the window at 3:00.
        let g = Grid::new(0, 3 * H, H).unwrap();
        let mut out = Vec::new();
        let covered: Arc<[(i64, i64)]> = vec![(0, 30 * M), (H + 30 * M, 2 * H)].into();
        let mut node = NodeIntegrator::new(g, 0, None).covering(Some(covered));
        node.push(sample(0, 400, 4, 1000), &mut |b| out.push(b));
        node.finish(&mut |b| out.push(b));
        let present: Vec<(i64, i64)> = out.iter().map(|b| (b.start_ms, b.present_ms)).collect();
        assert_eq!(present, vec![(0, 30 * M), (H, 30 * M)]);
        assert_eq!(out[0].cpu_requested.avg, 400.0);
    }

    #[test]
    fn grid_aligns_to_the_epoch_and_clips() {
        let g = Grid::new(30 * M, 3 * H + 10 * M, H).unwrap();
        assert_eq!(g.bucket_count(), 4);
        assert_eq!(g.bounds(0), (30 * M, H));
        assert_eq!(g.bounds(3), (3 * H, 3 * H + 10 * M));
        assert!(
            Grid::new(0, 100 * 86_400_000, 1)
                .unwrap_err()
                .contains("--step")
        );
        assert!(Grid::new(0, H, 0).is_err());
    }

    #[test]
    fn the_value_in_force_at_a_bucket_start_is_the_last_row_before_it() {
        // 100m from before the window, 300m from 0:30, 500m from 1:15; buckets [0,1h), [1h,2h).
        let g = Grid::new(0, 2 * H, H).unwrap();
        let out = integrate(
            g,
            -H,
            None,
            &[
                sample(-H, 100, 1, 1000),
                sample(30 * M, 300, 3, 1000),
                sample(H + 15 * M, 500, 5, 1000),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].start_ms, out[0].end_ms, out[0].present_ms),
            (0, H, H)
        );
        assert_eq!(
            out[0].cpu_requested,
            Stat {
                avg: 200.0,
                peak: 300
            }
        ); // (100*30 + 300*30)/60
        assert_eq!(out[0].pods, Stat { avg: 2.0, peak: 3 });
        assert_eq!(out[0].cpu_limits.peak, 600);
        assert!((out[0].cpu_requested_ratio.avg.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(out[0].cpu_requested_ratio.peak, Some(0.3));
        assert_eq!(
            out[1].cpu_requested,
            Stat {
                avg: 450.0,
                peak: 500
            }
        ); // (300*15 + 500*45)/60
        assert_eq!(
            out[1].memory_requested,
            Stat {
                avg: 450_000.0,
                peak: 500_000
            }
        );
    }

    #[test]
    fn a_node_deleted_mid_bucket_counts_only_while_it_exists() {
        let g = Grid::new(0, 2 * H, H).unwrap();
        let out = integrate(
            g,
            0,
            Some(H + 20 * M),
            &[sample(0, 400, 4, 1000), sample(H, 200, 2, 1000)],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].present_ms, 20 * M);
        assert_eq!(
            out[1].cpu_requested,
            Stat {
                avg: 200.0,
                peak: 200
            }
        );
    }

    #[test]
    fn a_node_added_mid_bucket_and_rows_after_deletion_are_ignored() {
        let g = Grid::new(0, H, H).unwrap();
        let out = integrate(
            g,
            45 * M,
            Some(50 * M),
            &[sample(45 * M, 100, 1, 1000), sample(55 * M, 900, 9, 1000)],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].present_ms, 5 * M);
        assert_eq!(
            out[0].cpu_requested,
            Stat {
                avg: 100.0,
                peak: 100
            }
        );
    }

    #[test]
    fn an_allocatable_change_weights_ratios_per_segment() {
        // 500m of 1000m for 30 min, then 500m of 2000m for 30 min: ratio 0.5 then 0.25.
        let g = Grid::new(0, H, H).unwrap();
        let out = integrate(
            g,
            0,
            None,
            &[sample(0, 500, 1, 1000), sample(30 * M, 500, 1, 2000)],
        );
        assert_eq!(out[0].cpu_requested_ratio.avg, Some(0.375));
        assert_eq!(out[0].cpu_requested_ratio.peak, Some(0.5));
        assert_eq!(
            out[0].cpu_allocatable,
            Stat {
                avg: 1500.0,
                peak: 2000
            }
        );
    }

    #[test]
    fn buckets_without_the_node_are_not_emitted_and_zero_allocatable_has_no_ratio() {
        let g = Grid::new(0, 3 * H, H).unwrap();
        let out = integrate(g, 2 * H, None, &[sample(2 * H, 100, 1, 0)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start_ms, 2 * H);
        assert_eq!(
            out[0].cpu_requested_ratio,
            RatioStat {
                avg: None,
                peak: None
            }
        );
    }
}
