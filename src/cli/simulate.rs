//! `kubetrail simulate`: serve a simulated cluster over the Kubernetes API until SIGINT/SIGTERM.
//! Prints `serving on http://ADDR` once the kubeconfig is written, so scripts and tests can wait
//! for that line.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use kubetrail::usage;
use kubetrail_sim::{self as sim, FaultRequest, SimConfig};

/// Flags of `kubetrail simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to serve on; port 0 picks a free port (the kubeconfig names the real one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where to write a kubeconfig that points at the simulator (written atomically).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig_out: PathBuf,
    /// Nodes at start-up.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Target pod population (also the pods that exist at start-up).
    #[arg(long, default_value_t = 30)]
    pub pods: usize,
    /// New pods per second.
    #[arg(long, value_name = "PODS_PER_SEC", default_value_t = 5.0)]
    pub churn: f64,
    /// An Events flood on top of the lifecycle's Events: this many readiness-probe failures
    /// (Unhealthy) a minute on random running pods, e.g. 10000.
    #[arg(long, value_name = "EVENTS_PER_MIN", default_value_t = 0.0)]
    pub event_flood: f64,
    /// Seed of the scenario: the same seed and --start-time give the same cluster and truth.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Virtual time at start-up, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub start_time: Option<String>,
    /// Multiplies lifecycle delays: 0.1 makes pods live ten times faster, 3 three times slower.
    #[arg(long, default_value_t = 1.0)]
    pub pace: f64,
    /// Append every transition the simulator causes to this file as JSON lines.
    #[arg(long, value_name = "PATH")]
    pub truth_out: Option<PathBuf>,
    /// Close every watch stream every N seconds.
    #[arg(long, value_name = "SECS")]
    pub cut_watches_every: Option<f64>,
    /// Delay each watch event by N milliseconds.
    #[arg(long, value_name = "MS")]
    pub slow_watch_ms: Option<u64>,
    /// Start with an outage: every API request gets 503 for N seconds.
    #[arg(long, value_name = "SECS")]
    pub outage_secs: Option<f64>,
    /// Seconds between BOOKMARK events on watches that allow them.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub bookmark_every: f64,
    /// Start with the scenario engine paused (resume with POST /_sim/resume).
    #[arg(long)]
    pub paused: bool,
    /// The metrics API's scrape window in seconds: its samples move once per window.
    #[arg(long, value_name = "SECS", default_value_t = 15.0)]
    pub metrics_window: f64,
    /// How the metrics API (metrics.k8s.io) answers: served, missing (404) or unavailable (503).
    #[arg(long, value_name = "MODE", default_value = "served", value_parser = parse_metrics_api)]
    pub metrics_api: sim::faults::MetricsApi,
}

fn parse_metrics_api(raw: &str) -> Result<sim::faults::MetricsApi, String> {
    use sim::faults::MetricsApi::*;
    match raw {
        "served" => Ok(Served),
        "missing" => Ok(Missing),
        "unavailable" => Ok(Unavailable),
        _ => Err(format!(
            "{raw:?} is not a metrics API mode; expected served, missing or unavailable"
        )),
    }
}

/// The most new pods per second `--churn` takes. The engine flat out makes about 25k watch
/// events/s (BENCHMARKS.md), about 4k pods/s at 6-7 transitions per pod: a higher rate cannot
/// be served, its pods only pile up (each tick creates them all before the population is
/// trimmed, every one serialised into the watch history), which is how a huge value was
/// OOM-killed at 22 GB. 10k leaves headroom over what the engine can do.
pub const MAX_CHURN_PER_SEC: f64 = 10_000.0;

/// The largest `--event-flood`: 10k Events a second, about what the churn flat out makes
/// (BENCHMARKS.md). Each occurrence is serialised in both API groups and kept in the watch
/// history, so more would only make the engine fall behind real time.
pub const MAX_EVENT_FLOOD_PER_MIN: f64 = 600_000.0;

impl Args {
    /// Turns flags into a validated configuration; bad values are usage errors (exit code 2).
    fn config(&self) -> anyhow::Result<SimConfig> {
        let start_ms = match &self.start_time {
            Some(raw) => {
                Some(sim::clock::parse_rfc3339_ms(raw).map_err(|e| usage!("--start-time: {e}"))?)
            }
            None => None,
        };
        if !(self.churn.is_finite() && self.churn >= 0.0) {
            return Err(usage!(
                "--churn {} is not a rate; expected pods per second, e.g. 5 or 0.5",
                self.churn
            ));
        }
        if self.churn > MAX_CHURN_PER_SEC {
            return Err(usage!(
                "--churn {} is more than the simulator can serve; give at most \
                 {MAX_CHURN_PER_SEC} pods per second",
                self.churn
            ));
        }
        if !(self.event_flood.is_finite() && self.event_flood >= 0.0) {
            return Err(usage!(
                "--event-flood {} is not a rate; expected Events a minute, e.g. 10000",
                self.event_flood
            ));
        }
        if self.event_flood > MAX_EVENT_FLOOD_PER_MIN {
            return Err(usage!(
                "--event-flood {} is more than the simulator can serve; give at most \
                 {MAX_EVENT_FLOOD_PER_MIN} Events a minute",
                self.event_flood
            ));
        }
        if !(self.pace.is_finite() && self.pace > 0.0) {
            return Err(usage!(
                "--pace {} must be a positive factor, e.g. 1 (normal) or 0.1 (ten times faster)",
                self.pace
            ));
        }
        for (flag, value) in [
            ("--cut-watches-every", self.cut_watches_every),
            ("--outage-secs", self.outage_secs),
            ("--bookmark-every", Some(self.bookmark_every)),
            ("--metrics-window", Some(self.metrics_window)),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                return Err(usage!("{flag} {v} must be a positive number of seconds"));
            }
        }
        Ok(SimConfig {
            listen: self.listen,
            kubeconfig_out: Some(self.kubeconfig_out.clone()),
            truth_out: self.truth_out.clone(),
            seed: self.seed,
            start_ms,
            nodes: self.nodes,
            pods: self.pods,
            churn_per_sec: self.churn,
            pace: self.pace,
            event_flood_per_min: self.event_flood,
            faults: FaultRequest {
                cut_every_secs: self.cut_watches_every,
                slow_watch_ms: self.slow_watch_ms,
                outage_secs: self.outage_secs,
                metrics_api: Some(self.metrics_api),
                ..FaultRequest::default()
            },
            metrics_window: std::time::Duration::from_secs_f64(self.metrics_window),
            bookmark_interval: std::time::Duration::from_secs_f64(self.bookmark_every),
            start_paused: self.paused,
            ..SimConfig::default()
        })
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config()?;
    let handle = sim::start(config).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "serving on {}", handle.base_url())?;
        stdout.flush()?;
    }
    tracing::info!(
        kubeconfig = %handle.kubeconfig_path().display(),
        "simulated cluster is up; stop with Ctrl-C"
    );
    wait_for_signal().await?;
    handle.shutdown().await
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}
