//! The events watch: Kubernetes Events about pods and nodes, on a stream of their own.
//!
//! Events are many and matter less than pod transitions: a crash-looping Deployment or a
//! scheduler that cannot place a thousand pods writes thousands a minute. So they never share
//! the pod/node loop or its backpressure:
//!
//! - [`decode`]: the slim Event types (both API groups) and their projection into rows.
//! - [`watch`]: the task that lists and watches them, keeps what it already wrote (uid and
//!   count, so an unchanged MODIFIED or a relist writes nothing), and hands batches on.
//!   Committed rows are counted by the writer (`kubetrail_events_written_total`).
//! - [`queue`]: the bounded queue between that task and the writer thread, which merges event
//!   batches into its commits. When it is full the newest batch is dropped, counted in
//!   `kubetrail_events_dropped_total` and logged; pod transitions are never held back for it.

pub mod decode;
pub mod queue;
pub mod watch;

use prometheus::{IntCounter, IntGauge};

/// What the events watch counts (registered with the recorder's metrics).
#[derive(Debug)]
pub struct EventStats {
    /// Events about pods and nodes received (listed or watched).
    pub received: IntCounter,
    /// Received events that changed nothing (the same uid and count as already written).
    pub unchanged: IntCounter,
    /// Events dropped because the queue to the writer was full.
    pub dropped: IntCounter,
    /// Event rows waiting in the queue to the writer.
    pub queued: IntGauge,
}

impl Default for EventStats {
    fn default() -> Self {
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid name");
        EventStats {
            received: counter(
                "kubetrail_events_received_total",
                "Kubernetes Events about pods and nodes received from the API server.",
            ),
            unchanged: counter(
                "kubetrail_events_unchanged_total",
                "Received Kubernetes Events that were already recorded with the same count.",
            ),
            dropped: counter(
                "kubetrail_events_dropped_total",
                "Kubernetes Events dropped because the queue to the database writer was full.",
            ),
            queued: IntGauge::new(
                "kubetrail_events_queued",
                "Kubernetes Event rows waiting for the database writer.",
            )
            .expect("valid name"),
        }
    }
}

impl EventStats {
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.received.clone()),
            Box::new(self.unchanged.clone()),
            Box::new(self.dropped.clone()),
            Box::new(self.queued.clone()),
        ]
    }
}
