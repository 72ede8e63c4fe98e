//! `kubetrail simulate`: a simulated Kubernetes API server (pods, nodes, namespaces) over the
//! real wire protocol, with a deterministic scenario engine, ground truth and fault injection.
//!
//! The data flow: [`scenario`] (the engine, on a virtual clock, driven by [`runner`]) renders
//! [`cluster`] state through [`objects`] into the [`store`], and writes [`truth`] lines; [`api`]
//! serves the store (lists, [`watch`] streams, [`table`]s, [`discovery`]) with [`selector`]s,
//! answering errors as [`status`] bodies; [`faults`] break things on demand. [`server`] wires it
//! together for the CLI and for tests ([`start`]).

pub mod api;
pub mod clock;
pub mod cluster;
pub mod discovery;
pub mod events;
pub mod faults;
pub mod kubeconfig;
pub mod metrics;
pub mod objects;
pub mod owners;
pub mod runner;
pub mod scenario;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod truth;
pub mod watch;
pub mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use faults::FaultRequest;
pub use scenario::{ScenarioConfig, ScenarioStats};
pub use server::{SimHandle, start};
pub use store::{RetentionLimits, StoreStats};
pub use truth::{TruthLine, read_truth};

/// Everything `start` needs. `SimConfig::default()` is a small, lively cluster on a free port.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where to write the kubeconfig; None writes one into the system temp directory.
    pub kubeconfig_out: Option<PathBuf>,
    pub truth_out: Option<PathBuf>,
    pub seed: u64,
    /// Virtual time of the start (Unix ms); None means now.
    pub start_ms: Option<i64>,
    pub nodes: usize,
    pub pods: usize,
    pub churn_per_sec: f64,
    pub pace: f64,
    /// Readiness-probe failures a minute on running pods: an Events flood (0 for none).
    pub event_flood_per_min: f64,
    /// Faults applied at start-up.
    pub faults: FaultRequest,
    /// How often watches with allowWatchBookmarks get a BOOKMARK.
    pub bookmark_interval: Duration,
    pub retention: RetentionLimits,
    /// Start with the engine paused (tests that want a still cluster).
    pub start_paused: bool,
    /// The metrics API's scrape window: its timestamps move once per this much virtual time.
    pub metrics_window: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig_out: None,
            truth_out: None,
            seed: 1,
            start_ms: None,
            nodes: 3,
            pods: 30,
            churn_per_sec: 5.0,
            pace: 1.0,
            event_flood_per_min: 0.0,
            faults: FaultRequest::default(),
            bookmark_interval: Duration::from_secs(3),
            retention: RetentionLimits::default(),
            start_paused: false,
            metrics_window: Duration::from_millis(metrics::DEFAULT_WINDOW_MS as u64),
        }
    }
}

/// What `GET /_sim/stats` answers.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimStats {
    #[serde(flatten)]
    pub store: StoreStats,
    #[serde(flatten)]
    pub scenario: ScenarioStats,
    pub paused: bool,
    pub outage: bool,
    pub outage_rejections: u64,
}

fn stats(store: &store::Store, engine: &runner::Engine, faults: &faults::Faults) -> SimStats {
    SimStats {
        store: store.stats(),
        scenario: engine.stats(),
        paused: engine.is_paused(),
        outage: faults.in_outage(),
        outage_rejections: faults.outage_rejections(),
    }
}
