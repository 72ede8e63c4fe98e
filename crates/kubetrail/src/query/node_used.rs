//! Measured usage in `query nodes`: what each node *used* (metrics API samples, CPU and memory
//! working set) per bucket, beside what its pods requested. Read in the report's setup
//! transaction, with the raw samples and their hourly rollups together, so that a retention
//! step that rolls an hour up meanwhile can never count it twice or not at all.
//!
//! The figures are over the samples in the bucket, not time-weighted: the recorder samples at
//! a fixed interval, so each sample stands for the same time.
//! - average: the mean of the samples (an hourly rollup adds its sum and count, so a rolled-up
//!   hour averages exactly as its raw samples did);
//! - peak: the largest sample (a rollup's maximum).
//!
//! A rolled-up hour counts in the bucket that holds its start, so a `--step` finer than an
//! hour shows each hour's figures in its first bucket; the report's resolution note says which
//! part of the window is rolled up.

use std::collections::HashMap;

use crate::model::usage::{Hourly, NodeHour, NodeSample};
use crate::model::utilisation::Grid;

/// Samples of one node in one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Used {
    pub samples: i64,
    pub cpu_sum: i64,
    pub cpu_max: i64,
    pub memory_sum: i64,
    pub memory_max: i64,
}

impl Used {
    fn add_sample(&mut self, cpu: i64, memory: i64) {
        self.add_hour(&Hourly {
            samples: 1,
            cpu_min: cpu,
            cpu_max: cpu,
            cpu_sum: cpu,
            cpu_p95: cpu,
            memory_min: memory,
            memory_max: memory,
            memory_sum: memory,
            memory_p95: memory,
        });
    }

    fn add_hour(&mut self, h: &Hourly) {
        if h.samples <= 0 {
            return;
        }
        self.cpu_max = if self.samples == 0 {
            h.cpu_max
        } else {
            self.cpu_max.max(h.cpu_max)
        };
        self.memory_max = if self.samples == 0 {
            h.memory_max
        } else {
            self.memory_max.max(h.memory_max)
        };
        self.samples += h.samples;
        self.cpu_sum += h.cpu_sum;
        self.memory_sum += h.memory_sum;
    }

    pub fn cpu_avg(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.cpu_sum as f64 / self.samples as f64)
    }

    pub fn memory_avg(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.memory_sum as f64 / self.samples as f64)
    }
}

/// Every node's measured usage per bucket of the grid, by node uid and bucket start.
#[derive(Debug, Default)]
pub struct UsedByBucket {
    buckets: HashMap<(String, i64), Used>,
}

impl UsedByBucket {
    /// Adds raw samples and hourly rollups inside the grid's window.
    pub fn collect(
        grid: &Grid,
        samples: impl IntoIterator<Item = NodeSample>,
        hours: impl IntoIterator<Item = NodeHour>,
    ) -> UsedByBucket {
        let mut out = UsedByBucket::default();
        let start_of = |at_ms: i64| -> Option<i64> {
            (at_ms >= grid.since_ms && at_ms < grid.until_ms)
                .then(|| grid.since_ms + (at_ms - grid.since_ms) / grid.step_ms * grid.step_ms)
        };
        for s in samples {
            if let Some(start) = start_of(s.at_ms) {
                out.buckets
                    .entry((s.node_uid, start))
                    .or_default()
                    .add_sample(s.cpu_millis, s.memory_bytes);
            }
        }
        for h in hours {
            if let Some(start) = start_of(h.hour_ms) {
                out.buckets
                    .entry((h.node_uid, start))
                    .or_default()
                    .add_hour(&h.hourly);
            }
        }
        out
    }

    /// The node's usage in the bucket that starts at `start_ms`; None when nothing was
    /// measured there.
    pub fn get(&self, node_uid: &str, start_ms: i64) -> Option<&Used> {
        self.buckets.get(&(node_uid.to_string(), start_ms))
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(uid: &str, at_ms: i64, cpu: i64, memory: i64) -> NodeSample {
        NodeSample {
            node: "n".into(),
            node_uid: uid.into(),
            at_ms,
            window_ms: 15_000,
            cpu_millis: cpu,
            memory_bytes: memory,
        }
    }

    #[test]
    fn raw_samples_and_rolled_up_hours_add_up_per_bucket() {
        let grid = Grid::new(0, 3 * 3_600_000, 3_600_000).unwrap();
        let hour = NodeHour {
            node: "n".into(),
            node_uid: "a".into(),
            hour_ms: 0,
            hourly: Hourly {
                samples: 3,
                cpu_min: 100,
                cpu_max: 300,
                cpu_sum: 600,
                cpu_p95: 300,
                memory_min: 10,
                memory_max: 30,
                memory_sum: 60,
                memory_p95: 30,
            },
        };
        let used = UsedByBucket::collect(
            &grid,
            [
                sample("a", 3_600_000, 500, 50),
                sample("a", 3_630_000, 100, 70),
                sample("b", 3_600_000, 7, 7),
                // Outside the window: not counted.
                sample("a", 3 * 3_600_000, 9_999, 9_999),
            ],
            [hour],
        );
        let first = used.get("a", 0).unwrap();
        assert_eq!(
            (first.samples, first.cpu_avg(), first.cpu_max),
            (3, Some(200.0), 300)
        );
        let second = used.get("a", 3_600_000).unwrap();
        assert_eq!(second.cpu_avg(), Some(300.0));
        assert_eq!((second.cpu_max, second.memory_max), (500, 70));
        assert_eq!(second.memory_avg(), Some(60.0));
        assert_eq!(used.get("b", 3_600_000).unwrap().cpu_max, 7);
        assert!(used.get("a", 2 * 3_600_000).is_none());
    }
}
