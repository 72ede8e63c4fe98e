//! Starts the simulator in-process: builds the initial cluster, starts the engine thread and the
//! HTTP server, writes the kubeconfig; [`SimHandle`] controls and stops it. `kubetrail simulate`,
//! `kubetrail demo` and the tests all go through [`start`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::serve::ListenerExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::api::{ApiState, dispatch};
use super::faults::{FaultRequest, Faults};
use super::runner::Engine;
use super::scenario::{Scenario, ScenarioConfig};
use super::store::Store;
use super::truth::TruthWriter;
use super::{SimConfig, SimStats, kubeconfig};

/// A running simulator. Dropping it without [`SimHandle::shutdown`] stops the engine too, but
/// only `shutdown` waits for the server to close.
pub struct SimHandle {
    addr: SocketAddr,
    kubeconfig_path: PathBuf,
    truth_path: Option<PathBuf>,
    store: Arc<Store>,
    faults: Arc<Faults>,
    engine: Arc<Engine>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Starts a simulator: returns once the initial cluster exists, the port is bound and the
/// kubeconfig is written.
pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
    validate(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let store = Store::new(config.retention.clone());
    store
        .usage
        .set_window_ms(config.metrics_window.as_millis() as i64);
    let truth = match &config.truth_out {
        Some(path) => TruthWriter::create(path)?,
        None => TruthWriter::disabled(),
    };
    let scenario_config = ScenarioConfig {
        seed: config.seed,
        start_ms: config
            .start_ms
            .unwrap_or_else(kubetrail::model::time::now_ms),
        nodes: config.nodes,
        pods: config.pods,
        churn_per_sec: config.churn_per_sec,
        pace: config.pace,
        event_flood_per_min: config.event_flood_per_min,
    };
    // Building 100k pods takes a moment of CPU: keep it off the async workers.
    let scenario = tokio::task::spawn_blocking({
        let store = store.clone();
        move || Scenario::new(scenario_config, store, truth)
    })
    .await
    .context("building the initial cluster failed")?;
    let engine = Arc::new(
        Engine::spawn(scenario, config.start_paused).context("cannot start the scenario engine")?,
    );
    let faults = Arc::new(Faults::new());
    faults
        .apply(&config.faults, &store)
        .map_err(anyhow::Error::msg)?;

    let state = ApiState {
        store: store.clone(),
        faults: faults.clone(),
        engine: engine.clone(),
        addr,
        bookmark_interval: config.bookmark_interval,
    };
    let app = Router::new().fallback(dispatch).with_state(state);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // Without TCP_NODELAY, the last partial segment of each chunk waits for a delayed ACK
        // (~40 ms): paginated lists crawl.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
        if let Err(err) = result {
            tracing::error!("simulated API server failed: {err}");
        }
    });

    let kubeconfig_path = match &config.kubeconfig_out {
        Some(path) => path.clone(),
        None => std::env::temp_dir().join(format!(
            "kubetrail-sim-{}-{}.kubeconfig",
            std::process::id(),
            addr.port()
        )),
    };
    kubeconfig::write(&kubeconfig_path, &format!("http://{addr}"))?;
    Ok(SimHandle {
        addr,
        kubeconfig_path,
        truth_path: config.truth_out.clone(),
        store,
        faults,
        engine,
        stop: Some(stop_tx),
        server: Some(server),
    })
}

fn validate(config: &SimConfig) -> anyhow::Result<()> {
    if !(config.churn_per_sec.is_finite() && config.churn_per_sec >= 0.0) {
        anyhow::bail!(
            "churn must be a non-negative number of pods per second, got {}",
            config.churn_per_sec
        );
    }
    if !(config.event_flood_per_min.is_finite() && config.event_flood_per_min >= 0.0) {
        anyhow::bail!(
            "the Events flood must be a non-negative number of events a minute, got {}",
            config.event_flood_per_min
        );
    }
    if !(config.pace.is_finite() && config.pace > 0.0) {
        anyhow::bail!(
            "pace must be a positive factor (1 = normal, 0.1 = ten times faster), got {}",
            config.pace
        );
    }
    if config.metrics_window.is_zero() {
        anyhow::bail!("the metrics window must be longer than zero");
    }
    Ok(())
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    pub fn truth_path(&self) -> Option<&Path> {
        self.truth_path.as_deref()
    }

    /// A kube client for this simulator (plain HTTP, no auth).
    pub fn kube_client(&self) -> anyhow::Result<kube::Client> {
        let uri: axum::http::Uri = self.base_url().parse()?;
        let config = kube::Config::new(uri);
        Ok(kube::Client::try_from(config)?)
    }

    /// Freezes the scenario engine; returns once no more changes will happen.
    pub async fn pause(&self) {
        self.engine.pause().await;
    }

    pub async fn resume(&self) {
        self.engine.resume().await;
    }

    pub fn inject(&self, faults: &FaultRequest) -> anyhow::Result<()> {
        self.faults
            .apply(faults, &self.store)
            .map_err(anyhow::Error::msg)
    }

    pub fn stats(&self) -> SimStats {
        super::stats(&self.store, &self.engine, &self.faults)
    }

    /// Stops the engine (flushing the truth file) and the server.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.engine.stop();
        // Long-lived watches would hold a graceful shutdown open.
        self.faults.cut_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(3), &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
        Ok(())
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.engine.stop();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
