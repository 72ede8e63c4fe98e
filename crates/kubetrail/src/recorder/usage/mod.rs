//! The usage sampler: measured CPU and memory from the metrics API (`metrics.k8s.io/v1beta1`
//! PodMetrics and NodeMetrics, as metrics-server serves them), on a task of its own.
//!
//! - [`decode`]: the slim metrics types and their projection into rows (CPU in millicores
//!   rounded up, memory working set in bytes, the sample's timestamp and window).
//! - [`sample`]: the task that lists both every `--usage-interval`, keeps only what moved
//!   (a pod or node whose `timestamp` has not changed since the last sample is skipped), and
//!   hands one sample at a time to the writer thread. At most one sample waits for the writer:
//!   while one does, the next tick is skipped and counted, so a slow disk bounds the memory
//!   the sampler holds instead of queueing samples behind pod transitions.
//! - [`resources`]: each sampled container's own requests and limits, filled in by the event
//!   loop from its cache of the pods' specs.
//!
//! Where the metrics API is not served (404: no metrics-server) or not available (503 from the
//! aggregator: its APIService's backend is down), one line is logged, `kubetrail_usage_available`
//! is 0, and the API is asked again at the next interval; readiness is not affected, since the
//! pod and node history does not depend on it. It reads only the metrics API, never the
//! kubelets' `nodes/proxy` (which is not read-only).

pub mod decode;
pub mod resources;
pub mod sample;

use prometheus::{IntCounter, IntGauge};

/// The longest and shortest `--usage-interval`: metrics-server refreshes every 15 s by default
/// (its samples do not move faster than that); an hour is the coarsest that still feeds hourly
/// rollups.
pub const MIN_INTERVAL_SECS: u64 = 1;
pub const MAX_INTERVAL_SECS: u64 = 3_600;

/// What the usage sampler counts (registered with the recorder's metrics).
#[derive(Debug)]
pub struct UsageStats {
    /// 1 while the metrics API answers, 0 while it is missing or unavailable (or not yet asked).
    pub available: IntGauge,
    /// Requests of the metrics API (each interval, answered or not).
    pub checks: IntCounter,
    /// Samplings of the metrics API that were written.
    pub samples: IntCounter,
    /// Container and node samples written.
    pub rows_written: IntCounter,
    /// Pods and nodes whose timestamp had not moved since the last sample (not written again).
    pub unchanged: IntCounter,
    /// Ticks skipped because the previous sample was still waiting for the writer.
    pub skipped_busy: IntCounter,
    /// Samples of pods or nodes the database holds no open row for.
    pub unknown: IntCounter,
}

impl Default for UsageStats {
    fn default() -> Self {
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid name");
        UsageStats {
            available: IntGauge::new(
                "kubetrail_usage_available",
                "1 while the metrics API (metrics.k8s.io) answers, else 0.",
            )
            .expect("valid name"),
            checks: counter(
                "kubetrail_usage_checks_total",
                "Times the metrics API was asked for a sample, answered or not.",
            ),
            samples: counter(
                "kubetrail_usage_samples_total",
                "Samplings of the metrics API written to the database.",
            ),
            rows_written: counter(
                "kubetrail_usage_rows_written_total",
                "Container and node usage samples written.",
            ),
            unchanged: counter(
                "kubetrail_usage_unchanged_total",
                "Pods and nodes whose metrics timestamp had not moved since the last sample.",
            ),
            skipped_busy: counter(
                "kubetrail_usage_skipped_total",
                "Usage samplings skipped because the previous one was still being written.",
            ),
            unknown: counter(
                "kubetrail_usage_unknown_total",
                "Usage samples of pods or nodes without an open row in the database.",
            ),
        }
    }
}

impl UsageStats {
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.available.clone()),
            Box::new(self.checks.clone()),
            Box::new(self.samples.clone()),
            Box::new(self.rows_written.clone()),
            Box::new(self.unchanged.clone()),
            Box::new(self.skipped_busy.clone()),
            Box::new(self.unknown.clone()),
        ]
    }
}
