//! `--metrics-addr`: the recorder's operator endpoint, for probes and Prometheus.
//!
//! - `/healthz`: the process is alive and serving (a liveness probe);
//! - `/readyz`: the initial lists are committed, the writer keeps up and the API server answers
//!   (see [`super::health`]); 503 with the failing checks otherwise, in the `[+]`/`[-]` style of
//!   kube-apiserver's own `/readyz?verbose`;
//! - `/metrics`: every [`RecorderStats`] metric, the database size, readiness and the process
//!   figures (memory, CPU, file descriptors) in the Prometheus text format.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, IntGauge, Registry, TextEncoder};

use super::health::readiness;
use super::stats::RecorderStats;
use crate::model::time::now_ms;
use crate::store::Location;

/// What the endpoint serves from.
pub struct Endpoint {
    pub stats: Arc<RecorderStats>,
    /// The store; its size on this machine's disk (with the WAL) is a metric.
    pub db: Location,
    /// How far behind the writer, or how long failing the API, before `/readyz` says no.
    pub unready_after: Duration,
}

struct Served {
    endpoint: Endpoint,
    registry: Registry,
    db_bytes: IntGauge,
    ready: IntGauge,
}

/// Binds the address now, so that a bad or busy address is an error at startup.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on --metrics-addr {addr}: {e}"))
}

/// Serves on `listener` in the background.
pub fn serve(listener: tokio::net::TcpListener, endpoint: Endpoint) -> anyhow::Result<SocketAddr> {
    let bound = listener.local_addr()?;
    let registry = endpoint.stats.registry();
    let db_bytes = IntGauge::new(
        "kubetrail_database_size_bytes",
        "Size of the database file and its write-ahead log.",
    )?;
    let ready = IntGauge::new(
        "kubetrail_ready",
        "1 when /readyz answers 200, 0 when it answers 503.",
    )?;
    registry.register(Box::new(db_bytes.clone()))?;
    registry.register(Box::new(ready.clone()))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let served = Arc::new(Served {
        endpoint,
        registry,
        db_bytes,
        ready,
    });
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(served);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::warn!(%err, "metrics server stopped");
        }
    });
    Ok(bound)
}

/// Evaluates the readiness checks and keeps the `kubetrail_ready` gauge in step.
fn evaluate(s: &Served) -> (bool, String) {
    let checks = readiness(&s.endpoint.stats, now_ms(), s.endpoint.unready_after);
    let mut body = String::new();
    for c in &checks {
        match &c.problem {
            None => body.push_str(&format!("[+]{} ok\n", c.name)),
            Some(why) => body.push_str(&format!("[-]{} failed: {why}\n", c.name)),
        }
    }
    let ready = checks.iter().all(|c| c.problem.is_none());
    body.push_str(if ready {
        "readyz check passed\n"
    } else {
        "readyz check failed\n"
    });
    s.ready.set(ready as i64);
    (ready, body)
}

/// Alive while the writer thread runs: without it nothing is recorded, so a supervisor should
/// restart the process (which also exits non-zero then).
async fn healthz(State(s): State<Arc<Served>>) -> (StatusCode, &'static str) {
    if s.endpoint
        .stats
        .writer
        .alive
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database writer has stopped\n",
        )
    }
}

async fn readyz(State(s): State<Arc<Served>>) -> (StatusCode, String) {
    let (ready, body) = evaluate(&s);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

async fn metrics(State(s): State<Arc<Served>>) -> impl IntoResponse {
    if let Some(bytes) = s.endpoint.db.bytes_on_disk() {
        s.db_bytes.set(bytes as i64);
    }
    s.endpoint.stats.writer.refresh_lag(now_ms());
    evaluate(&s);
    let encoder = TextEncoder::new();
    let mut out = Vec::new();
    match encoder.encode(&s.registry.gather(), &mut out) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_string())],
            out,
        ),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_string())],
            format!("cannot encode metrics: {err}\n").into_bytes(),
        ),
    }
}
