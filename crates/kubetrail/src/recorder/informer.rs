//! The event loop: list+watch every watched kind (pods, nodes) with kube-runtime's watcher,
//! feed every event to the cache through the kind seam ([`super::kind`]), and hand the
//! resulting rows to the writer in batches.
//!
//! One task owns the cache, so there are no locks on the hot path; JSON decoding happens as the
//! watch streams are polled, and SQLite runs on the writer's own thread. kube-runtime has no
//! resync, so periodic work (node keyframes, the status line) runs on our own timers.
//!
//! The loop is fair: each turn picks at random among the ready streams and timers, so a pod
//! stream with a backlog (a big relist, a burst of changes) cannot starve the node stream, the
//! flushes or the probes. Timers skip the ticks they missed rather than firing in a burst. A
//! stream that is silent for too long is probed and, if the server does not answer, restarted
//! (see [`super::health`]). Shutdown is obeyed even while the writer cannot commit.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::FusedFuture;
use futures::{FutureExt, StreamExt};
use kube::api::ListParams;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

use super::cache::Cache;
use super::detect::Observation;
use super::events;
use super::events::watch::{EventsConfig, Known};
use super::health::Silence;
use super::kind::{Applied, WatchedKind, apply_event};
use super::objects::{Node, Pod};
use super::owners;
use super::resume::{load_left_scope, load_open_state};
use super::stats::{RecorderStats, Resource};
use super::stream::{Horizon, ListProgress, ProbeAnswers, Watch, came_back};
use super::writer::{Budget, WeakWriteSender, WriteMsg, Writer, WriterOptions};
use crate::model::selector::LabelSelector;
use crate::model::time::now_ms;
use crate::store::{Batch, Heartbeat, HistoryWriter};

/// What to watch and how often to do periodic work.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// Only this namespace's pods; None for all namespaces.
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    /// Node usage keyframes.
    pub snapshot_interval: Duration,
    /// The periodic one-line status in the log.
    pub status_interval: Duration,
    /// Rows per batch before it is handed to the writer.
    pub batch_rows: usize,
    /// Longest time rows wait before they are handed to the writer.
    pub flush_interval: Duration,
    /// Page size of list requests.
    pub page_size: u32,
    /// The API server's URL, for messages.
    pub server: String,
    /// Server-side timeout of each watch request (kube's default is 290 s); the watch is then
    /// resumed from its last resourceVersion.
    pub watch_timeout: Duration,
    /// Watch nodes too. Off for an identity that may only read pods in one namespace: pods are
    /// recorded as usual, node utilisation is not.
    pub watch_nodes: bool,
    /// `--unready-after`: a silent stream is noticed within it (see [`Silence`]).
    pub unready_after: Duration,
    /// `--max-db-size`: the writer keeps the database and its write-ahead log within it.
    pub max_db_bytes: Option<u64>,
    /// Watch Kubernetes Events about pods and nodes (off with `--no-events`).
    pub watch_events: bool,
    /// Watch ReplicaSets and Jobs, the chain from pods to workloads (off with `--no-owners`).
    pub watch_owners: bool,
    /// Event rows that may wait for the writer; beyond, new events are dropped and counted.
    pub event_queue_rows: usize,
    /// How often the metrics API is sampled (`--usage-interval`); None with `--no-usage`.
    pub usage_interval: Option<Duration>,
}

impl RecorderConfig {
    /// What the recording session stores about this run's scope.
    pub fn scope(&self) -> crate::store::Scope {
        crate::store::Scope {
            namespace: self.namespace.clone(),
            selector: self.label_selector.clone(),
            nodes: self.watch_nodes,
        }
    }
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            namespace: None,
            label_selector: None,
            snapshot_interval: Duration::from_secs(30 * 60),
            status_interval: Duration::from_secs(10),
            batch_rows: 5_000,
            flush_interval: Duration::from_millis(100),
            page_size: 2000,
            server: String::new(),
            watch_timeout: Duration::from_secs(290),
            watch_nodes: true,
            unready_after: Duration::from_secs(60),
            max_db_bytes: None,
            watch_events: true,
            watch_owners: true,
            event_queue_rows: 50_000,
            usage_interval: Some(Duration::from_secs(30)),
        }
    }
}

/// Handed back when the recorder stops.
pub struct RecordOutcome {
    /// The store, still locked.
    pub store: Box<dyn HistoryWriter>,
    pub stats: Arc<RecorderStats>,
}

/// How often, at most, a failing stream's API is probed to learn that it answers again.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// After a stop signal, how long the last rows may wait for room in the writer's queue, and
/// then how long the writer may retry a failing commit: together well inside the 10 s a
/// supervisor (Kubernetes, systemd) gives before SIGKILL.
const STOP_SEND_WAIT: Duration = Duration::from_secs(2);
const STOP_COMMIT_GRACE: Duration = Duration::from_secs(5);

/// A timer that skips the ticks it missed (a stall, a suspended laptop) instead of firing them
/// all at once: after a 4-minute stall the status line is logged once, not 23 times.
fn periodic(period: Duration) -> Interval {
    periodic_from(tokio::time::Instant::now(), period)
}

fn periodic_from(start: tokio::time::Instant, period: Duration) -> Interval {
    let mut interval = tokio::time::interval_at(start, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    interval
}

struct Loop {
    cache: Cache,
    batch: Batch,
    batch_since: Option<Instant>,
    writer: Writer,
    stats: Arc<RecorderStats>,
    pods: ListProgress,
    nodes: ListProgress,
    started: Instant,
    /// The initial lists are done; after the next flush, tell the writer to log the commit.
    committed_marker: bool,
    /// The marker is still to be queued (the writer's queue had no room for it yet).
    marker_pending: bool,
    /// When node usage rows were last emitted.
    usage_flushed: Instant,
    /// A stop signal came while rows were being handed to the writer.
    stopping: bool,
    /// The writer thread has stopped: nothing more can be recorded.
    writer_gone: bool,
    /// For looking up pods a selector-filtered list no longer shows (None in unit tests).
    client: Option<Client>,
    /// The recording session whose heartbeat the status tick moves (None in unit tests).
    session: Option<i64>,
    /// Set to true by the writer once the initial list is committed (the events watch waits
    /// for it).
    initial_committed: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Node usage rows are emitted at most this often: a node's changes within one such span
/// become one step (its value at the end of the span). A busy node changes many times a
/// second; a row for each would be most of the file, for no useful resolution.
const USAGE_RESOLUTION: Duration = Duration::from_secs(1);

/// Rows the loop keeps while commits fail before it waits for the writer (about 50 MB):
/// minutes of a busy cluster's events, so that an outage of the database is ridden out with
/// true times.
const HELD_ROWS: usize = 200_000;

impl Loop {
    fn new(cache: Cache, writer: Writer, stats: Arc<RecorderStats>) -> Self {
        Loop {
            cache,
            batch: Batch::default(),
            batch_since: None,
            writer,
            stats,
            pods: ListProgress::new(Resource::Pods),
            nodes: ListProgress::new(Resource::Nodes),
            started: Instant::now(),
            committed_marker: false,
            marker_pending: false,
            usage_flushed: Instant::now(),
            stopping: false,
            writer_gone: false,
            client: None,
            session: None,
            initial_committed: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    fn note_batch(&mut self) {
        if self.batch_since.is_none() {
            self.batch_since = Some(Instant::now());
        }
    }

    /// Hands the batch to the writer; node usage goes with it once per [`USAGE_RESOLUTION`],
    /// or now with `all`. While the writer's queue is full this waits (backpressure), which
    /// costs at most a commit's time; but while commits are failing (a database that cannot be
    /// reached, a full disk) the rows stay in the batch and the loop goes on reading events,
    /// up to [`HELD_ROWS`]: waiting then would leave events unread on the stream for as long
    /// as the outage, and the rows they make would carry the time they were finally read.
    /// Never past a stop signal: the batch is then kept for [`Loop::flush_at_stop`].
    async fn flush<S>(&mut self, all: bool, shutdown: &mut S)
    where
        S: Future<Output = ()> + FusedFuture + Unpin,
    {
        if all || self.usage_flushed.elapsed() >= USAGE_RESOLUTION {
            self.cache.flush_usage(now_ms(), &mut self.batch);
            self.usage_flushed = Instant::now();
        }
        if self.batch.is_empty() {
            self.batch_since = None;
            return;
        }
        if shutdown.is_terminated() {
            self.stopping = true;
            return;
        }
        if self.batch.len() < HELD_ROWS && self.commits_failing() {
            match self.writer.try_reserve() {
                Some(permit) => {
                    let batch = std::mem::take(&mut self.batch);
                    let since = self.batch_since.take().unwrap_or_else(Instant::now);
                    permit.send(WriteMsg::Rows { batch, since });
                    return;
                }
                // Keep the rows, and try again at the next flush.
                None if self.writer.is_alive() => return,
                // Gone: `reserve` below says so.
                None => {}
            }
        }
        let permit = tokio::select! {
            permit = self.writer.reserve() => permit,
            () = &mut *shutdown => {
                self.stopping = true;
                return;
            }
        };
        let Some(permit) = permit else {
            self.writer_gone = true;
            return;
        };
        let batch = std::mem::take(&mut self.batch);
        let since = self.batch_since.take().unwrap_or_else(Instant::now);
        permit.send(WriteMsg::Rows { batch, since });
    }

    /// Whether the writer's commits are failing now (it says why in `blocked`).
    fn commits_failing(&self) -> bool {
        self.stats
            .writer
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// After a stop signal: hands over what is left, waiting [`STOP_SEND_WAIT`] at most for
    /// room in the queue; rows that cannot be handed over are counted as not committed.
    async fn flush_at_stop(&mut self) {
        self.cache.flush_usage(now_ms(), &mut self.batch);
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let since = self.batch_since.take().unwrap_or_else(Instant::now);
        match tokio::time::timeout(STOP_SEND_WAIT, self.writer.reserve()).await {
            Ok(Some(permit)) => permit.send(WriteMsg::Rows { batch, since }),
            _ => self
                .stats
                .writer
                .rows_not_committed
                .inc_by(batch.len() as u64),
        }
    }

    /// Probes every watched stream that is failing, or quiet for longer than
    /// `silence.quiet_after`, unless a probe of it is already under way.
    fn start_probes(
        &mut self,
        silence: Silence,
        pods: &Watch<Pod>,
        nodes: &Watch<Node>,
        answers: &ProbeAnswers,
    ) {
        for resource in [Resource::Pods, Resource::Nodes] {
            let progress = match resource {
                Resource::Pods => &mut self.pods,
                Resource::Nodes => &mut self.nodes,
            };
            let failing = self.stats.stream(resource).failing().is_some();
            let quiet = progress.alive_at.elapsed() >= silence.quiet_after;
            if !progress.watched || progress.probing || !(failing || quiet) {
                continue;
            }
            progress.probing = true;
            match resource {
                Resource::Pods => pods.spawn_probe(resource, silence.probe_timeout, answers),
                Resource::Nodes => nodes.spawn_probe(resource, silence.probe_timeout, answers),
            }
        }
    }

    /// A probe's answer. Answered: the stream's API works. Not answered while the stream
    /// seemed healthy (it has only been quiet): the stream is silent, so it is counted, logged,
    /// marked failing since its last sign of life (for `/readyz`) and restarted.
    fn probed(
        &mut self,
        resource: Resource,
        answered: bool,
        silence: Silence,
        pods: &mut Watch<Pod>,
        nodes: &mut Watch<Node>,
    ) {
        let progress = match resource {
            Resource::Pods => &mut self.pods,
            Resource::Nodes => &mut self.nodes,
        };
        progress.probing = false;
        if answered {
            progress.alive();
            came_back(&self.stats, resource);
            return;
        }
        let quiet = progress.alive_at.elapsed();
        if self.stats.stream(resource).failing().is_some() || quiet < silence.quiet_after {
            // Already failing (the watcher retries by itself), or an event came meanwhile.
            return;
        }
        let error = format!(
            "silent: no event for {} s, and the API server did not answer a {} probe within {} s",
            quiet.as_secs(),
            resource.as_str(),
            silence.probe_timeout.as_secs()
        );
        tracing::warn!(
            "{} watch {error}; restarting the watch (it will list again)",
            resource.singular()
        );
        self.stats.count_silent(resource);
        self.stats
            .stream(resource)
            .fail(progress.alive_at_ms, error);
        progress.inferring.failed();
        match resource {
            Resource::Pods => pods.restart(),
            Resource::Nodes => nodes.restart(),
        }
    }

    /// The bookkeeping of one stream.
    fn progress(&mut self, resource: Resource) -> &mut ListProgress {
        match resource {
            Resource::Pods => &mut self.pods,
            Resource::Nodes => &mut self.nodes,
        }
    }

    /// One item of a stream of kind `K`: an event goes to the cache (through the kind seam),
    /// an error to the stream's bookkeeping.
    async fn on_stream<K: WatchedKind>(
        &mut self,
        item: watcher::Result<Event<K>>,
        horizon: &Horizon,
        server: &str,
    ) {
        match item {
            Ok(event) => {
                self.progress(K::RESOURCE)
                    .learn_horizon(&event, horizon)
                    .await;
                self.on_event(event);
            }
            Err(err) => {
                let stats = self.stats.clone();
                self.progress(K::RESOURCE).error(&err, &stats, server);
            }
        }
    }

    fn on_event<K: WatchedKind>(&mut self, event: Event<K>) {
        self.note_batch();
        let now = now_ms();
        // Not `self.progress()`: the cache, the batch and the stats are borrowed beside it.
        let progress = match K::RESOURCE {
            Resource::Pods => &mut self.pods,
            Resource::Nodes => &mut self.nodes,
        };
        let cache = &self.cache;
        progress.received(&event, |object| object.is_cached(cache), &self.stats);
        if matches!(event, Event::Init) {
            progress.begin_list(&self.stats);
        }
        let live = |resource_version| progress.observe(now, resource_version);
        match apply_event(event, &mut self.cache, live, now, &mut self.batch) {
            Applied::Listed => progress.count += 1,
            Applied::ListDone { gone } => {
                progress.end_list(gone, self.started, &self.stats);
                self.after_list();
            }
            Applied::ListBegan | Applied::Watched => {}
        }
        K::cached_gauge(&self.stats).set(K::cached_count(&self.cache) as i64);
    }

    /// Looks up, by namespace and name, the pods a selector-filtered list no longer showed:
    /// the same uid still there left the scope (relabelled); otherwise it was deleted. A lookup
    /// that fails counts as deleted, as without a selector.
    async fn resolve_missing(&mut self) {
        let unresolved = self.cache.take_unresolved();
        if unresolved.is_empty() {
            return;
        }
        let Some(client) = self.client.clone() else {
            for last in unresolved {
                let obs = Observation::inferred(now_ms());
                self.cache.resolve_missing(last, None, obs, &mut self.batch);
            }
            self.note_batch();
            return;
        };
        for last in unresolved {
            let api: Api<Pod> = Api::namespaced(client.clone(), &last.namespace);
            // A list by name, not a get: list and watch are all the recorder's RBAC grants.
            let params = ListParams::default().fields(&format!("metadata.name={}", last.name));
            let lookup = api.list(&params);
            let found = match tokio::time::timeout(Duration::from_secs(10), lookup).await {
                Ok(Ok(list)) => list.items.into_iter().next(),
                Ok(Err(err)) => {
                    tracing::warn!(pod = %last.name, %err, "cannot look up a pod missing from the list; taking it for deleted");
                    None
                }
                Err(_) => {
                    tracing::warn!(pod = %last.name, "looking up a pod missing from the list timed out; taking it for deleted");
                    None
                }
            };
            let obs = Observation::inferred(now_ms());
            self.cache
                .resolve_missing(last, found, obs, &mut self.batch);
            self.note_batch();
        }
    }

    fn after_list(&mut self) {
        if self.pods.listed_once
            && self.nodes.listed_once
            && self.stats.initial_list_ms.load(Ordering::Relaxed) == 0
        {
            let ms = self.started.elapsed().as_millis().max(1) as u64;
            self.stats.initial_list_ms.store(ms, Ordering::Relaxed);
            tracing::info!(
                pods = self.cache.pod_count(),
                nodes = self.cache.node_count(),
                elapsed_ms = ms,
                "initial list of pods and nodes done; following changes"
            );
            self.committed_marker = true;
        }
    }

    /// Queues a message that the writer logs once everything before it is committed, which is
    /// when the initial list is really on disk: readiness waits for it, and the benchmarks
    /// report it. Returns whether it was queued.
    ///
    /// It waits for room in the queue like a batch does (a full queue means a slow database,
    /// and dropping the marker there once left a recorder unready for good), except while
    /// commits fail, when the loop must go on reading events ([`Loop::flush`]); then it is
    /// tried again on the next turn of the loop. A stop signal ends the wait.
    async fn send_committed_marker<S>(&mut self, shutdown: &mut S) -> bool
    where
        S: Future<Output = ()> + FusedFuture + Unpin,
    {
        let started = self.started;
        let stats = self.stats.clone();
        let committed = self.initial_committed.clone();
        let job = move |_: &mut dyn HistoryWriter| {
            let ms = started.elapsed().as_millis() as u64;
            stats
                .initial_committed_ms
                .store(ms.max(1), Ordering::Relaxed);
            tracing::info!(
                elapsed_ms = ms,
                rows = stats.writer.rows.get(),
                "initial list committed to the database"
            );
            // After the line: the events watch logs that it begins after it, in order.
            committed.send_replace(true);
        };
        let permit = match self.writer.try_reserve() {
            Some(permit) => Some(permit),
            None if self.commits_failing() && self.writer.is_alive() => return false,
            // A stop that already came is not waited on again (as in `flush`).
            None if shutdown.is_terminated() => {
                self.stopping = true;
                return false;
            }
            None => tokio::select! {
                permit = self.writer.reserve() => permit,
                () = &mut *shutdown => {
                    self.stopping = true;
                    return false;
                }
            },
        };
        match permit {
            Some(permit) => permit.send(WriteMsg::Maintenance(Box::new(job))),
            None => self.writer_gone = true,
        }
        true
    }

    /// Logs the status line; `elapsed` is the time since the last one (ticks may be skipped).
    /// An idle cluster commits nothing: the session's heartbeat still moves, queued behind any
    /// rows not yet committed, so covered time never runs ahead of the history.
    fn heartbeat(&mut self) {
        let Some(session) = self.session else {
            return;
        };
        let job = move |store: &mut dyn HistoryWriter| {
            let hb = Heartbeat {
                session,
                at_ms: now_ms(),
            };
            if let Err(err) = store.heartbeat(hb) {
                tracing::warn!(error = %err.detail(), "cannot record the session's heartbeat");
            }
        };
        // A full queue means rows wait, and every commit moves the heartbeat itself: skipping
        // this one loses nothing, whereas waiting for room would stop the loop reading events.
        if let Some(permit) = self.writer.try_reserve() {
            permit.send(WriteMsg::Maintenance(Box::new(job)));
        }
    }

    fn status_line(&self, events_before: u64, elapsed: Duration) -> u64 {
        let events = self.stats.events_total();
        let w = &self.stats.writer;
        tracing::info!(
            events_per_sec =
                ((events - events_before) as f64 / elapsed.as_secs_f64().max(0.001)).round(),
            rows_written = w.rows.get(),
            transitions = w.transitions_total(),
            write_lag_ms = (w.refresh_lag(now_ms()) * 1000.0).round() as u64,
            pods = self.cache.pod_count(),
            nodes = self.cache.node_count(),
            "status"
        );
        events
    }
}

/// Receives a weak sender of the writer's channel once the writer has started.
type WriterHook = Box<dyn FnOnce(WeakWriteSender) + Send>;

/// A recorder ready to run: `stats()` can be read (by tests, the demo, /metrics) while it runs.
pub struct Recorder {
    client: Client,
    store: Box<dyn HistoryWriter>,
    config: RecorderConfig,
    stats: Arc<RecorderStats>,
    on_writer_started: Option<WriterHook>,
}

impl Recorder {
    pub fn new(client: Client, store: Box<dyn HistoryWriter>, config: RecorderConfig) -> Self {
        Recorder {
            client,
            store,
            config,
            stats: Arc::new(RecorderStats::default()),
            on_writer_started: None,
        }
    }

    /// Hands `hook` a weak sender of the writer's channel once the writer thread runs, for work
    /// that must run on the write connection between commits (`WriteMsg::Maintenance`: periodic
    /// retention). Weak, so it never keeps the writer alive when the recorder stops.
    pub fn on_writer_started(
        mut self,
        hook: impl FnOnce(WeakWriteSender) + Send + 'static,
    ) -> Self {
        self.on_writer_started = Some(Box::new(hook));
        self
    }

    pub fn stats(&self) -> Arc<RecorderStats> {
        self.stats.clone()
    }

    /// Records until `shutdown` completes, then commits everything received and returns the
    /// (still locked) store.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<RecordOutcome> {
        record(
            self.client,
            self.store,
            self.config,
            self.stats,
            self.on_writer_started,
            shutdown,
        )
        .await
    }
}

async fn record(
    client: Client,
    mut store: Box<dyn HistoryWriter>,
    config: RecorderConfig,
    stats: Arc<RecorderStats>,
    on_writer_started: Option<WriterHook>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RecordOutcome> {
    let selector = match &config.label_selector {
        Some(s) => {
            Some(LabelSelector::parse(s).map_err(|e| anyhow::anyhow!("--selector {s:?}: {e}"))?)
        }
        None => None,
    };
    let mut cache = Cache::with_selector(selector.clone());
    let mut read = store.read()?;
    let (pods, nodes) =
        load_open_state(&mut *read, config.namespace.as_deref(), selector.as_ref())?;
    if selector.is_some() {
        cache.load_left_scope(load_left_scope(&mut *read, config.namespace.as_deref())?);
    }
    if !pods.is_empty() || !nodes.is_empty() {
        tracing::info!(
            open_pods = pods.len(),
            open_nodes = nodes.len(),
            "resuming: the first list will be reconciled against the database"
        );
    }
    cache.load(pods, nodes);
    // What the store holds of recent events: a relist after a restart then adds only what is
    // new (the store is idempotent by uid and count besides).
    let known_events = if config.watch_events {
        let known = Known::load(&mut *read, now_ms())?;
        if !known.is_empty() {
            tracing::info!(
                events = known.len(),
                "resuming events: those already recorded are not written again"
            );
        }
        Some(known)
    } else {
        None
    };
    // The owners the store holds open: a relist after a restart writes only what changed.
    let known_owners = if config.watch_owners {
        let known = owners::watch::Known::load(&mut *read, config.namespace.as_deref())?;
        if !known.is_empty() {
            tracing::info!(
                owners = known.len(),
                "resuming owners: ReplicaSets and Jobs already recorded are not written again"
            );
        }
        Some(known)
    } else {
        tracing::info!("not watching ReplicaSets and Jobs (--no-owners)");
        None
    };
    // The previous run followed events until its last commit (its session's heartbeat): the
    // open pods it left were there then.
    if let Some(last) = read.sessions()?.last() {
        cache.followed_pods_until(last.end_ms());
    }
    drop(read);
    // The session says from when, and with what scope, the history covers time (query::coverage).
    let session = store.start_session(&config.scope(), now_ms())?;
    // Channel capacity in batches: enough to ride out a slow commit, small enough to bound memory.
    let options = WriterOptions {
        session: Some(session),
        budget: config.max_db_bytes.map(|max_bytes| Budget { max_bytes }),
    };
    let (event_sender, event_receiver) = match known_events {
        Some(known) => {
            let (tx, rx) = events::queue::channel(config.event_queue_rows, stats.events.clone());
            (Some((tx, known)), Some(rx))
        }
        None => {
            tracing::info!("not watching Kubernetes Events (--no-events)");
            (None, None)
        }
    };
    let writer =
        Writer::spawn_with_events(store, 16, stats.writer.clone(), options, event_receiver);
    if let Some(hook) = on_writer_started {
        hook(writer.weak_sender());
    }

    let pod_api: Api<Pod> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let node_api: Api<Node> = Api::all(client.clone());
    let timeout = config.watch_timeout.as_secs().clamp(1, u32::MAX as u64) as u32;
    // Bookmarks are requested (kube-runtime's default): they keep a quiet watch's
    // resourceVersion fresh, so a resume after a cut rarely needs a relist.
    let mut pod_config = watcher::Config::default()
        .page_size(config.page_size)
        .timeout(timeout);
    if let Some(selector) = &config.label_selector {
        pod_config = pod_config.labels(selector);
    }
    let mut pods = Watch::of(pod_api, pod_config);
    let mut nodes = if config.watch_nodes {
        Watch::of(
            node_api,
            watcher::Config::default()
                .page_size(config.page_size)
                .timeout(timeout),
        )
    } else {
        tracing::info!("not watching nodes (--no-nodes): node utilisation is not recorded");
        Watch::new(
            || futures::stream::pending().boxed(),
            |_| async { true }.boxed(),
            || async { None }.boxed(),
        )
    };

    // What the side tasks wait on before they begin (see `begin`): the initial list committed.
    let initial_committed = Arc::new(tokio::sync::watch::Sender::new(false));
    let after_initial_list = || {
        let mut committed = initial_committed.subscribe();
        async move {
            // An error means the loop is gone: the stop signal follows.
            let _ = committed.wait_for(|done| *done).await;
        }
    };
    // The events watch: a task of its own, stopped before the writer is finished so that its
    // last batch is committed.
    let (stop_events, events_stopped) = tokio::sync::oneshot::channel::<()>();
    let events_task = event_sender.map(|(queue, known)| {
        let events_config = EventsConfig {
            namespace: config.namespace.clone(),
            page_size: config.page_size,
            watch_timeout_secs: timeout,
            flush_interval: config.flush_interval,
            batch_rows: 2_000,
        };
        let stop = events_stopped.map(|_| ());
        let begin = after_initial_list();
        tokio::spawn(events::watch::run(
            client.clone(),
            events_config,
            known,
            queue,
            stats.events.clone(),
            begin,
            stop,
        ))
    });

    // The owners watch: a task of its own, sending to the writer's main queue; stopped before
    // the writer is finished so that its last rows are committed. It begins once the initial
    // list is committed.
    let (stop_owners, owners_stopped) = tokio::sync::oneshot::channel::<()>();
    let owners_task = known_owners.map(|known| {
        let owners_config = owners::watch::OwnersConfig {
            namespace: config.namespace.clone(),
            page_size: config.page_size,
            watch_timeout_secs: timeout,
            flush_interval: config.flush_interval,
        };
        let begin = after_initial_list();
        tokio::spawn(owners::watch::run(
            client.clone(),
            owners_config,
            known,
            writer.weak_sender(),
            begin,
            owners_stopped.map(|_| ()),
        ))
    });
    // The usage sampler: a task of its own, writing through the writer's queue like retention.
    let (stop_usage, usage_stopped) = tokio::sync::oneshot::channel::<()>();
    let (resources, mut resource_asks) = super::usage::resources::channel();
    let usage_task = match config.usage_interval {
        Some(interval) => {
            let usage_config = super::usage::sample::UsageConfig {
                namespace: config.namespace.clone(),
                selector: config.label_selector.clone(),
                nodes: config.watch_nodes,
                interval,
            };
            let begin = after_initial_list();
            Some(tokio::spawn(super::usage::sample::run(
                client.clone(),
                usage_config,
                resources,
                writer.weak_sender(),
                stats.usage.clone(),
                begin,
                usage_stopped.map(|_| ()),
            )))
        }
        None => {
            tracing::info!("not sampling the metrics API (--no-usage)");
            None
        }
    };

    let mut state = Loop::new(cache, writer, stats.clone());
    state.initial_committed = initial_committed;
    state.client = Some(client.clone());
    state.session = Some(session);
    if !config.watch_nodes {
        // Nothing to list: the initial list is the pods' alone.
        state.nodes.listed_once = true;
        state.nodes.watched = false;
        stats.nodes.listed.store(true, Ordering::Relaxed);
    }
    let shutdown = shutdown.fuse();
    tokio::pin!(shutdown);
    let result = run_loop(
        &mut state,
        &mut pods,
        &mut nodes,
        &mut resource_asks,
        &config,
        &mut shutdown,
    )
    .await;
    drop((pods, nodes));
    tracing::info!("stopping: committing what was received");
    state.flush_at_stop().await;
    let _ = stop_events.send(());
    let _ = stop_usage.send(());
    if let Some(task) = usage_task {
        let _ = tokio::time::timeout(STOP_SEND_WAIT, task).await;
    }
    if let Some(task) = events_task {
        let _ = tokio::time::timeout(STOP_SEND_WAIT, task).await;
    }
    let _ = stop_owners.send(());
    if let Some(task) = owners_task {
        let _ = tokio::time::timeout(STOP_SEND_WAIT, task).await;
    }
    let finished = state.writer.finish(STOP_COMMIT_GRACE).await;
    // A dead writer's own message (its panic) says more than the loop's.
    let mut store = finished?;
    let hb = Heartbeat {
        session,
        at_ms: now_ms(),
    };
    if let Err(err) = store.stop_session(hb) {
        tracing::warn!(error = %err.detail(), "cannot record the end of the recording session");
    }
    result?;
    let lost = stats.writer.rows_not_committed.get();
    if lost > 0 {
        let why = stats
            .writer
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "the writer could not keep up".into());
        anyhow::bail!(
            "stopped, but {lost} rows could not be committed ({why}); the next start \
             reconciles them from the API server"
        );
    }
    Ok(RecordOutcome { store, stats })
}

/// The event loop proper, until `shutdown` completes or the writer is gone.
async fn run_loop<S>(
    state: &mut Loop,
    pods: &mut Watch<Pod>,
    nodes: &mut Watch<Node>,
    resource_asks: &mut mpsc::Receiver<super::usage::resources::Ask>,
    config: &RecorderConfig,
    shutdown: &mut S,
) -> anyhow::Result<()>
where
    S: Future<Output = ()> + FusedFuture + Unpin,
{
    let silence = Silence::for_unready_after(config.unready_after);
    let (answers, mut probe_answers) = mpsc::unbounded_channel();
    let mut probe_tick = periodic(silence.quiet_after.min(PROBE_EVERY));
    let mut flush_tick = periodic(config.flush_interval);
    let mut keyframe_tick = periodic(config.snapshot_interval);
    keyframe_tick.tick().await; // the first tick is immediate; the list makes the first rows
    let mut status_tick = periodic(config.status_interval);
    status_tick.tick().await;
    let mut events_at_last_status = 0;
    let mut last_status = Instant::now();

    loop {
        // Not `biased`: a branch that is always ready (a pod backlog) must not starve the rest.
        tokio::select! {
            () = &mut *shutdown => break,
            Some(item) = pods.events.next() => {
                state.on_stream(item, &pods.horizon, &config.server).await;
            }
            Some(item) = nodes.events.next() => {
                state.on_stream(item, &nodes.horizon, &config.server).await;
            }
            Some((resource, answered)) = probe_answers.recv() => {
                state.probed(resource, answered, silence, pods, nodes);
            }
            // A usage sample for its containers' requests (see `usage::resources`).
            Some(mut ask) = resource_asks.recv() => {
                state.cache.fill_container_resources(&mut ask.batch);
                let _ = ask.reply.send(ask.batch);
            }
            _ = probe_tick.tick() => state.start_probes(silence, pods, nodes, &answers),
            _ = flush_tick.tick() => state.flush(false, shutdown).await,
            _ = keyframe_tick.tick() => {
                state.cache.keyframes(now_ms(), &mut state.batch);
                state.note_batch();
            }
            _ = status_tick.tick() => {
                events_at_last_status = state.status_line(events_at_last_status, last_status.elapsed());
                last_status = Instant::now();
                state.heartbeat();
            }
        }
        state.resolve_missing().await;
        if state.batch.len() >= config.batch_rows || state.committed_marker {
            state.flush(state.committed_marker, shutdown).await;
        }
        if state.committed_marker {
            state.committed_marker = false;
            state.marker_pending = true;
        }
        if state.marker_pending && !state.stopping && state.send_committed_marker(shutdown).await {
            state.marker_pending = false;
        }
        if state.writer_gone || !state.writer.is_alive() {
            anyhow::bail!(
                "the database writer has stopped, so nothing more can be recorded; exiting so that a supervisor restarts kubetrail"
            );
        }
        if state.stopping {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
