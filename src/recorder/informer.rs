//! The event loop: list+watch pods and nodes with kube-runtime's watcher, feed every event to
//! the cache, and hand the resulting rows to the writer in batches.
//!
//! One task owns the cache, so there are no locks on the hot path; JSON decoding happens as the
//! watch streams are polled, and SQLite runs on the writer's own thread. kube-runtime has no
//! resync, so periodic work (node keyframes, the status line) runs on our own timers.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use super::backoff::WatchBackoff;
use super::cache::Cache;
use super::detect::Observation;
use super::health::{describe, error_code, hint, probe};
use super::objects::{Node, Pod};
use super::resume::load_open_state;
use super::stats::{EventType, RecorderStats, Resource};
use super::writer::{WeakWriteSender, WriteMsg, Writer};
use crate::model::time::now_ms;
use crate::query::LabelSelector;
use crate::store::{Batch, WriteHandle};

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
        }
    }
}

/// Handed back when the recorder stops.
pub struct RecordOutcome {
    pub handle: WriteHandle,
    pub stats: Arc<RecorderStats>,
}

/// How long after a watch resumes from an error its events count as catching up.
///
/// A watch that resumes from its last resourceVersion after a cut or an outage first replays
/// what happened meanwhile. Those events are not live: their observation time can be far
/// behind the change. Rows from them are marked inferred, and a deletion among them takes the
/// pod's deletionTimestamp (when it has one) rather than our clock.
const CATCH_UP: Duration = Duration::from_secs(2);

/// How often a failing stream's API is probed to learn that it answers again.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// The state of one of the two watch streams.
struct ListProgress {
    resource: Resource,
    listed_once: bool,
    count: usize,
    /// The stream failed since its last event; the next event starts a catch-up.
    failed: bool,
    /// Events before this instant are a catch-up after an error.
    catch_up_until: Option<Instant>,
}

impl ListProgress {
    fn new(resource: Resource) -> Self {
        ListProgress {
            resource,
            listed_once: false,
            count: 0,
            failed: false,
            catch_up_until: None,
        }
    }

    /// A (re)list begins. It reconciles everything, so whatever a failed watch missed is caught
    /// up by it: no catch-up marking afterwards.
    fn begin_list(&mut self, stats: &RecorderStats) {
        self.failed = false;
        self.catch_up_until = None;
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
    fn end_list(&mut self, gone: usize, started: Instant, stats: &RecorderStats) {
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
    fn received<K>(&self, event: &Event<K>, cached: impl Fn(&K) -> bool, stats: &RecorderStats) {
        if !matches!(event, Event::Init) {
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
    fn error(&mut self, err: &watcher::Error, stats: &RecorderStats, server: &str) {
        self.failed = true;
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

    /// How to treat a live (non-list) event arriving now.
    fn observe(&mut self, now_ms: i64) -> Observation {
        if self.failed {
            self.failed = false;
            self.catch_up_until = Some(Instant::now() + CATCH_UP);
            tracing::info!(
                "{} watch resumed; events of the next {CATCH_UP:?} are a catch-up, marked inferred",
                self.resource.singular()
            );
        }
        match self.catch_up_until {
            Some(until) if Instant::now() < until => Observation::recovered(now_ms),
            _ => Observation::live(now_ms),
        }
    }
}

/// Marks a stream healthy; if it was failing, counts and logs that it came back.
fn came_back(stats: &RecorderStats, resource: Resource) {
    if stats.stream(resource).recover() {
        stats.count_restart(resource);
        tracing::info!(
            "the API server answers {} requests again",
            resource.as_str()
        );
    }
}

/// Probes, in the background, the API of every stream that is failing (see [`super::health`]):
/// a watch resumed on a quiet cluster yields no event to tell us it works.
fn spawn_probes(
    stats: &Arc<RecorderStats>,
    pods: &Api<Pod>,
    nodes: &Api<Node>,
) -> Option<tokio::task::JoinHandle<()>> {
    let pods_failing = stats.pods.failing().is_some();
    let nodes_failing = stats.nodes.failing().is_some();
    if !pods_failing && !nodes_failing {
        return None;
    }
    let (stats, pods, nodes) = (stats.clone(), pods.clone(), nodes.clone());
    Some(tokio::spawn(async move {
        if pods_failing && probe(pods).await {
            came_back(&stats, Resource::Pods);
        }
        if nodes_failing && probe(nodes).await {
            came_back(&stats, Resource::Nodes);
        }
    }))
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
    /// When node usage rows were last emitted.
    usage_flushed: Instant,
}

/// Node usage rows are emitted at most this often: a node's changes within one such span
/// become one step (its value at the end of the span). A busy node changes many times a
/// second; a row for each would be most of the file, for no useful resolution.
const USAGE_RESOLUTION: Duration = Duration::from_secs(1);

impl Loop {
    fn note_batch(&mut self) {
        if self.batch_since.is_none() {
            self.batch_since = Some(Instant::now());
        }
    }

    /// Hands the batch to the writer; node usage goes with it once per [`USAGE_RESOLUTION`],
    /// or now with `all`.
    async fn flush(&mut self, all: bool) {
        if all || self.usage_flushed.elapsed() >= USAGE_RESOLUTION {
            self.cache.flush_usage(now_ms(), &mut self.batch);
            self.usage_flushed = Instant::now();
        }
        if self.batch.is_empty() {
            self.batch_since = None;
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let since = self.batch_since.take().unwrap_or_else(Instant::now);
        if self
            .writer
            .send(WriteMsg::Rows { batch, since })
            .await
            .is_err()
        {
            tracing::error!("the database writer has stopped; rows could not be handed over");
        }
    }

    fn on_pod_event(&mut self, event: Event<Pod>) {
        let cache = &self.cache;
        self.pods
            .received(&event, |pod| cache.has_pod(&pod.state.uid), &self.stats);
        self.note_batch();
        let now = now_ms();
        match event {
            Event::Init => {
                self.pods.begin_list(&self.stats);
                self.cache.begin_pod_relist();
            }
            Event::InitApply(pod) => {
                self.pods.count += 1;
                self.cache
                    .apply_pod(pod, Observation::recovered(now), &mut self.batch);
            }
            Event::InitDone => {
                let gone = self
                    .cache
                    .end_pod_relist(Observation::recovered(now), &mut self.batch);
                self.pods.end_list(gone, self.started, &self.stats);
                self.after_list();
            }
            Event::Apply(pod) => {
                let obs = self.pods.observe(now);
                self.cache.apply_pod(pod, obs, &mut self.batch)
            }
            Event::Delete(pod) => {
                let obs = self.pods.observe(now);
                self.cache.delete_pod(pod, obs, &mut self.batch)
            }
        }
        self.stats.cached_pods.set(self.cache.pod_count() as i64);
    }

    fn on_node_event(&mut self, event: Event<Node>) {
        let cache = &self.cache;
        self.nodes
            .received(&event, |node| cache.has_node(&node.state.name), &self.stats);
        self.note_batch();
        let now = now_ms();
        match event {
            Event::Init => {
                self.nodes.begin_list(&self.stats);
                self.cache.begin_node_relist();
            }
            Event::InitApply(node) => {
                self.nodes.count += 1;
                self.cache
                    .apply_node(node, Observation::recovered(now), &mut self.batch);
            }
            Event::InitDone => {
                let gone = self
                    .cache
                    .end_node_relist(Observation::recovered(now), &mut self.batch);
                self.nodes.end_list(gone, self.started, &self.stats);
                self.after_list();
            }
            Event::Apply(node) => {
                let obs = self.nodes.observe(now);
                self.cache.apply_node(node, obs, &mut self.batch)
            }
            Event::Delete(node) => {
                let obs = self.nodes.observe(now);
                self.cache.delete_node(node, obs, &mut self.batch)
            }
        }
        self.stats.cached_nodes.set(self.cache.node_count() as i64);
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
    /// when the initial list is really on disk (the figure the benchmarks report).
    async fn send_committed_marker(&mut self) {
        let started = self.started;
        let stats = self.stats.clone();
        let job = move |_: &mut rusqlite::Connection| {
            let ms = started.elapsed().as_millis() as u64;
            stats
                .initial_committed_ms
                .store(ms.max(1), Ordering::Relaxed);
            tracing::info!(
                elapsed_ms = ms,
                rows = stats.writer.rows.get(),
                "initial list committed to the database"
            );
        };
        let _ = self.writer.send(WriteMsg::Maintenance(Box::new(job))).await;
    }

    /// An idle cluster commits nothing: the session's heartbeat still moves, queued behind any
    /// rows not yet committed, so covered time never runs ahead of the history.
    async fn heartbeat(&mut self, session: i64) {
        let job = move |conn: &mut rusqlite::Connection| {
            if let Err(err) = crate::store::sessions::heartbeat(conn, session, now_ms()) {
                tracing::warn!(error = %err, "cannot record the session's heartbeat");
            }
        };
        let _ = self.writer.send(WriteMsg::Maintenance(Box::new(job))).await;
    }

    fn status_line(&self, events_before: u64, interval: Duration) -> u64 {
        let events = self.stats.events_total();
        let w = &self.stats.writer;
        tracing::info!(
            events_per_sec = ((events - events_before) as f64 / interval.as_secs_f64()).round(),
            rows_written = w.rows.get(),
            transitions = w.transitions_total(),
            write_lag_ms = (w.last_lag_seconds.get() * 1000.0).round() as u64,
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
    handle: WriteHandle,
    config: RecorderConfig,
    stats: Arc<RecorderStats>,
    on_writer_started: Option<WriterHook>,
}

impl Recorder {
    pub fn new(client: Client, handle: WriteHandle, config: RecorderConfig) -> Self {
        Recorder {
            client,
            handle,
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
    /// (still locked) database handle.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<RecordOutcome> {
        record(
            self.client,
            self.handle,
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
    mut handle: WriteHandle,
    config: RecorderConfig,
    stats: Arc<RecorderStats>,
    on_writer_started: Option<WriterHook>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RecordOutcome> {
    let mut cache = Cache::new();
    let selector = match &config.label_selector {
        Some(s) => {
            Some(LabelSelector::parse(s).map_err(|e| anyhow::anyhow!("--selector {s:?}: {e}"))?)
        }
        None => None,
    };
    let (pods, nodes) =
        load_open_state(&handle.conn, config.namespace.as_deref(), selector.as_ref())?;
    if !pods.is_empty() || !nodes.is_empty() {
        tracing::info!(
            open_pods = pods.len(),
            open_nodes = nodes.len(),
            "resuming: the first list will be reconciled against the database"
        );
    }
    cache.load(pods, nodes);
    // The session says from when, and with what scope, the history covers time (query::coverage).
    let session = handle.start_session(&config.scope(), now_ms())?;
    // Channel capacity in batches: enough to ride out a slow commit, small enough to bound memory.
    let writer = Writer::spawn(handle, 16, stats.writer.clone());
    if let Some(hook) = on_writer_started {
        hook(writer.weak_sender());
    }

    let pod_api: Api<Pod> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let node_api: Api<Node> = Api::all(client);
    let timeout = config.watch_timeout.as_secs().clamp(1, u32::MAX as u64) as u32;
    let mut watch_config = watcher::Config::default()
        .page_size(config.page_size)
        .timeout(timeout);
    if let Some(selector) = &config.label_selector {
        watch_config = watch_config.labels(selector);
    }
    let mut pod_events = watcher::watcher(pod_api.clone(), watch_config)
        .backoff(WatchBackoff::default())
        .boxed();
    let mut node_events = if config.watch_nodes {
        watcher::watcher(
            node_api.clone(),
            watcher::Config::default()
                .page_size(config.page_size)
                .timeout(timeout),
        )
        .backoff(WatchBackoff::default())
        .boxed()
    } else {
        tracing::info!("not watching nodes (--no-nodes): node utilisation is not recorded");
        futures::stream::pending().boxed()
    };

    let mut state = Loop {
        cache,
        batch: Batch::default(),
        batch_since: None,
        writer,
        stats: stats.clone(),
        pods: ListProgress::new(Resource::Pods),
        nodes: ListProgress::new(Resource::Nodes),
        started: Instant::now(),
        committed_marker: false,
        usage_flushed: Instant::now(),
    };
    if !config.watch_nodes {
        // Nothing to list: the initial list is the pods' alone.
        state.nodes.listed_once = true;
        stats.nodes.listed.store(true, Ordering::Relaxed);
    }
    let mut probe_tick = tokio::time::interval(PROBE_EVERY);
    probe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut probing: Option<tokio::task::JoinHandle<()>> = None;
    let mut flush_tick = tokio::time::interval(config.flush_interval);
    let mut keyframe_tick = tokio::time::interval(config.snapshot_interval);
    keyframe_tick.tick().await; // the first tick is immediate; the list makes the first rows
    let mut status_tick = tokio::time::interval(config.status_interval);
    status_tick.tick().await;
    let mut events_at_last_status = 0;
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(event) = pod_events.next() => match event {
                Ok(event) => state.on_pod_event(event),
                Err(err) => state.pods.error(&err, &stats, &config.server),
            },
            Some(event) = node_events.next() => match event {
                Ok(event) => state.on_node_event(event),
                Err(err) => state.nodes.error(&err, &stats, &config.server),
            },
            _ = probe_tick.tick() => {
                if probing.as_ref().is_none_or(|p| p.is_finished()) {
                    probing = spawn_probes(&stats, &pod_api, &node_api);
                }
            }
            _ = flush_tick.tick() => state.flush(false).await,
            _ = keyframe_tick.tick() => {
                state.cache.keyframes(now_ms(), &mut state.batch);
                state.note_batch();
            }
            _ = status_tick.tick() => {
                events_at_last_status = state.status_line(events_at_last_status, config.status_interval);
                state.heartbeat(session).await;
            }
        }
        if state.batch.len() >= config.batch_rows || state.committed_marker {
            state.flush(state.committed_marker).await;
        }
        if state.committed_marker {
            state.committed_marker = false;
            state.send_committed_marker().await;
        }
    }
    if let Some(p) = probing {
        p.abort();
    }
    tracing::info!("stopping: committing what was received");
    state.flush(true).await;
    let mut handle = state.writer.finish().await;
    if let Err(err) = handle.stop_session(now_ms()) {
        tracing::warn!(error = %err, "cannot record the end of the recording session");
    }
    Ok(RecordOutcome { handle, stats })
}
