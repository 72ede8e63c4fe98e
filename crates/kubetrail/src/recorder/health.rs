//! Is the recorder healthy? `/readyz` asks three questions, each answered from
//! [`RecorderStats`]:
//!
//! - `initial-lists`: have both initial lists been listed and committed to the database?
//! - `writer`: are the oldest rows waiting for a commit younger than the limit?
//! - `api`: has no watch been failing for longer than the limit?
//!
//! A watch that failed cannot tell us when it works again if the cluster is quiet (kube-runtime
//! resumes it without an event), so while a stream is failing the recorder probes the API server
//! with a one-object list of the same resource ([`probe`]), which needs the same permission.
//!
//! Silence is a fault too: a frozen API server (SIGSTOP, a dead node under a half-open
//! connection) keeps the watch connection open and sends nothing. kube-runtime consumes watch
//! bookmarks itself, and the kube-apiserver sends them only every minute or so on an idle watch;
//! its own idle timeout is the watch timeout plus 5 s (almost 5 minutes by default). So a
//! stream that has been quiet for [`Silence::quiet_after`] is probed the same way, with a
//! timeout; a probe that gets no answer marks the stream silent (see the informer), which
//! restarts it and, past `--unready-after`, makes the recorder unready.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::Api;
use kube::api::ListParams;
use kube::runtime::watcher;

use super::stats::{RecorderStats, Resource};

/// One line of `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    /// None when the check passes; otherwise why not.
    pub problem: Option<String>,
}

/// Every check, in a stable order; ready when none has a problem.
pub fn readiness(stats: &RecorderStats, now_ms: i64, limit: Duration) -> Vec<Check> {
    let limit_ms = limit.as_millis() as i64;
    let secs = |ms: i64| format!("{:.0} s", ms as f64 / 1000.0);

    let initial = if stats.initial_committed_ms.load(Ordering::Relaxed) > 0 {
        None
    } else {
        let state = |r: Resource| {
            if stats.stream(r).listed.load(Ordering::Relaxed) {
                "listed"
            } else {
                "not listed yet"
            }
        };
        Some(format!(
            "pods {}, nodes {}; ready once both are listed and committed",
            state(Resource::Pods),
            state(Resource::Nodes)
        ))
    };

    let pending = stats.writer.pending_since_ms.load(Ordering::Relaxed);
    let blocked = stats
        .writer
        .blocked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let writer = if !stats.writer.alive.load(Ordering::Relaxed) {
        Some("the database writer has stopped".to_string())
    } else {
        (pending > 0 && now_ms - pending > limit_ms).then(|| {
            let why = blocked.map(|b| format!("; {b}")).unwrap_or_default();
            format!(
                "the oldest rows waiting for a commit are {} old (limit {}); {} failed commits so far{why}",
                secs(now_ms - pending),
                secs(limit_ms),
                stats.writer.failed_commits.get()
            )
        })
    };

    let api = [Resource::Pods, Resource::Nodes]
        .into_iter()
        .filter_map(|r| {
            let (since, error) = stats.stream(r).failing()?;
            (now_ms - since > limit_ms).then(|| {
                format!(
                    "the {} watch has been failing for {} (limit {}): {error}",
                    r.as_str(),
                    secs(now_ms - since),
                    secs(limit_ms)
                )
            })
        })
        .reduce(|a, b| format!("{a}; {b}"));

    vec![
        Check {
            name: "initial-lists",
            problem: initial,
        },
        Check {
            name: "writer",
            problem: writer,
        },
        Check {
            name: "api",
            problem: api,
        },
    ]
}

/// The `code` label for a watch error: the HTTP status when the server answered, otherwise
/// what went wrong on our side.
pub fn error_code(err: &watcher::Error) -> String {
    let client_error = match err {
        watcher::Error::WatchError(status) => return status.code.to_string(),
        watcher::Error::NoResourceVersion => return "no_resource_version".into(),
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
    };
    match client_error {
        kube::Error::Api(status) => status.code.to_string(),
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => "decode".into(),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            "connect".into()
        }
        _ => "other".into(),
    }
}

/// A one-line description of a watch error. kube's own Display of an API error carries the
/// whole Status in Debug form; this keeps what an operator needs: what failed, code, reason,
/// message.
pub fn describe(err: &watcher::Error) -> String {
    let (what, client_error) = match err {
        watcher::Error::InitialListFailed(e) => ("list", e),
        watcher::Error::WatchStartFailed(e) => ("watch request", e),
        watcher::Error::WatchFailed(e) => ("watch stream", e),
        watcher::Error::WatchError(status) => {
            return format!(
                "watch ended with {} {}: {}",
                status.code, status.reason, status.message
            );
        }
        watcher::Error::NoResourceVersion => return err.to_string(),
    };
    match client_error {
        kube::Error::Api(status) => format!(
            "{what} answered {} {}: {}",
            status.code, status.reason, status.message
        ),
        other => format!("{what} failed: {other}"),
    }
}

/// A hint for errors an operator can fix, appended to the log line.
pub fn hint(code: &str, resource: Resource) -> &'static str {
    match (code, resource) {
        ("401", _) => " (the credentials were refused: check the kubeconfig or token)",
        ("403", Resource::Nodes) => {
            " (this identity may not list/watch nodes: grant it, see deploy/, or run with --no-nodes)"
        }
        ("403", Resource::Pods) => " (this identity may not list/watch pods: see deploy/ for RBAC)",
        _ => "",
    }
}

/// When a quiet stream is probed, and how long a probe may take, both derived from
/// `--unready-after` so that a frozen server is noticed within it: quiet for a quarter of it,
/// then a probe that times out after another quarter, checked at most a quarter apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Silence {
    /// A stream with no event for this long is probed.
    pub quiet_after: Duration,
    /// A probe without an answer after this long has failed.
    pub probe_timeout: Duration,
}

impl Silence {
    pub fn for_unready_after(unready_after: Duration) -> Silence {
        let quarter = unready_after / 4;
        Silence {
            quiet_after: quarter.clamp(Duration::from_secs(1), Duration::from_secs(30)),
            // Never below 2 s: a loaded server (or test machine) is slow, not silent.
            probe_timeout: quarter.clamp(Duration::from_secs(2), Duration::from_secs(10)),
        }
    }
}

/// Lists one object of `api`'s resource; true means the server answered within `timeout` and
/// lets us list.
pub async fn probe<K>(api: Api<K>, timeout: Duration) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = ListParams::default().limit(1);
    let list = api.list_metadata(&params);
    matches!(tokio::time::timeout(timeout, list).await, Ok(Ok(_)))
}

/// The server's current resourceVersion for a resource (a one-object list's), or None if it
/// does not answer within 10 s. After a watch fails, events up to it are inferred.
pub async fn current_resource_version<K>(api: &Api<K>) -> Option<i64>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = ListParams::default().limit(1);
    let list = api.list_metadata(&params);
    match tokio::time::timeout(Duration::from_secs(10), list).await {
        Ok(Ok(list)) => list.metadata.resource_version?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    #[test]
    fn a_frozen_server_is_noticed_within_unready_after() {
        for secs in [20, 60, 600] {
            let limit = Duration::from_secs(secs);
            let s = Silence::for_unready_after(limit);
            // Quiet, then one probe period late at worst, then the probe's timeout.
            let noticed = s.quiet_after * 2 + s.probe_timeout;
            assert!(noticed <= limit, "{secs} s: {s:?}");
        }
    }

    #[test]
    fn api_errors_are_described_in_one_line_with_their_code() {
        let status = kube::core::Status::failure("pods is forbidden", "Forbidden").with_code(403);
        let err = watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)));
        assert_eq!(
            describe(&err),
            "list answered 403 Forbidden: pods is forbidden"
        );
        assert_eq!(error_code(&err), "403");
        let gone =
            kube::core::Status::failure("too old resource version", "Expired").with_code(410);
        let err = watcher::Error::WatchError(Box::new(gone));
        assert_eq!(error_code(&err), "410");
        assert!(describe(&err).starts_with("watch ended with 410 Expired"));
    }

    fn problems(stats: &RecorderStats, now_ms: i64) -> Vec<(&'static str, String)> {
        readiness(stats, now_ms, LIMIT)
            .into_iter()
            .filter_map(|c| Some((c.name, c.problem?)))
            .collect()
    }

    fn ready_stats() -> RecorderStats {
        let stats = RecorderStats::default();
        stats.pods.listed.store(true, Ordering::Relaxed);
        stats.nodes.listed.store(true, Ordering::Relaxed);
        stats.initial_committed_ms.store(5, Ordering::Relaxed);
        stats
    }

    #[test]
    fn not_ready_until_both_lists_are_committed() {
        let stats = RecorderStats::default();
        let p = problems(&stats, 1_000);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "initial-lists");
        assert!(p[0].1.contains("pods not listed yet, nodes not listed yet"));
        stats.pods.listed.store(true, Ordering::Relaxed);
        stats.nodes.listed.store(true, Ordering::Relaxed);
        assert!(
            problems(&stats, 1_000)[0]
                .1
                .contains("pods listed, nodes listed")
        );
        stats.initial_committed_ms.store(900, Ordering::Relaxed);
        assert!(problems(&stats, 1_000).is_empty());
    }

    #[test]
    fn a_writer_behind_by_more_than_the_limit_is_not_ready() {
        let stats = ready_stats();
        stats
            .writer
            .pending_since_ms
            .store(100_000, Ordering::Relaxed);
        assert!(
            problems(&stats, 130_000).is_empty(),
            "30 s is within the limit"
        );
        let p = problems(&stats, 131_000);
        assert_eq!(p[0].0, "writer");
        assert!(p[0].1.contains("31 s old (limit 30 s)"), "{}", p[0].1);
        stats.writer.pending_since_ms.store(0, Ordering::Relaxed);
        assert!(problems(&stats, 131_000).is_empty());
    }

    #[test]
    fn a_watch_failing_for_longer_than_the_limit_is_not_ready() {
        let stats = ready_stats();
        stats.nodes.fail(10_000, "connection refused".into());
        assert!(problems(&stats, 39_000).is_empty(), "a short blip is fine");
        let p = problems(&stats, 45_000);
        assert_eq!(p[0].0, "api");
        assert!(
            p[0].1
                .contains("nodes watch has been failing for 35 s (limit 30 s): connection refused"),
            "{}",
            p[0].1
        );
        stats.nodes.recover();
        assert!(problems(&stats, 45_000).is_empty());
    }
}
