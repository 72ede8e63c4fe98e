//! One watch stream of the event loop: its list bookkeeping (first list, relists, what each
//! found), whether its events are inferred after a failure (by resourceVersion, see
//! [`Inferring`]), its last sign of life, and how to restart it and probe its API. The loop in
//! [`super::informer`] owns two of them, for pods and nodes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use kube::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use super::backoff::paced;
use super::detect::{Inferring, Observation};
use super::health::{current_resource_version, describe, error_code, hint, probe};
use super::stats::{EventType, RecorderStats, Resource};
use crate::model::time::now_ms;

/// The state of one of the two watch streams.
pub(super) struct ListProgress {
    pub(super) resource: Resource,
    /// False for nodes under `--no-nodes`: nothing to probe.
    pub(super) watched: bool,
    pub(super) listed_once: bool,
    pub(super) count: usize,
    /// Whether events are inferred after an error, by their resourceVersion.
    pub(super) inferring: Inferring,
    /// The last sign of life from the server on this stream: an event (not `Init`) or a probe
    /// that was answered. Monotonic, and the same in Unix ms for `/readyz`.
    pub(super) alive_at: Instant,
    pub(super) alive_at_ms: i64,
    /// A probe of this stream's API is under way.
    pub(super) probing: bool,
}

impl ListProgress {
    pub(super) fn new(resource: Resource) -> Self {
        ListProgress {
            resource,
            watched: true,
            listed_once: false,
            count: 0,
            inferring: Inferring::Live,
            alive_at: Instant::now(),
            alive_at_ms: now_ms(),
            probing: false,
        }
    }

    pub(super) fn alive(&mut self) {
        self.alive_at = Instant::now();
        self.alive_at_ms = now_ms();
    }

    /// A (re)list begins. It reconciles everything, so whatever a failed watch missed is caught
    /// up by it: nothing is marked inferred afterwards.
    pub(super) fn begin_list(&mut self, stats: &RecorderStats) {
        self.inferring.reconciled();
        self.count = 0;
        if self.listed_once {
            stats.count_relist(self.resource);
            tracing::info!(
                "{} watch: relisting (the watch could not resume)",
                self.resource.singular()
            );
        }
    }

    /// A (re)list is done; `gone` objects were absent from it.
    pub(super) fn end_list(&mut self, gone: usize, started: Instant, stats: &RecorderStats) {
        stats
            .stream(self.resource)
            .listed
            .store(true, Ordering::Relaxed);
        if self.listed_once {
            tracing::info!(
                listed = self.count,
                deleted_while_away = gone,
                "{} relist done",
                self.resource.singular()
            );
        } else {
            tracing::info!(
                listed = self.count,
                deleted_while_away = gone,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "initial {} list done",
                self.resource.singular()
            );
        }
        self.listed_once = true;
    }

    /// Every event the stream yields, before it is handled: an answer from the server means
    /// the stream works (`Init` is not one: kube-runtime yields it before it sends the list
    /// request, so it comes before every failing list too), and an object is counted by type;
    /// `cached` tells whether the cache already holds it.
    pub(super) fn received<K>(
        &mut self,
        event: &Event<K>,
        cached: impl Fn(&K) -> bool,
        stats: &RecorderStats,
    ) {
        if !matches!(event, Event::Init) {
            self.alive();
            came_back(stats, self.resource);
        }
        let kind = match event {
            Event::InitApply(_) => EventType::Listed,
            Event::Apply(object) if cached(object) => EventType::Modified,
            Event::Apply(_) => EventType::Added,
            Event::Delete(_) => EventType::Deleted,
            Event::Init | Event::InitDone => return,
        };
        stats.count_event(self.resource, kind);
    }

    /// The stream yielded an error; kube-runtime retries it after our backoff.
    pub(super) fn error(&mut self, err: &watcher::Error, stats: &RecorderStats, server: &str) {
        self.inferring.failed();
        let code = error_code(err);
        stats.count_error(self.resource, &code);
        let error = describe(err);
        tracing::warn!(
            server,
            %error,
            "{} watch failed; retrying with backoff{}",
            self.resource.singular(),
            hint(&code, self.resource)
        );
        stats.stream(self.resource).fail(now_ms(), error);
    }

    /// Before the first watch event after a failure: asks the server for its resourceVersion
    /// now. Every event the resumed watch replays was sent before this answer, so it is at or
    /// below it; what happens from now on is above it (see [`Inferring`]). One short list per
    /// reconnect; if it fails, this event and the next count as inferred and it is asked again.
    pub(super) async fn learn_horizon<K>(&mut self, event: &Event<K>, horizon: &Horizon) {
        if !self.inferring.awaiting_horizon()
            || !matches!(event, Event::Apply(_) | Event::Delete(_))
        {
            return;
        }
        if let Some(horizon) = horizon().await {
            self.inferring.horizon(horizon);
            tracing::info!(
                "{} watch resumed; events up to resourceVersion {horizon} are replayed, marked inferred",
                self.resource.singular()
            );
        }
    }

    /// How to treat a live (non-list) event for an object at `resource_version`, arriving now.
    /// The end of the inferred events is logged: events queued behind the replay in the same stream
    /// are handled from then on, so until then the recorder sees live changes late.
    pub(super) fn observe(&mut self, now_ms: i64, resource_version: Option<i64>) -> Observation {
        let was_inferring = matches!(self.inferring, Inferring::Until(_));
        let obs = self.inferring.observe(resource_version, now_ms);
        if was_inferring && !obs.inferred {
            tracing::info!(
                "{} watch caught up: the replay is over, events are live again",
                self.resource.singular()
            );
        }
        obs
    }
}

/// Marks a stream healthy; if it was failing, counts and logs that it came back.
pub(super) fn came_back(stats: &RecorderStats, resource: Resource) {
    if stats.stream(resource).recover() {
        stats.count_restart(resource);
        tracing::info!(
            "the API server answers {} requests again",
            resource.as_str()
        );
    }
}

pub(super) type EventStream<K> = BoxStream<'static, watcher::Result<Event<K>>>;

/// One watch stream, with what it takes to start it again and to probe its API.
pub(super) struct Watch<K> {
    pub(super) events: EventStream<K>,
    pub(super) start: Box<dyn Fn() -> EventStream<K> + Send>,
    /// A one-object list with the given timeout; true when the server answered.
    pub(super) probe: Box<dyn Fn(Duration) -> BoxFuture<'static, bool> + Send>,
    /// The server's current resourceVersion, for the inferred events after a reconnect.
    pub(super) horizon: Horizon,
}

/// Asks the server for its current resourceVersion (None when it does not answer).
pub(super) type Horizon = Box<dyn Fn() -> BoxFuture<'static, Option<i64>> + Send>;

impl<K> Watch<K> {
    pub(super) fn new(
        start: impl Fn() -> EventStream<K> + Send + 'static,
        probe: impl Fn(Duration) -> BoxFuture<'static, bool> + Send + 'static,
        horizon: impl Fn() -> BoxFuture<'static, Option<i64>> + Send + 'static,
    ) -> Self {
        Watch {
            events: start(),
            start: Box::new(start),
            probe: Box::new(probe),
            horizon: Box::new(horizon),
        }
    }

    /// A kube-runtime watcher of `api`, paced by our backoff.
    pub(super) fn of(api: Api<K>, config: watcher::Config) -> Self
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        let probe_api = api.clone();
        let horizon_api = api.clone();
        Watch::new(
            move || paced(watcher::watcher(api.clone(), config.clone()).boxed()),
            move |timeout| probe(probe_api.clone(), timeout).boxed(),
            move || {
                let api = horizon_api.clone();
                async move { current_resource_version(&api).await }.boxed()
            },
        )
    }

    /// Drops the stream (and its connection) and starts a new one, which lists again.
    pub(super) fn restart(&mut self) {
        self.events = (self.start)();
    }

    pub(super) fn spawn_probe(
        &self,
        resource: Resource,
        timeout: Duration,
        answers: &ProbeAnswers,
    ) {
        let probe = (self.probe)(timeout);
        let answers = answers.clone();
        tokio::spawn(async move {
            let answered = probe.await;
            let _ = answers.send((resource, answered));
        });
    }
}

/// Where probe tasks report whether the server answered.
pub(super) type ProbeAnswers = mpsc::UnboundedSender<(Resource, bool)>;
