//! The sampling task: every interval, list PodMetrics (and NodeMetrics, when nodes are
//! recorded), keep the pods and nodes whose timestamp moved, and write them as one sample on
//! the writer thread. See the module doc of [`super`] for what it does when the API is missing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use kube::Client;
use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;

use super::UsageStats;
use super::decode::{List, NodeMetrics, PodMetrics};
use super::resources::Asker;
use crate::model::usage::{UsageBatch, UsageWriteStats};
use crate::retention::periodic::WriteQueue;
use crate::store::{HistoryWriter, StoreError};

/// How the sampler runs.
#[derive(Clone, Debug)]
pub struct UsageConfig {
    /// Only this namespace's pods; None for all.
    pub namespace: Option<String>,
    /// Only pods matching this label selector (`-l`); the API filters them.
    pub selector: Option<String>,
    /// Sample NodeMetrics too (off with `--no-nodes`).
    pub nodes: bool,
    pub interval: Duration,
}

/// What the metrics API last answered, so that a change is logged once, not every interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    NotAsked,
    Available,
    /// 404: the API server does not serve metrics.k8s.io (no metrics-server registered).
    Missing,
    /// 503: the APIService is registered but its backend does not answer.
    Unavailable(String),
    /// Anything else (a timeout, a refused connection, a body that is not metrics).
    Failing(String),
}

impl Availability {
    /// What a failed request means for the metrics API.
    pub fn of_error(err: &kube::Error) -> Availability {
        match err {
            kube::Error::Api(status) if status.code == 404 => Availability::Missing,
            kube::Error::Api(status) if status.code == 503 => {
                Availability::Unavailable(status.message.clone())
            }
            other => Availability::Failing(other.to_string()),
        }
    }

    fn log(&self, interval: Duration) {
        match self {
            Availability::NotAsked => {}
            Availability::Available => tracing::info!(
                every = ?interval,
                "the metrics API (metrics.k8s.io) answers: sampling pod and node usage"
            ),
            Availability::Missing => tracing::warn!(
                retry_every = ?interval,
                "the API server does not serve the metrics API (metrics.k8s.io/v1beta1: 404; is \
                 metrics-server installed?): usage is not recorded until it does \
                 (kubetrail_usage_available 0); pod and node history is unaffected"
            ),
            Availability::Unavailable(why) => tracing::warn!(
                retry_every = ?interval,
                answer = %why,
                "the metrics API (metrics.k8s.io) is registered but unavailable (503: its \
                 APIService's backend, usually metrics-server, does not answer): usage is not \
                 recorded until it does (kubetrail_usage_available 0)"
            ),
            Availability::Failing(why) => tracing::warn!(
                retry_every = ?interval,
                error = %why,
                "cannot read the metrics API (metrics.k8s.io): usage is not recorded until it \
                 answers (kubetrail_usage_available 0)"
            ),
        }
    }
}

/// The timestamps last written, per pod (namespace, name) and per node: a pod or node whose
/// timestamp has not moved is not written again.
#[derive(Debug, Default)]
pub struct Seen {
    pods: HashMap<(String, String), i64>,
    nodes: HashMap<String, i64>,
}

/// One sampling's rows, and the timestamps that become [`Seen`] once they are written.
#[derive(Debug, Default)]
pub struct Sampled {
    pub batch: UsageBatch,
    pub seen: Seen,
    pub unchanged: u64,
    /// Items that could not be read: how many, and the first reason.
    pub bad: u64,
    pub first_bad: Option<String>,
}

/// Turns one answer of the metrics API into the rows to write, against what was written.
pub fn select(pods: Vec<PodMetrics>, nodes: Vec<NodeMetrics>, written: &Seen) -> Sampled {
    let mut out = Sampled::default();
    let bad = |out: &mut Sampled, why: String| {
        out.bad += 1;
        out.first_bad.get_or_insert(why);
    };
    for pod in pods {
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone(),
        );
        match pod.rows() {
            Ok((at_ms, rows)) => {
                if written.pods.get(&key) == Some(&at_ms) {
                    out.unchanged += 1;
                } else {
                    out.batch.containers.extend(rows);
                }
                out.seen.pods.insert(key, at_ms);
            }
            Err(why) => bad(&mut out, format!("pod {}/{}: {why}", key.0, key.1)),
        }
    }
    for node in nodes {
        match node.row() {
            Ok(row) => {
                if written.nodes.get(&row.node) == Some(&row.at_ms) {
                    out.unchanged += 1;
                } else {
                    out.seen.nodes.insert(row.node.clone(), row.at_ms);
                    out.batch.nodes.push(row);
                    continue;
                }
                out.seen.nodes.insert(row.node, row.at_ms);
            }
            Err(why) => bad(&mut out, format!("node {}: {why}", node.metadata.name)),
        }
    }
    out
}

/// The longest one request of the metrics API may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn get<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
) -> Result<T, kube::Error> {
    let request = Request::get(path)
        .header("Accept", "application/json")
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    let text = match tokio::time::timeout(REQUEST_TIMEOUT, client.request_text(request)).await {
        Ok(answer) => answer?,
        Err(_) => {
            return Err(kube::Error::Service(
                format!("no answer within {REQUEST_TIMEOUT:?}").into(),
            ));
        }
    };
    serde_json::from_str(&text).map_err(kube::Error::SerdeError)
}

/// Lists PodMetrics (and NodeMetrics) once.
pub async fn fetch(
    client: &Client,
    config: &UsageConfig,
) -> Result<(Vec<PodMetrics>, Vec<NodeMetrics>), kube::Error> {
    let mut path = match &config.namespace {
        Some(ns) => format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"),
        None => "/apis/metrics.k8s.io/v1beta1/pods".to_string(),
    };
    if let Some(selector) = &config.selector {
        path.push_str("?labelSelector=");
        path.extend(form_urlencoded_byte_serialize(selector));
    }
    let pods: List<PodMetrics> = get(client, &path).await?;
    let nodes = if config.nodes {
        get::<List<NodeMetrics>>(client, "/apis/metrics.k8s.io/v1beta1/nodes")
            .await?
            .items
    } else {
        Vec::new()
    };
    Ok((pods.items, nodes))
}

/// A query value, percent-encoded (RFC 3986 unreserved characters stay).
fn form_urlencoded_byte_serialize(raw: &str) -> impl Iterator<Item = char> + '_ {
    raw.bytes().flat_map(|b| {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        let s = if keep {
            (b as char).to_string()
        } else {
            format!("%{b:02X}")
        };
        s.chars().collect::<Vec<_>>()
    })
}

type Written = oneshot::Receiver<(Seen, Result<UsageWriteStats, StoreError>)>;

/// Samples from when `begin` completes until `stop` does or the writer is gone. The recorder
/// begins it once the initial list is committed: a sample names its pods and nodes, which the
/// store places only once their rows are there, and a sample written before would be counted
/// unknown and, its timestamps seen, not tried again until they move (a scrape later).
pub async fn run(
    client: Client,
    config: UsageConfig,
    resources: Asker,
    writer: impl WriteQueue,
    stats: Arc<UsageStats>,
    begin: impl Future<Output = ()>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => return,
        () = begin => {}
    }
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut state = Availability::NotAsked;
    let mut written = Seen::default();
    let mut in_flight: Option<Written> = None;
    loop {
        tokio::select! {
            () = &mut stop => return,
            done = async { in_flight.as_mut().expect("guarded").await }, if in_flight.is_some() => {
                in_flight = None;
                match done {
                    Ok((seen, Ok(done))) => {
                        written = seen;
                        stats.samples.inc();
                        stats.rows_written.inc_by(done.containers_written + done.nodes_written);
                        stats.unknown.inc_by(done.unknown);
                    }
                    Ok((_, Err(err))) => {
                        tracing::warn!(error = %err.detail(), "cannot write a usage sample; it is dropped, the next one is tried");
                    }
                    Err(_) => return, // the writer is gone
                }
            }
            _ = tick.tick() => {
                if in_flight.is_some() {
                    stats.skipped_busy.inc();
                    continue;
                }
                let answer = tokio::select! {
                    () = &mut stop => return,
                    answer = fetch(&client, &config) => answer,
                };
                stats.checks.inc();
                let (pods, nodes) = match answer {
                    Ok(lists) => lists,
                    Err(err) => {
                        let now = Availability::of_error(&err);
                        if now != state {
                            now.log(config.interval);
                        }
                        state = now;
                        stats.available.set(0);
                        continue;
                    }
                };
                if state != Availability::Available {
                    state = Availability::Available;
                    state.log(config.interval);
                }
                stats.available.set(1);
                let sampled = select(pods, nodes, &written);
                stats.unchanged.inc_by(sampled.unchanged);
                if let Some(why) = &sampled.first_bad {
                    tracing::warn!(items = sampled.bad, first = %why, "metrics API items that cannot be read were skipped");
                }
                if sampled.batch.is_empty() {
                    continue;
                }
                let (tx, rx) = oneshot::channel();
                let Sampled { batch, seen, .. } = sampled;
                let asked = std::time::Instant::now();
                let batch = tokio::select! {
                    () = &mut stop => return,
                    batch = resources.fill(batch) => batch,
                };
                tracing::debug!(
                    containers = batch.containers.len(),
                    took_ms = asked.elapsed().as_millis() as u64,
                    "the event loop filled in the sample's container requests"
                );
                let job = Box::new(move |store: &mut dyn HistoryWriter| {
                    let _ = tx.send((seen, store.write_usage(&batch)));
                });
                let queued = tokio::select! {
                    () = &mut stop => return,
                    queued = writer.queue(job) => queued,
                };
                if !queued {
                    return;
                }
                in_flight = Some(rx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ts: &str) -> PodMetrics {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop"},
            "timestamp": ts, "window": "15s",
            "containers": [{"name": "app", "usage": {"cpu": "10m", "memory": "1Mi"}}]
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_whose_timestamp_has_not_moved_is_not_written_again() {
        let first = select(
            vec![
                pod("a", "2026-12-01T00:00:15Z"),
                pod("b", "2026-12-01T00:00:15Z"),
            ],
            vec![],
            &Seen::default(),
        );
        assert_eq!((first.batch.containers.len(), first.unchanged), (2, 0));
        let second = select(
            vec![
                pod("a", "2026-12-01T00:00:15Z"),
                pod("b", "2026-12-01T00:00:30Z"),
            ],
            vec![],
            &first.seen,
        );
        assert_eq!((second.batch.containers.len(), second.unchanged), (1, 1));
        assert_eq!(second.batch.containers[0].pod, "b");
        // A pod that is gone is forgotten: bounded memory.
        let third = select(vec![], vec![], &second.seen);
        assert!(third.seen.pods.is_empty());
        let bad = select(vec![pod("c", "noon")], vec![], &Seen::default());
        assert_eq!(bad.bad, 1);
        assert!(bad.first_bad.unwrap().contains("shop/c"));
    }

    #[test]
    fn missing_and_unavailable_are_told_apart() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("service unavailable", "")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert_eq!(Availability::of_error(&api(404)), Availability::Missing);
        assert!(matches!(
            Availability::of_error(&api(503)),
            Availability::Unavailable(_)
        ));
        assert!(matches!(
            Availability::of_error(&api(500)),
            Availability::Failing(_)
        ));
    }
}
