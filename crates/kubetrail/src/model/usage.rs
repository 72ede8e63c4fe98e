//! Measured usage from the metrics API (`metrics.k8s.io`): the samples the recorder hands to
//! the store, the filter and rows of `query usage`, and the figures a report computes over
//! samples (average, exact nearest-rank percentile, max). Requests are the scheduler's view;
//! these are what the containers really used, as metrics-server last measured them.

use crate::model::{Effective, Resources};

/// One container's measured usage in one sample (a PodMetrics entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerUsageRow {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// The sample's `timestamp` (the end of its window), ms since the epoch.
    pub at_ms: i64,
    pub window_ms: i64,
    pub cpu_millis: i64,
    /// The memory working set.
    pub memory_bytes: i64,
    /// The container's own requests and limits (`spec.containers[].resources`) as the
    /// recorder's cache held them when the sample was taken; None where it holds no such pod.
    pub resources: Option<Effective>,
}

/// A container's requests and limits as four nullable columns store them (CPU request, memory
/// request, CPU limit, memory limit): all NULL for none.
pub fn resource_columns(resources: Option<Effective>) -> [Option<i64>; 4] {
    match resources {
        Some(e) => [
            Some(e.requests.cpu_millis),
            Some(e.requests.memory_bytes),
            Some(e.limits.cpu_millis),
            Some(e.limits.memory_bytes),
        ],
        None => [None; 4],
    }
}

/// The inverse of [`resource_columns`]; None unless all four are set.
pub fn resources_of_columns(columns: [Option<i64>; 4]) -> Option<Effective> {
    match columns {
        [Some(cpu), Some(memory), Some(cpu_limit), Some(memory_limit)] => Some(Effective {
            requests: Resources::new(cpu, memory),
            limits: Resources::new(cpu_limit, memory_limit),
        }),
        _ => None,
    }
}

/// One node's measured usage in one sample (a NodeMetrics entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUsageSampleRow {
    pub node: String,
    pub at_ms: i64,
    pub window_ms: i64,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

/// What one sampling of the metrics API writes, in one transaction. Pods are named by
/// namespace and name and nodes by name (the metrics API gives no uids): the store keys them
/// to the pod or node incarnation open now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageBatch {
    pub containers: Vec<ContainerUsageRow>,
    pub nodes: Vec<NodeUsageSampleRow>,
}

impl UsageBatch {
    pub fn len(&self) -> usize {
        self.containers.len() + self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What writing a [`UsageBatch`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageWriteStats {
    pub containers_written: u64,
    pub nodes_written: u64,
    /// Samples already stored (the same container or node at the same timestamp): a replay.
    pub duplicates: u64,
    /// Samples of a pod or node the store holds no open row for (not yet committed, or
    /// outside the recorder's scope): skipped.
    pub unknown: u64,
}

/// Which container samples `query usage` reads.
#[derive(Clone, Debug, Default)]
pub struct UsageFilter {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// The container a sample or rollup belongs to, with what the report groups it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageSubject {
    pub pod_uid: String,
    pub namespace: String,
    pub pod: String,
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    pub node: Option<String>,
    pub container: String,
    /// The pod's effective requests and limits now (the pods table's).
    pub pod_cpu_request_millis: i64,
    pub pod_memory_request_bytes: i64,
    pub pod_cpu_limit_millis: i64,
    pub pod_memory_limit_bytes: i64,
    /// The container's own requests and limits, the latest recorded; None for a container
    /// recorded without them (by an older kubetrail, or of a pod the recorder did not cache).
    pub container_resources: Option<Effective>,
}

/// One stored container sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSample {
    pub subject: UsageSubject,
    pub at_ms: i64,
    pub window_ms: i64,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

/// One container's rolled-up hours in a report's window, merged into one [`Hourly`] by
/// [`Hourly::merge`]: count, minimum, maximum and sum stay exact, and the high percentile is
/// the largest of the hours' (an upper bound of the window's, see [`Hourly::merge`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRollup {
    pub subject: UsageSubject,
    pub hourly: Hourly,
}

/// One stored node sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSample {
    pub node: String,
    /// The node's incarnation (a name can be reused; a uid names one node in any cluster).
    pub node_uid: String,
    pub at_ms: i64,
    pub window_ms: i64,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

/// Average, nearest-rank 95th percentile and maximum of a set of values; None when empty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub samples: u64,
    pub avg: f64,
    pub p95: i64,
    pub max: i64,
    pub min: i64,
}

/// The percentile the reports use for "high": p95 by nearest rank (the smallest value with at
/// least 95% of the samples at or below it), exact over the samples.
pub const HIGH_PERCENTILE: u32 = 95;

impl Spread {
    pub fn of(values: &mut [i64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let n = values.len();
        let sum: i128 = values.iter().map(|v| *v as i128).sum();
        Some(Spread {
            samples: n as u64,
            avg: sum as f64 / n as f64,
            p95: values[nearest_rank(n, HIGH_PERCENTILE) - 1],
            max: values[n - 1],
            min: values[0],
        })
    }
}

/// The 1-based nearest rank of percentile `p` in `n` sorted values: ceil(p/100 * n).
pub fn nearest_rank(n: usize, p: u32) -> usize {
    (n * p as usize).div_ceil(100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_exact_by_nearest_rank() {
        let mut v: Vec<i64> = (1..=100).rev().collect();
        let s = Spread::of(&mut v).unwrap();
        assert_eq!((s.min, s.p95, s.max, s.samples), (1, 95, 100, 100));
        assert_eq!(s.avg, 50.5);
        let mut one = [7];
        assert_eq!(Spread::of(&mut one).unwrap().p95, 7);
        let mut twenty: Vec<i64> = (1..=20).collect();
        assert_eq!(Spread::of(&mut twenty).unwrap().p95, 19);
        assert!(Spread::of(&mut []).is_none());
    }
}

/// One hour of one container's (or node's) samples, exact over them: what replaces them once
/// they are older than `--raw-usage-age`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hourly {
    pub samples: i64,
    pub cpu_min: i64,
    pub cpu_max: i64,
    pub cpu_sum: i64,
    pub cpu_p95: i64,
    pub memory_min: i64,
    pub memory_max: i64,
    pub memory_sum: i64,
    pub memory_p95: i64,
}

impl Hourly {
    /// The rollup of `(cpu_millis, memory_bytes)` samples; None for none.
    pub fn of(samples: &[(i64, i64)]) -> Option<Hourly> {
        let (mut cpu, mut memory): (Vec<i64>, Vec<i64>) = samples.iter().copied().unzip();
        let sum = |v: &[i64]| v.iter().sum::<i64>();
        let (cpu_sum, memory_sum) = (sum(&cpu), sum(&memory));
        let c = Spread::of(&mut cpu)?;
        let m = Spread::of(&mut memory)?;
        Some(Hourly {
            samples: c.samples as i64,
            cpu_min: c.min,
            cpu_max: c.max,
            cpu_sum,
            cpu_p95: c.p95,
            memory_min: m.min,
            memory_max: m.max,
            memory_sum,
            memory_p95: m.p95,
        })
    }

    /// The union of two disjoint sets of samples of one series (two hours of a container, or
    /// a late sample and its hour). Count, minimum, maximum and sum stay exact. The union's
    /// high percentile is at most the larger of the two: by nearest rank at most 5% of each
    /// set lies above its own p95, so at most 5% of the union lies above the larger one. That
    /// upper bound is what is kept.
    pub fn merge(self, other: Hourly) -> Hourly {
        if self.samples <= 0 {
            return other;
        }
        if other.samples <= 0 {
            return self;
        }
        Hourly {
            samples: self.samples + other.samples,
            cpu_min: self.cpu_min.min(other.cpu_min),
            cpu_max: self.cpu_max.max(other.cpu_max),
            cpu_sum: self.cpu_sum + other.cpu_sum,
            cpu_p95: self.cpu_p95.max(other.cpu_p95),
            memory_min: self.memory_min.min(other.memory_min),
            memory_max: self.memory_max.max(other.memory_max),
            memory_sum: self.memory_sum + other.memory_sum,
            memory_p95: self.memory_p95.max(other.memory_p95),
        }
    }

    /// Two series sampled at the same times, added sample by sample (the containers of one
    /// pod, when only their rollups are left). The sum stays exact and the sample count is
    /// the larger of the two. The sum of the maxima is an upper bound of the total's maximum,
    /// the sum of the minima a lower bound of its minimum, and the sum of the p95s an
    /// estimate of its p95 (the containers' peaks may or may not coincide).
    pub fn stack(self, other: Hourly) -> Hourly {
        if self.samples <= 0 {
            return other;
        }
        if other.samples <= 0 {
            return self;
        }
        Hourly {
            samples: self.samples.max(other.samples),
            cpu_min: self.cpu_min + other.cpu_min,
            cpu_max: self.cpu_max + other.cpu_max,
            cpu_sum: self.cpu_sum + other.cpu_sum,
            cpu_p95: self.cpu_p95 + other.cpu_p95,
            memory_min: self.memory_min + other.memory_min,
            memory_max: self.memory_max + other.memory_max,
            memory_sum: self.memory_sum + other.memory_sum,
            memory_p95: self.memory_p95 + other.memory_p95,
        }
    }
}

#[cfg(test)]
mod hourly_tests {
    use super::*;

    /// 20 values each; the merged p95 is checked against the exact p95 of the union.
    #[test]
    fn a_merge_is_exact_but_for_p95_which_it_bounds_from_above() {
        let a: Vec<(i64, i64)> = (1..=20).map(|v| (v, 100 - v)).collect();
        let b: Vec<(i64, i64)> = (1..=20).map(|v| (v * 3, v * v)).collect();
        let merged = Hourly::of(&a).unwrap().merge(Hourly::of(&b).unwrap());
        let both: Vec<(i64, i64)> = a.iter().chain(&b).copied().collect();
        let exact = Hourly::of(&both).unwrap();
        assert_eq!(
            (
                merged.samples,
                merged.cpu_min,
                merged.cpu_max,
                merged.cpu_sum
            ),
            (exact.samples, exact.cpu_min, exact.cpu_max, exact.cpu_sum)
        );
        assert_eq!(
            (merged.memory_min, merged.memory_max, merged.memory_sum),
            (exact.memory_min, exact.memory_max, exact.memory_sum)
        );
        // cpu: p95s 19 and 57, the union's is 54; memory: 98 and 361, the union's 324.
        assert_eq!((exact.cpu_p95, merged.cpu_p95), (54, 57));
        assert_eq!((exact.memory_p95, merged.memory_p95), (324, 361));
        assert_eq!(Hourly::default().merge(exact), exact);
        assert_eq!(exact.merge(Hourly::default()), exact);
    }

    #[test]
    fn stacked_containers_sum_exactly_and_bound_the_peak() {
        let app: Vec<(i64, i64)> = vec![(10, 1), (50, 2), (20, 3)];
        let side: Vec<(i64, i64)> = vec![(40, 5), (5, 5), (30, 5)];
        let stacked = Hourly::of(&app).unwrap().stack(Hourly::of(&side).unwrap());
        let pod: Vec<(i64, i64)> = app
            .iter()
            .zip(&side)
            .map(|(a, s)| (a.0 + s.0, a.1 + s.1))
            .collect();
        let exact = Hourly::of(&pod).unwrap();
        assert_eq!(stacked.samples, 3);
        assert_eq!(
            (stacked.cpu_sum, stacked.memory_sum),
            (exact.cpu_sum, exact.memory_sum)
        );
        // The pod's largest total is 55; the containers' maxima add to 90.
        assert_eq!((exact.cpu_max, stacked.cpu_max), (55, 90));
        assert!(stacked.cpu_min <= exact.cpu_min);
    }
}

/// One stored hourly rollup of a container, with what reports group it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerHour {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub hour_ms: i64,
    pub hourly: Hourly,
}

/// One stored hourly rollup of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHour {
    pub node: String,
    pub node_uid: String,
    pub hour_ms: i64,
    pub hourly: Hourly,
}

/// What one roll-up step of measured usage did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct UsageRollupProgress {
    /// Raw samples replaced by rollups.
    pub samples_rolled_up: u64,
    /// Hourly rows written.
    pub hours_written: u64,
    pub done: bool,
}

impl UsageRollupProgress {
    pub fn add(&mut self, other: &UsageRollupProgress) {
        self.samples_rolled_up += other.samples_rolled_up;
        self.hours_written += other.hours_written;
        self.done = other.done;
    }
}
