//! The recorder's live figures, kept as Prometheus metrics. The same values feed `/metrics`,
//! `/readyz`, the periodic status line, the demo and the tests, so what an operator scrapes is
//! what the recorder itself goes by.
//!
//! Metric names follow the Prometheus conventions: a `kubetrail_` prefix, `_total` on counters,
//! base units (`_seconds`, `_bytes`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use prometheus::core::Collector;
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::model::TransitionKind;

/// The two resources the recorder watches, as their API names (the `resource` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Pods,
    Nodes,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Nodes => "nodes",
        }
    }

    /// "pod" or "node", for log messages.
    pub fn singular(self) -> &'static str {
        match self {
            Resource::Pods => "pod",
            Resource::Nodes => "node",
        }
    }
}

/// The `type` label of `kubetrail_watch_events_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// An object in a (re)list.
    Listed,
    Added,
    Modified,
    Deleted,
}

const RESOURCES: [Resource; 2] = [Resource::Pods, Resource::Nodes];
const EVENT_TYPES: [EventType; 4] = [
    EventType::Listed,
    EventType::Added,
    EventType::Modified,
    EventType::Deleted,
];

fn event_index(resource: Resource, kind: EventType) -> usize {
    resource as usize * EVENT_TYPES.len() + kind as usize
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Listed => "listed",
            EventType::Added => "added",
            EventType::Modified => "modified",
            EventType::Deleted => "deleted",
        }
    }
}

/// Whether one watch stream is healthy, for `/readyz`.
#[derive(Debug, Default)]
pub struct StreamHealth {
    /// Its first list is done (or the stream is switched off).
    pub listed: AtomicBool,
    /// Unix ms of the first error of the current run of failures; 0 while healthy.
    failing_since_ms: AtomicI64,
    /// The most recent error, for `/readyz` and the log.
    last_error: Mutex<String>,
}

impl StreamHealth {
    /// Records a failure; returns true if it starts a run of failures.
    pub fn fail(&self, now_ms: i64, error: String) -> bool {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
        self.failing_since_ms
            .compare_exchange(0, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Records that the stream works again; returns true if it was failing.
    pub fn recover(&self) -> bool {
        self.failing_since_ms.swap(0, Ordering::Relaxed) != 0
    }

    /// Since when it has been failing (Unix ms), and the last error.
    pub fn failing(&self) -> Option<(i64, String)> {
        match self.failing_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since => Some((
                since,
                self.last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            )),
        }
    }
}

/// Everything the recorder counts while it runs.
#[derive(Debug)]
pub struct RecorderStats {
    watch_events: IntCounterVec,
    /// `watch_events`' children, resolved once: counting an event is then one atomic add,
    /// not a label lookup under a lock. Indexed by [`event_index`].
    event_counters: Vec<IntCounter>,
    api_errors: IntCounterVec,
    relists: IntCounterVec,
    watch_expired: IntCounterVec,
    watch_restarts: IntCounterVec,
    watch_silent: IntCounterVec,
    pub cached_pods: IntGauge,
    pub cached_nodes: IntGauge,
    pub pods: StreamHealth,
    pub nodes: StreamHealth,
    /// Set once both initial lists are done (milliseconds they took).
    pub initial_list_ms: AtomicU64,
    /// Set once the rows of both initial lists are committed (milliseconds since start).
    pub initial_committed_ms: AtomicU64,
    pub writer: std::sync::Arc<WriterStats>,
    /// The events watch's figures.
    pub events: std::sync::Arc<super::events::EventStats>,
    /// The usage sampler's figures.
    pub usage: std::sync::Arc<super::usage::UsageStats>,
}

/// What the writer thread counts.
#[derive(Debug)]
pub struct WriterStats {
    pub commits: IntCounter,
    pub failed_commits: IntCounter,
    pub rows: IntCounter,
    transitions: IntCounterVec,
    pub duplicates_ignored: IntCounter,
    pub commit_seconds: Histogram,
    /// Messages waiting in the writer's channel.
    pub queue_depth: IntGauge,
    /// Unix ms at which the oldest rows not yet committed were received; 0 when none wait.
    pub pending_since_ms: AtomicI64,
    /// Unix time of the last successful commit.
    pub last_commit_seconds: Gauge,
    /// The age of the oldest rows not yet committed, now (0 when none wait); set from
    /// `pending_since_ms` by [`WriterStats::refresh_lag`] when it is read.
    lag_seconds: Gauge,
    /// Rows set aside in the `quarantine` table because the database refused them for a reason
    /// that retrying cannot fix.
    pub quarantined: IntCounter,
    /// Rows skipped because the pod or node they belong to was never written.
    pub skipped_unknown_subject: IntCounter,
    /// Kubernetes Events committed as new or grown (`kubetrail_events_written_total`).
    pub events_written: IntCounter,
    /// Rows that could not be committed before the recorder stopped (the disk full at
    /// shutdown); the next start reconciles them from the API server.
    pub rows_not_committed: IntCounter,
    /// False once the writer thread has stopped (finished or died).
    pub alive: AtomicBool,
    /// Why commits are not getting through right now (a failing commit, the size budget), for
    /// `/readyz`; None while they are.
    pub blocked: Mutex<Option<String>>,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("metric names are valid")
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("metric names are valid")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("metric names are valid")
}

/// The sum of every labelled child of a counter vector.
fn sum(vec: &IntCounterVec) -> u64 {
    vec.collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            commits: counter(
                "kubetrail_commits_total",
                "Database transactions committed.",
            ),
            failed_commits: counter(
                "kubetrail_failed_commits_total",
                "Commits that failed; the rows are kept and the commit retried.",
            ),
            rows: counter(
                "kubetrail_rows_written_total",
                "Rows written (transitions, pod and node rows, resources, usage).",
            ),
            transitions: counter_vec(
                "kubetrail_transitions_written_total",
                "Transitions inserted, by subject and kind (replays are not counted).",
                &["subject", "kind"],
            ),
            duplicates_ignored: counter(
                "kubetrail_transitions_replayed_total",
                "Transitions already in the database (a replayed event), ignored.",
            ),
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "kubetrail_write_batch_duration_seconds",
                    "Time to commit one batch, retries included.",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 15).expect("valid")),
            )
            .expect("metric names are valid"),
            queue_depth: gauge(
                "kubetrail_writer_queue_depth",
                "Batches waiting for the database writer.",
            ),
            pending_since_ms: AtomicI64::new(0),
            last_commit_seconds: Gauge::new(
                "kubetrail_last_commit_timestamp_seconds",
                "Unix time of the last successful commit.",
            )
            .expect("metric names are valid"),
            lag_seconds: Gauge::new(
                "kubetrail_write_lag_seconds",
                "Age of the oldest rows received but not yet committed (0 when none wait).",
            )
            .expect("metric names are valid"),
            quarantined: counter(
                "kubetrail_rows_quarantined_total",
                "Rows the database refused for a non-transient reason, kept in the quarantine table.",
            ),
            skipped_unknown_subject: counter(
                "kubetrail_rows_skipped_unknown_subject_total",
                "Rows skipped because their pod or node was never written.",
            ),
            events_written: counter(
                "kubetrail_events_written_total",
                "Kubernetes Events committed as new or with a grown count.",
            ),
            rows_not_committed: counter(
                "kubetrail_rows_not_committed_total",
                "Rows that could not be committed before the recorder stopped.",
            ),
            alive: AtomicBool::new(true),
            blocked: Mutex::new(None),
        }
    }
}

impl WriterStats {
    /// Sets `kubetrail_write_lag_seconds` to the age, at `now_ms`, of the oldest rows waiting
    /// for a commit, and returns it: a stalled writer shows a growing lag at once, not the lag
    /// of its last successful commit.
    pub fn refresh_lag(&self, now_ms: i64) -> f64 {
        let since = self.pending_since_ms.load(Ordering::Relaxed);
        let lag = if since > 0 {
            (now_ms - since).max(0) as f64 / 1000.0
        } else {
            0.0
        };
        self.lag_seconds.set(lag);
        lag
    }

    pub fn count_transitions(&self, kind: TransitionKind, n: u64) {
        self.transitions
            .with_label_values(&[kind.subject().as_str(), kind.as_str()])
            .inc_by(n);
    }

    /// Transitions inserted, of every kind.
    pub fn transitions_total(&self) -> u64 {
        sum(&self.transitions)
    }

    /// Transitions inserted of one kind.
    pub fn transitions_of(&self, kind: TransitionKind) -> u64 {
        self.transitions
            .with_label_values(&[kind.subject().as_str(), kind.as_str()])
            .get()
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.commits.clone()),
            Box::new(self.failed_commits.clone()),
            Box::new(self.rows.clone()),
            Box::new(self.transitions.clone()),
            Box::new(self.duplicates_ignored.clone()),
            Box::new(self.commit_seconds.clone()),
            Box::new(self.queue_depth.clone()),
            Box::new(self.last_commit_seconds.clone()),
            Box::new(self.lag_seconds.clone()),
            Box::new(self.quarantined.clone()),
            Box::new(self.skipped_unknown_subject.clone()),
            Box::new(self.rows_not_committed.clone()),
            Box::new(self.events_written.clone()),
        ]
    }
}

impl Default for RecorderStats {
    fn default() -> Self {
        let watch_events = counter_vec(
            "kubetrail_watch_events_total",
            "Objects received from list and watch, by resource and type.",
            &["resource", "type"],
        );
        let mut event_counters = Vec::new();
        for r in RESOURCES {
            for t in EVENT_TYPES {
                debug_assert_eq!(event_counters.len(), event_index(r, t));
                event_counters.push(watch_events.with_label_values(&[r.as_str(), t.as_str()]));
            }
        }
        RecorderStats {
            watch_events,
            event_counters,
            api_errors: counter_vec(
                "kubetrail_api_errors_total",
                "Failed list and watch requests, by resource and HTTP code (or connect, decode).",
                &["resource", "code"],
            ),
            relists: counter_vec(
                "kubetrail_relists_total",
                "Relists after a watch could not resume.",
                &["resource"],
            ),
            watch_expired: counter_vec(
                "kubetrail_watch_expired_total",
                "Watches answered 410 Gone (history compacted); each leads to a relist.",
                &["resource"],
            ),
            watch_restarts: counter_vec(
                "kubetrail_watch_restarts_total",
                "Times a failing watch came back (the API server answered again).",
                &["resource"],
            ),
            watch_silent: counter_vec(
                "kubetrail_watch_silent_total",
                "Watches restarted because they were silent and the API server did not answer a probe.",
                &["resource"],
            ),
            cached_pods: gauge("kubetrail_cached_pods", "Pods in the recorder's cache."),
            cached_nodes: gauge("kubetrail_cached_nodes", "Nodes in the recorder's cache."),
            pods: StreamHealth::default(),
            nodes: StreamHealth::default(),
            initial_list_ms: AtomicU64::new(0),
            initial_committed_ms: AtomicU64::new(0),
            writer: Default::default(),
            events: Default::default(),
            usage: Default::default(),
        }
    }
}

impl RecorderStats {
    pub fn stream(&self, resource: Resource) -> &StreamHealth {
        match resource {
            Resource::Pods => &self.pods,
            Resource::Nodes => &self.nodes,
        }
    }

    pub fn count_event(&self, resource: Resource, kind: EventType) {
        self.event_counters[event_index(resource, kind)].inc();
    }

    /// Events received, of every resource and type.
    pub fn events_total(&self) -> u64 {
        sum(&self.watch_events)
    }

    pub fn count_error(&self, resource: Resource, code: &str) {
        self.api_errors
            .with_label_values(&[resource.as_str(), code])
            .inc();
        if code == "410" {
            self.watch_expired
                .with_label_values(&[resource.as_str()])
                .inc();
        }
    }

    pub fn count_relist(&self, resource: Resource) {
        self.relists.with_label_values(&[resource.as_str()]).inc();
    }

    pub fn count_restart(&self, resource: Resource) {
        self.watch_restarts
            .with_label_values(&[resource.as_str()])
            .inc();
    }

    pub fn count_silent(&self, resource: Resource) {
        self.watch_silent
            .with_label_values(&[resource.as_str()])
            .inc();
    }

    /// Silent watches restarted, of one resource.
    pub fn silent_of(&self, resource: Resource) -> u64 {
        self.watch_silent
            .with_label_values(&[resource.as_str()])
            .get()
    }

    /// A registry holding every metric (they share their values with `self`).
    pub fn registry(&self) -> Registry {
        let registry = Registry::new();
        let mut collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(self.watch_events.clone()),
            Box::new(self.api_errors.clone()),
            Box::new(self.relists.clone()),
            Box::new(self.watch_expired.clone()),
            Box::new(self.watch_restarts.clone()),
            Box::new(self.watch_silent.clone()),
            Box::new(self.cached_pods.clone()),
            Box::new(self.cached_nodes.clone()),
        ];
        collectors.extend(self.writer.collectors());
        collectors.extend(self.events.collectors());
        collectors.extend(self.usage.collectors());
        for c in collectors {
            registry
                .register(c)
                .expect("each metric is registered once");
        }
        // Label sets that exist from the start, so a scrape shows zeros rather than nothing
        // (the event counters already do).
        for r in RESOURCES {
            self.relists.with_label_values(&[r.as_str()]);
            self.watch_expired.with_label_values(&[r.as_str()]);
            self.watch_restarts.with_label_values(&[r.as_str()]);
            self.watch_silent.with_label_values(&[r.as_str()]);
        }
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_fails_once_per_run_and_recovers() {
        let s = StreamHealth::default();
        assert!(s.failing().is_none());
        assert!(s.fail(1000, "first".into()));
        assert!(!s.fail(2000, "second".into()), "still the same run");
        assert_eq!(s.failing(), Some((1000, "second".to_string())));
        assert!(s.recover());
        assert!(!s.recover());
        assert!(s.failing().is_none());
    }

    #[test]
    fn totals_sum_every_label_set() {
        let stats = RecorderStats::default();
        stats.count_event(Resource::Pods, EventType::Added);
        stats.count_event(Resource::Nodes, EventType::Listed);
        stats.count_event(Resource::Nodes, EventType::Listed);
        assert_eq!(stats.events_total(), 3);
        stats.writer.count_transitions(TransitionKind::ALL[0], 4);
        stats.writer.count_transitions(TransitionKind::ALL[1], 1);
        assert_eq!(stats.writer.transitions_total(), 5);
        assert_eq!(stats.writer.transitions_of(TransitionKind::ALL[0]), 4);
    }

    #[test]
    fn the_write_lag_is_the_age_of_the_oldest_uncommitted_rows_now() {
        let w = WriterStats::default();
        assert_eq!(w.refresh_lag(50_000), 0.0, "nothing waits");
        w.pending_since_ms.store(1_000, Ordering::Relaxed);
        assert_eq!(w.refresh_lag(111_000), 110.0);
        assert_eq!(w.lag_seconds.get(), 110.0);
    }

    #[test]
    fn a_410_counts_as_an_error_and_an_expired_watch() {
        let stats = RecorderStats::default();
        stats.count_error(Resource::Pods, "410");
        stats.count_error(Resource::Pods, "503");
        assert_eq!(sum(&stats.api_errors), 2);
        assert_eq!(sum(&stats.watch_expired), 1);
    }
}
