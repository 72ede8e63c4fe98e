//! `--metrics-addr`: the recorder's counters in the Prometheus text format at `/metrics`, and a
//! `/healthz` that answers once both initial lists are done (for a Deployment's probes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::informer::RecorderStats;

fn render(stats: &RecorderStats) -> String {
    let w = &stats.writer;
    let lines: [(&str, &str, &str, u64); 11] = [
        (
            "kubetrail_pod_events_total",
            "counter",
            "Pod watch events received.",
            stats.pod_events.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_node_events_total",
            "counter",
            "Node watch events received.",
            stats.node_events.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_watch_errors_total",
            "counter",
            "Watch errors (each is retried).",
            stats.watch_errors.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_relists_total",
            "counter",
            "Relists after a watch could not resume.",
            stats.relists.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_cached_pods",
            "gauge",
            "Pods in the recorder's cache.",
            stats.cached_pods.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_cached_nodes",
            "gauge",
            "Nodes in the recorder's cache.",
            stats.cached_nodes.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_commits_total",
            "counter",
            "Database transactions committed.",
            w.commits.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_rows_written_total",
            "counter",
            "Rows written.",
            w.rows.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_transitions_written_total",
            "counter",
            "Transition rows inserted.",
            w.transitions.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_failed_commits_total",
            "counter",
            "Commits that failed and were retried.",
            w.failed_commits.load(Ordering::Relaxed),
        ),
        (
            "kubetrail_write_lag_milliseconds",
            "gauge",
            "Event-to-commit time of the last commit.",
            w.last_lag_ms.load(Ordering::Relaxed),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in lines {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    out
}

async fn metrics(State(stats): State<Arc<RecorderStats>>) -> String {
    render(&stats)
}

async fn healthz(State(stats): State<Arc<RecorderStats>>) -> (StatusCode, &'static str) {
    if stats.initial_list_ms.load(Ordering::Relaxed) > 0 {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "initial list not done yet\n",
        )
    }
}

/// Binds now (so a bad address is reported at startup) and serves in the background.
pub async fn serve(addr: SocketAddr, stats: Arc<RecorderStats>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on --metrics-addr {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(stats);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::warn!(%err, "metrics server stopped");
        }
    });
    Ok(bound)
}
