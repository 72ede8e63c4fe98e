//! The single writer: one thread owns the write connection and commits what the recorder sends
//! through a bounded channel, merging queued batches into one transaction (up to a row limit).
//!
//! Backpressure is explicit: when SQLite falls behind, the channel fills and the recorder's
//! event loop waits on `send`, which in turn slows its reading of the watch streams.
//!
//! What a failed commit does depends on why it failed:
//! - transient (busy, disk full, I/O; see [`StoreError::is_transient`]): retried with backoff,
//!   never dropped, so a full disk stalls the recorder (loudly, and unready) instead of losing
//!   history, and recording goes on by itself once space comes back;
//! - anything else: the batch is narrowed down to the rows the database refuses, which go to
//!   the quarantine table, and the rest is committed;
//! - while stopping: retried until the stop's deadline, then the rows still uncommitted are
//!   counted and reported (the next start reconciles them from the API server).
//!
//! Kubernetes Events come on a queue of their own ([`super::events::queue`], bounded in rows,
//! never waited on by its sender): the thread waits on both, the main queue first, and merges
//! at most [`MAX_EVENTS_PER_COMMIT`] event rows into each transaction, and beside pod rows at
//! most a quarter as many as they are ([`event_room`]), so a flood of events adds a bounded
//! share to every commit and never queues in front of pod transitions.
//!
//! `--max-db-size` covers the write-ahead log too ([`Budget`]): a reader that keeps a snapshot
//! open (a query piped into a pager left open) stops checkpoints from resetting the log, and
//! every commit would then grow it. When the files reach the budget and a checkpoint cannot get
//! past such a reader, the writer stops committing (rows wait in memory, backpressure slows the
//! watch, `/readyz` says why) until the reader is gone and a checkpoint empties the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::events::queue::{EventBatch, EventReceiver};
use super::quarantine;
pub use super::stats::WriterStats;
use crate::model::quantity::format_memory_bytes;
use crate::model::time::now_ms;
use crate::retention::periodic::{WriteJob, WriteQueue};
use crate::store::{Batch, BatchStats, FileSize, Heartbeat, HistoryWriter, StoreError};

/// Most rows merged into one transaction; bounds commit latency and memory.
const MAX_ROWS_PER_COMMIT: usize = 200_000;

/// Most event rows merged into one transaction.
const MAX_EVENTS_PER_COMMIT: usize = 10_000;

/// Beside other rows (pods, transitions, nodes), a commit takes event rows up to this fraction
/// of them ([`event_room`]): an event row costs the writer about as much as a transition, so a
/// flood takes at most a fifth of its time while pods have a backlog.
const EVENTS_PER_OTHER_ROW: f64 = 0.25;

/// Event rows a commit beside other rows takes at least, so that events keep moving.
const MIN_EVENTS_BESIDE_ROWS: usize = 500;

/// The longest wait between two attempts of a commit that fails.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Work for the writer thread.
pub enum WriteMsg {
    /// Rows to commit; `since` is when the oldest event in it was received (for the lag figure).
    Rows { batch: Batch, since: Instant },
    /// Maintenance that needs the write connection (retention); runs between commits.
    Maintenance(WriteJob),
}

/// The size the database file and its write-ahead log may reach together (`--max-db-size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub max_bytes: u64,
}

impl Budget {
    /// Room kept free below the budget for the next commit: a twentieth of the budget, or
    /// what the largest recent commit added to the log, whichever is more.
    fn margin(&self, largest_commit_bytes: u64) -> u64 {
        (self.max_bytes / 20).max(largest_commit_bytes)
    }
}

/// The writer's state shared with its owner.
#[derive(Debug, Default)]
struct Shared {
    /// Unix ms after which a failing commit is given up (0: never; set when stopping).
    give_up_at_ms: AtomicI64,
}

/// How the writer thread runs, besides its store and queue.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriterOptions {
    /// The recording session each commit moves the heartbeat of.
    pub session: Option<i64>,
    /// Keep the store within this size (see the module doc).
    pub budget: Option<Budget>,
}

pub struct Writer {
    sender: mpsc::Sender<WriteMsg>,
    pub stats: Arc<WriterStats>,
    thread: JoinHandle<Box<dyn HistoryWriter>>,
    shared: Arc<Shared>,
}

/// Why the writer could not hand the database back.
#[derive(Debug, thiserror::Error)]
#[error("the database writer thread died: {0}")]
pub struct WriterDied(String);

impl Writer {
    /// Starts the writer thread. `capacity` is the channel's length in messages.
    pub fn spawn(
        store: Box<dyn HistoryWriter>,
        capacity: usize,
        stats: Arc<WriterStats>,
    ) -> Writer {
        Writer::spawn_with(store, capacity, stats, WriterOptions::default())
    }

    /// The same, in a recording session and within a budget (see [`WriterOptions`]).
    pub fn spawn_with(
        store: Box<dyn HistoryWriter>,
        capacity: usize,
        stats: Arc<WriterStats>,
        options: WriterOptions,
    ) -> Writer {
        Writer::spawn_with_events(store, capacity, stats, options, None)
    }

    /// The same, also committing the event batches of `events` (see the module doc).
    pub fn spawn_with_events(
        store: Box<dyn HistoryWriter>,
        capacity: usize,
        stats: Arc<WriterStats>,
        options: WriterOptions,
        events: Option<EventReceiver>,
    ) -> Writer {
        let (sender, receiver) = mpsc::channel(capacity);
        let shared = Arc::new(Shared::default());
        let thread = {
            let stats = stats.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("kubetrail-writer".into())
                .spawn(move || {
                    // Marks the writer gone however the thread ends, a panic included.
                    let _alive = AliveGuard(&stats);
                    let mut w = ThreadState {
                        store,
                        session: options.session,
                        stats: &stats,
                        shared: &shared,
                        budget: options.budget,
                        largest_commit_bytes: 0,
                        gave_up: false,
                    };
                    w.run(receiver, events);
                    w.store
                })
                .expect("spawning a thread only fails when the OS is out of resources")
        };
        Writer {
            sender,
            stats,
            thread,
            shared,
        }
    }

    /// Queues a message, waiting while the channel is full (backpressure). Fails only when the
    /// writer thread has stopped.
    pub async fn send(&self, msg: WriteMsg) -> Result<(), WriteMsg> {
        send_counted(&self.sender, &self.stats, msg).await
    }

    /// Waits for room in the queue; None when the writer thread has stopped. Dropping the
    /// future gives the room up, so a caller can wait on something else at the same time
    /// (a stop signal) without losing what it meant to send.
    pub async fn reserve(&self) -> Option<Permit<'_>> {
        let permit = self.sender.reserve().await.ok()?;
        Some(Permit {
            permit,
            stats: &self.stats,
        })
    }

    /// Room in the queue now, if there is any.
    pub fn try_reserve(&self) -> Option<Permit<'_>> {
        let permit = self.sender.try_reserve().ok()?;
        Some(Permit {
            permit,
            stats: &self.stats,
        })
    }

    /// A sender that does not keep the writer alive (for periodic retention).
    pub fn weak_sender(&self) -> WeakWriteSender {
        WeakWriteSender {
            sender: self.sender.downgrade(),
            stats: self.stats.clone(),
        }
    }

    /// Whether the writer thread is still running.
    pub fn is_alive(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Closes the channel, waits until everything sent has been committed, and gives the
    /// store back (still locked). Commits that keep failing are retried for `grace` at most;
    /// the rows they held are then counted in `rows_not_committed`.
    pub async fn finish(self, grace: Duration) -> Result<Box<dyn HistoryWriter>, WriterDied> {
        let deadline = now_ms() + grace.as_millis() as i64;
        self.shared
            .give_up_at_ms
            .store(deadline.max(1), Ordering::Relaxed);
        drop(self.sender);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| WriterDied(e.to_string()))?
            .map_err(|panic| WriterDied(panic_message(&panic)))
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

struct AliveGuard<'a>(&'a WriterStats);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Relaxed);
        if std::thread::panicking() {
            tracing::error!(
                "the database writer thread died; nothing more can be recorded, so the recorder stops"
            );
        }
    }
}

/// A weak handle on the writer's channel: sending fails once the writer has stopped.
#[derive(Clone)]
pub struct WeakWriteSender {
    sender: mpsc::WeakSender<WriteMsg>,
    stats: Arc<WriterStats>,
}

impl WeakWriteSender {
    pub async fn send(&self, msg: WriteMsg) -> Result<(), WriteMsg> {
        match self.sender.upgrade() {
            Some(sender) => send_counted(&sender, &self.stats, msg).await,
            None => Err(msg),
        }
    }
}

/// Periodic retention runs its steps as maintenance messages.
impl WriteQueue for WeakWriteSender {
    async fn queue(&self, job: WriteJob) -> bool {
        self.send(WriteMsg::Maintenance(job)).await.is_ok()
    }
}

/// What the writer thread waits for next.
enum Next {
    Msg(WriteMsg),
    Events(EventBatch),
    /// The main channel is closed and drained.
    Closed,
}

/// Waits for a message or an event batch, the message first when both wait. Without an
/// events queue (or once its watch has stopped) only the channel is waited on.
fn next(receiver: &mut mpsc::Receiver<WriteMsg>, events: &mut Option<EventReceiver>) -> Next {
    loop {
        let Some(queue) = events else {
            return match receiver.blocking_recv() {
                Some(msg) => Next::Msg(msg),
                None => Next::Closed,
            };
        };
        // tokio's channels need no runtime to be polled: a plain executor waits on both.
        let got = futures::executor::block_on(async {
            tokio::select! {
                biased;
                msg = receiver.recv() => Some(msg.map_or(Next::Closed, Next::Msg)),
                batch = queue.recv() => batch.map(Next::Events),
            }
        });
        match got {
            Some(next) => return next,
            // The events watch has stopped: wait on the channel alone.
            None => *events = None,
        }
    }
}

/// How many event rows a commit of `other_rows` rows besides may take: all that fit in
/// [`MAX_EVENTS_PER_COMMIT`] when nothing else waits, else a share of the other rows.
fn event_room(other_rows: usize) -> usize {
    if other_rows == 0 {
        return MAX_EVENTS_PER_COMMIT;
    }
    ((other_rows as f64 * EVENTS_PER_OTHER_ROW) as usize)
        .clamp(MIN_EVENTS_BESIDE_ROWS, MAX_EVENTS_PER_COMMIT)
}

/// Merges waiting event batches into `batch`, up to its [`event_room`] (whole batches: the
/// last one may go past it by one batch of the events watch, 2,000 rows at most).
fn merge_events(batch: &mut Batch, events: &mut EventReceiver) {
    let room = event_room(batch.len() - batch.events.len());
    while batch.events.len() < room {
        match events.try_recv() {
            Some(mut more) => batch.events.append(&mut more.rows),
            None => break,
        }
    }
}

/// Unix ms at which `since` was.
fn unix_ms(since: Instant) -> i64 {
    (now_ms() - since.elapsed().as_millis() as i64).max(1)
}

/// Room for one message in the writer's queue.
pub struct Permit<'a> {
    permit: mpsc::Permit<'a, WriteMsg>,
    stats: &'a WriterStats,
}

impl Permit<'_> {
    pub fn send(self, msg: WriteMsg) {
        count_in(self.stats, &msg);
        self.permit.send(msg);
    }
}

/// Counts a message into the queue-depth gauge (the writer counts it out). Rows that arrive
/// while nothing waits start the lag clock that `/readyz` reads, so rows queued behind a
/// retention step are measured too.
fn count_in(stats: &WriterStats, msg: &WriteMsg) {
    if let WriteMsg::Rows { since, .. } = msg {
        let _ = stats.pending_since_ms.compare_exchange(
            0,
            unix_ms(*since),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    stats.queue_depth.inc();
}

/// Sends and counts the message (see [`count_in`]).
async fn send_counted(
    sender: &mpsc::Sender<WriteMsg>,
    stats: &WriterStats,
    msg: WriteMsg,
) -> Result<(), WriteMsg> {
    count_in(stats, &msg);
    sender.send(msg).await.map_err(|e| {
        stats.queue_depth.dec();
        e.0
    })
}

/// Why a commit did not happen.
enum Failure {
    /// The database refuses these rows for a reason retrying cannot fix.
    Refused(StoreError),
    /// Stopping, and the stop's deadline has passed.
    GaveUp,
}

struct ThreadState<'a> {
    store: Box<dyn HistoryWriter>,
    /// The recording session each commit moves the heartbeat of.
    session: Option<i64>,
    stats: &'a WriterStats,
    shared: &'a Shared,
    budget: Option<Budget>,
    /// What the largest recent commit added to the write-ahead log.
    largest_commit_bytes: u64,
    /// A commit was given up while stopping: the rest is counted, not tried.
    gave_up: bool,
}

impl ThreadState<'_> {
    fn run(&mut self, mut receiver: mpsc::Receiver<WriteMsg>, mut events: Option<EventReceiver>) {
        let mut pending: Option<WriteMsg> = None;
        loop {
            let first = match pending.take() {
                Some(msg) => Next::Msg(msg),
                None => next(&mut receiver, &mut events),
            };
            let (mut batch, since) = match first {
                Next::Closed => {
                    // The channel is closed and drained; the events watch has stopped before
                    // it (the recorder stops it first): commit what it left.
                    if let Some(events) = &mut events {
                        while let Some(first) = events.try_recv() {
                            let mut batch = Batch {
                                events: first.rows,
                                ..Batch::default()
                            };
                            merge_events(&mut batch, events);
                            self.commit(batch, first.since);
                        }
                    }
                    return;
                }
                Next::Events(EventBatch { rows, since }) => {
                    let batch = Batch {
                        events: rows,
                        ..Batch::default()
                    };
                    (batch, since)
                }
                Next::Msg(msg) => {
                    self.stats.queue_depth.dec();
                    match msg {
                        WriteMsg::Maintenance(job) => {
                            if !self.gave_up {
                                job(&mut *self.store);
                            }
                            continue;
                        }
                        WriteMsg::Rows { batch, since } => (batch, since),
                    }
                }
            };
            // Merge whatever else is already queued into the same transaction.
            while batch.len() < MAX_ROWS_PER_COMMIT {
                match receiver.try_recv() {
                    Ok(WriteMsg::Rows {
                        batch: mut more, ..
                    }) => {
                        self.stats.queue_depth.dec();
                        batch.append(&mut more)
                    }
                    Ok(maintenance) => {
                        // Counted out when it is taken from `pending`, like any message:
                        // counting it here too drove the gauge below zero.
                        pending = Some(maintenance);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if let Some(events) = &mut events {
                merge_events(&mut batch, events);
            }
            self.commit(batch, since);
            // Nothing waits: the lag clock stops. Otherwise it keeps this batch's time until the
            // next commit starts, which overstates the lag by at most one commit.
            if receiver.is_empty() {
                self.stats.pending_since_ms.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Commits `batch`; see the module doc for what a failure does.
    fn commit(&mut self, batch: Batch, since: Instant) {
        if self.gave_up {
            self.not_committed(batch.len());
            return;
        }
        // The batch being committed holds the oldest rows not yet on disk: /readyz measures the
        // writer's lag from here, so a commit stuck in retries makes the recorder unready.
        self.stats
            .pending_since_ms
            .store(unix_ms(since), Ordering::Relaxed);
        let started = Instant::now();
        match self.attempt(&batch) {
            Ok(done) => self.committed(&done, started),
            Err(Failure::GaveUp) => self.not_committed(batch.len()),
            Err(Failure::Refused(err)) => {
                tracing::warn!(error = %err.detail(), rows = batch.len(),
                    "the database refused a batch for a reason retrying cannot fix; committing it in parts to find the rows at fault");
                for (kind, part) in quarantine::by_kind(batch) {
                    self.isolate(kind, part, started);
                }
            }
        }
    }

    /// Commits `part` (rows of one kind), halving it on refusal until the refused rows stand
    /// alone in the quarantine.
    fn isolate(&mut self, kind: &'static str, mut part: Batch, started: Instant) {
        match self.attempt(&part) {
            Ok(done) => self.committed(&done, started),
            Err(Failure::GaveUp) => self.not_committed(part.len()),
            Err(Failure::Refused(err)) if part.len() <= 1 => {
                quarantine::keep(&mut *self.store, kind, &part, &err);
                self.stats.quarantined.inc_by(part.len() as u64);
            }
            Err(Failure::Refused(_)) => {
                let second = quarantine::split_half(&mut part);
                self.isolate(kind, part, started);
                self.isolate(kind, second, started);
            }
        }
    }

    fn committed(&mut self, done: &BatchStats, started: Instant) {
        let stats = self.stats;
        stats.commits.inc();
        stats
            .events_written
            .inc_by((done.events_inserted + done.events_updated) as u64);
        stats.rows.inc_by(done.rows as u64);
        for (kind, n) in &done.inserted_by_kind {
            stats.count_transitions(*kind, *n);
        }
        stats
            .duplicates_ignored
            .inc_by(done.transitions_ignored as u64);
        stats
            .skipped_unknown_subject
            .inc_by(done.skipped_unknown_subject as u64);
        stats
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        stats.last_commit_seconds.set(now_ms() as f64 / 1000.0);
    }

    fn not_committed(&mut self, rows: usize) {
        self.gave_up = true;
        self.stats.rows_not_committed.inc_by(rows as u64);
    }

    /// Past the stop's deadline?
    fn giving_up(&self) -> bool {
        let at = self.shared.give_up_at_ms.load(Ordering::Relaxed);
        self.gave_up || (at > 0 && now_ms() >= at)
    }

    /// Sleeps `delay`, but not past the stop's deadline.
    fn wait(&self, delay: Duration) {
        let at = self.shared.give_up_at_ms.load(Ordering::Relaxed);
        let delay = if at > 0 {
            delay.min(Duration::from_millis((at - now_ms()).max(0) as u64))
        } else {
            delay
        };
        std::thread::sleep(delay);
    }

    /// One commit, retried while it fails for a transient reason or the files are at the
    /// budget; gives up only when stopping.
    fn attempt(&mut self, batch: &Batch) -> Result<BatchStats, Failure> {
        let mut delay = Duration::from_millis(100);
        loop {
            if let Some(why) = self.over_budget() {
                self.set_blocked(Some(why.clone()));
                if self.giving_up() {
                    return Err(Failure::GaveUp);
                }
                tracing::warn!(rows = batch.len(), retry_in = ?delay, "{why}");
                self.wait(delay);
                delay = (delay * 2).min(MAX_RETRY_DELAY);
                continue;
            }
            let wal_before = self.wal_len();
            // Each commit moves the recording session's heartbeat, in the same transaction.
            let heartbeat = self.session.map(|session| Heartbeat {
                session,
                at_ms: now_ms(),
            });
            let result = self.store.commit(batch, heartbeat);
            match result {
                Ok(done) => {
                    self.set_blocked(None);
                    let grew = self.wal_len().saturating_sub(wal_before);
                    // Decays, so one huge initial-list commit does not hold the margin forever.
                    self.largest_commit_bytes = grew.max(self.largest_commit_bytes * 7 / 8);
                    return Ok(done);
                }
                Err(err) if err.is_transient() => {
                    self.stats.failed_commits.inc();
                    self.set_blocked(Some(format!("the last commit failed: {}", err.detail())));
                    if self.giving_up() {
                        return Err(Failure::GaveUp);
                    }
                    tracing::error!(error = %err.detail(), rows = batch.len(), retry_in = ?delay,
                        "cannot commit to the database; keeping the rows and retrying");
                    self.wait(delay);
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
                Err(err) => {
                    self.stats.failed_commits.inc();
                    return Err(Failure::Refused(err));
                }
            }
        }
    }

    /// The write-ahead log's length, measured only under a budget (it sets the margin).
    fn wal_len(&mut self) -> u64 {
        match self.budget {
            Some(_) => self.space().wal_bytes,
            None => 0,
        }
    }

    /// The store's size now; zero when it cannot be measured (the budget then never blocks).
    fn space(&mut self) -> FileSize {
        self.store.space().ok().flatten().unwrap_or_default()
    }

    fn set_blocked(&self, why: Option<String>) {
        *self.stats.blocked.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// Why the next commit must wait for room under the budget, if it must: the files are
    /// within the margin of the budget and a checkpoint cannot empty the log (a reader holds an
    /// old snapshot of it).
    fn over_budget(&mut self) -> Option<String> {
        let budget = self.budget?;
        let margin = budget.margin(self.largest_commit_bytes);
        let (db, wal) = self.files_at_most();
        if db + wal + margin <= budget.max_bytes {
            return None;
        }
        // Copy the log into the file and empty it; fails only while a reader needs the log.
        match self.store.checkpoint() {
            Ok(true) => None,
            Ok(false) | Err(_) if wal == 0 => None,
            Ok(false) | Err(_) => {
                let (db, wal) = self.files_at_most();
                (db + wal + margin > budget.max_bytes).then(|| {
                    format!(
                        "commits wait: the database and its write-ahead log are {} of the {} \
                         --max-db-size budget, and a reader that keeps an old snapshot open \
                         (a query or export still running, or piped into a pager) stops a \
                         checkpoint from emptying the log; recording goes on when it ends",
                        format_memory_bytes((db + wal) as i64),
                        format_memory_bytes(budget.max_bytes as i64)
                    )
                })
            }
        }
    }

    /// The main file's size once every committed page is checkpointed into it (a checkpoint,
    /// even one that a reader stops half-way, grows the file up to the database's page count),
    /// and the log's length now.
    fn files_at_most(&mut self) -> (u64, u64) {
        let s = self.space();
        (s.db_bytes.max(s.page_count * s.page_size), s.wal_bytes)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    fn pending(stats: &WriterStats) -> i64 {
        stats.pending_since_ms.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn rows_waiting_behind_maintenance_start_the_lag_clock_and_a_drained_queue_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let handle = crate::store::sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let stats = Arc::new(WriterStats::default());
        let writer = Writer::spawn(Box::new(handle), 4, stats.clone());
        // A slow maintenance step holds the writer, as a retention step does.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let job = move |_: &mut dyn HistoryWriter| {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        };
        assert!(
            writer
                .send(WriteMsg::Maintenance(Box::new(job)))
                .await
                .is_ok()
        );
        started_rx.recv().unwrap();
        assert_eq!(pending(&stats), 0, "nothing waits yet");

        let mut batch = Batch::default();
        batch
            .pods
            .push(crate::store::sqlite::batch::tests::pod_row("u1"));
        let since = Instant::now();
        assert!(writer.send(WriteMsg::Rows { batch, since }).await.is_ok());
        let clock = pending(&stats);
        assert!(
            (clock - now_ms()).abs() < 1000,
            "queued rows start the clock: {clock}"
        );
        assert_eq!(stats.queue_depth.get(), 1);

        release_tx.send(()).unwrap();
        let _handle = writer.finish(Duration::from_secs(5)).await.unwrap();
        assert_eq!(pending(&stats), 0, "committed and drained");
        assert_eq!(stats.queue_depth.get(), 0);
        assert_eq!(stats.commits.get(), 1);
    }

    #[tokio::test]
    async fn a_maintenance_step_queued_behind_rows_is_counted_out_once() {
        let dir = tempfile::tempdir().unwrap();
        let handle = crate::store::sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let stats = Arc::new(WriterStats::default());
        let writer = Writer::spawn(Box::new(handle), 8, stats.clone());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let hold = move |_: &mut dyn HistoryWriter| {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        };
        assert!(
            writer
                .send(WriteMsg::Maintenance(Box::new(hold)))
                .await
                .is_ok()
        );
        started_rx.recv().unwrap();
        // Rows, then a step, queue up behind the held writer: the rows' commit merges what
        // follows them and meets the step, which waits for the next turn.
        for (i, uid) in ["u1", "u2"].into_iter().enumerate() {
            let rows = WriteMsg::Rows {
                batch: pods(&[uid]),
                since: Instant::now(),
            };
            assert!(writer.send(rows).await.is_ok());
            let step = WriteMsg::Maintenance(Box::new(|_: &mut dyn HistoryWriter| {}));
            assert!(writer.send(step).await.is_ok());
            assert_eq!(stats.queue_depth.get(), 2 * (i as i64 + 1));
        }
        release_tx.send(()).unwrap();
        let _handle = writer.finish(Duration::from_secs(5)).await.unwrap();
        assert_eq!(stats.queue_depth.get(), 0, "every message counted out once");
        assert_eq!(stats.commits.get(), 2);
    }

    fn pods(uids: &[&str]) -> Batch {
        let mut batch = Batch::default();
        for uid in uids {
            batch
                .pods
                .push(crate::store::sqlite::batch::tests::pod_row(uid));
        }
        batch
    }

    fn stored_pods(path: &std::path::Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn.prepare("SELECT uid FROM pods ORDER BY uid").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn event_rows_take_a_bounded_share_of_a_commit_that_carries_pod_rows() {
        use crate::recorder::events::EventStats;
        use crate::recorder::events::queue::{EventBatch, channel};
        use crate::store::EventRow;

        let event = |i: usize| EventRow::about_pod(&format!("e{i}"), 1, 0);
        let flood = |n_batches: usize| {
            let (tx, rx) = channel(1_000_000, Arc::new(EventStats::default()));
            for b in 0..n_batches {
                let rows = (0..100).map(|i| event(b * 100 + i)).collect();
                let batch = EventBatch {
                    rows,
                    since: Instant::now(),
                };
                tx.try_send(batch).map_err(|_| "queued").unwrap();
            }
            (tx, rx)
        };
        // Nothing else to commit: events fill the commit.
        let (_tx, mut rx) = flood(200);
        let mut batch = Batch::default();
        merge_events(&mut batch, &mut rx);
        assert_eq!(batch.events.len(), MAX_EVENTS_PER_COMMIT);
        // Beside 8,000 pod rows, a quarter as many event rows.
        let (tx, mut rx) = flood(200);
        let uids: Vec<String> = (0..8_000).map(|i| format!("p{i}")).collect();
        let mut batch = pods(&uids.iter().map(String::as_str).collect::<Vec<_>>());
        merge_events(&mut batch, &mut rx);
        assert_eq!(batch.events.len(), 2_000);
        assert_eq!(tx.queued(), 20_000 - 2_000, "the rest stays queued");
        // Beside a few pod rows, still a few hundred events, so that they keep moving.
        let (_tx, mut rx) = flood(200);
        let mut batch = pods(&["a"]);
        merge_events(&mut batch, &mut rx);
        assert_eq!(batch.events.len(), MIN_EVENTS_BESIDE_ROWS);
    }

    #[tokio::test]
    async fn a_poison_row_is_quarantined_and_the_rest_of_its_batch_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let handle = crate::store::sqlite::open_for_writing(&path).unwrap();
        // A row the database refuses for good, as a constraint would.
        handle
            .conn
            .execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON pods WHEN NEW.uid = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'poison row'); END;",
            )
            .unwrap();
        let stats = Arc::new(WriterStats::default());
        let writer = Writer::spawn(Box::new(handle), 4, stats.clone());
        let mut batch = pods(&["a", "bad", "c", "d"]);
        let mut t = crate::store::TransitionRow::new(
            crate::store::SubjectUid::Pod("bad".into()),
            crate::model::TransitionKind::ALL[0],
            1,
            1,
        );
        t.seq = 1;
        batch.transitions.push(t);
        let since = Instant::now();
        assert!(writer.send(WriteMsg::Rows { batch, since }).await.is_ok());
        let next = pods(&["e"]);
        assert!(
            writer
                .send(WriteMsg::Rows { batch: next, since })
                .await
                .is_ok()
        );
        // The old writer retried the refused batch forever: this would never return.
        let done = tokio::time::timeout(Duration::from_secs(60), writer.finish(Duration::ZERO));
        let _store = done.await.expect("the writer finishes").unwrap();
        assert_eq!(stored_pods(&path), vec!["a", "c", "d", "e"]);
        let (kind, error, row): (String, String, String) = Connection::open(&path)
            .unwrap()
            .query_row("SELECT kind, error, row FROM quarantine", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(kind, "pods");
        assert!(error.contains("poison row"), "{error}");
        assert!(row.contains("uid: \"bad\""), "{row}");
        assert_eq!(stats.quarantined.get(), 1);
        assert_eq!(
            stats.skipped_unknown_subject.get(),
            1,
            "the poison pod's transition has no pod to belong to"
        );
        assert_eq!(stats.rows_not_committed.get(), 0);
    }

    #[tokio::test]
    async fn a_commit_that_keeps_failing_is_given_up_at_the_stop_deadline_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let handle = crate::store::sqlite::open_for_writing(&path).unwrap();
        let stats = Arc::new(WriterStats::default());
        let writer = Writer::spawn(Box::new(handle), 4, stats.clone());
        // Another connection holds the write lock: every commit is busy (transient) until the
        // busy timeout, then retried.
        let blocker = Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let since = Instant::now();
        for uids in [&["a", "b"][..], &["c"][..]] {
            let batch = pods(uids);
            assert!(writer.send(WriteMsg::Rows { batch, since }).await.is_ok());
        }
        let done = tokio::time::timeout(Duration::from_secs(60), writer.finish(Duration::ZERO));
        done.await.expect("the writer gives up").unwrap();
        assert_eq!(stats.rows_not_committed.get(), 3);
        assert_eq!(stats.commits.get(), 0);
        assert!(stats.failed_commits.get() >= 1);
        drop(blocker);
    }

    #[tokio::test]
    async fn a_dead_writer_refuses_rows_and_says_why_it_died() {
        let dir = tempfile::tempdir().unwrap();
        let handle = crate::store::sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let stats = Arc::new(WriterStats::default());
        let writer = Writer::spawn(Box::new(handle), 4, stats.clone());
        let job = |_: &mut dyn HistoryWriter| panic!("boom in maintenance");
        assert!(
            writer
                .send(WriteMsg::Maintenance(Box::new(job)))
                .await
                .is_ok()
        );
        while writer.is_alive() {
            tokio::task::yield_now().await;
        }
        assert!(!stats.alive.load(Ordering::Relaxed));
        assert!(writer.reserve().await.is_none(), "no room in a dead writer");
        let err = writer.finish(Duration::ZERO).await.err().expect("died");
        assert!(err.to_string().contains("boom in maintenance"), "{err}");
    }
}
