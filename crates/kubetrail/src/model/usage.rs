//! Measured usage from the metrics API (`metrics.k8s.io`): the samples the recorder hands to
//! the store, the filter and rows of `query usage`, and the figures a report computes over
//! samples (average, exact nearest-rank percentile, max). Requests are the scheduler's view;
//! these are what the containers really used, as metrics-server last measured them.

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

/// One stored container sample, with what the report groups it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSample {
    pub pod_uid: String,
    pub namespace: String,
    pub pod: String,
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    pub node: Option<String>,
    pub container: String,
    pub at_ms: i64,
    pub window_ms: i64,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    /// The pod's effective requests and limits now (the pods table's).
    pub pod_cpu_request_millis: i64,
    pub pod_memory_request_bytes: i64,
    pub pod_cpu_limit_millis: i64,
    pub pod_memory_limit_bytes: i64,
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
