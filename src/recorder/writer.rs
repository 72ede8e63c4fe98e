//! The single writer: one thread owns the write connection and commits what the recorder sends
//! through a bounded channel, merging queued batches into one transaction (up to a row limit).
//!
//! Backpressure is explicit: when SQLite falls behind, the channel fills and the recorder's
//! event loop waits on `send`, which in turn slows its reading of the watch streams. A failed
//! commit is retried with backoff, never dropped, so a full disk stalls the recorder (loudly)
//! instead of losing history.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::mpsc;

pub use super::stats::WriterStats;
use crate::model::time::now_ms;
use crate::store::{Batch, WriteHandle, write_batch_in_session};

/// Most rows merged into one transaction; bounds commit latency and memory.
const MAX_ROWS_PER_COMMIT: usize = 200_000;

/// Work for the writer thread.
pub enum WriteMsg {
    /// Rows to commit; `since` is when the oldest event in it was received (for the lag figure).
    Rows { batch: Batch, since: Instant },
    /// Maintenance that needs the write connection (retention); runs between commits.
    Maintenance(Box<dyn FnOnce(&mut Connection) + Send>),
}

pub struct Writer {
    sender: mpsc::Sender<WriteMsg>,
    pub stats: Arc<WriterStats>,
    thread: JoinHandle<WriteHandle>,
}

impl Writer {
    /// Starts the writer thread. `capacity` is the channel's length in messages.
    pub fn spawn(handle: WriteHandle, capacity: usize, stats: Arc<WriterStats>) -> Writer {
        let (sender, receiver) = mpsc::channel(capacity);
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("kubetrail-writer".into())
            .spawn(move || run(handle, receiver, &thread_stats))
            .expect("spawning a thread only fails when the OS is out of resources");
        Writer {
            sender,
            stats,
            thread,
        }
    }

    /// Queues a message, waiting while the channel is full (backpressure). Fails only when the
    /// writer thread has stopped.
    pub async fn send(&self, msg: WriteMsg) -> Result<(), WriteMsg> {
        send_counted(&self.sender, &self.stats, msg).await
    }

    /// A sender that does not keep the writer alive (for periodic retention).
    pub fn weak_sender(&self) -> WeakWriteSender {
        WeakWriteSender {
            sender: self.sender.downgrade(),
            stats: self.stats.clone(),
        }
    }

    /// Closes the channel, waits until everything sent has been committed, and gives the
    /// database handle back (still locked).
    pub async fn finish(self) -> WriteHandle {
        drop(self.sender);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("the join task is never cancelled")
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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

/// Unix ms at which `since` was.
fn unix_ms(since: Instant) -> i64 {
    (now_ms() - since.elapsed().as_millis() as i64).max(1)
}

/// Sends and counts the message in the queue-depth gauge (the writer counts it out). Rows that
/// arrive while nothing waits start the lag clock that `/readyz` reads, so rows queued behind a
/// retention step are measured too.
async fn send_counted(
    sender: &mpsc::Sender<WriteMsg>,
    stats: &WriterStats,
    msg: WriteMsg,
) -> Result<(), WriteMsg> {
    if let WriteMsg::Rows { since, .. } = &msg {
        let _ = stats.pending_since_ms.compare_exchange(
            0,
            unix_ms(*since),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    stats.queue_depth.inc();
    sender.send(msg).await.map_err(|e| {
        stats.queue_depth.dec();
        e.0
    })
}

fn run(
    mut handle: WriteHandle,
    mut receiver: mpsc::Receiver<WriteMsg>,
    stats: &WriterStats,
) -> WriteHandle {
    let mut pending: Option<WriteMsg> = None;
    loop {
        let first = match pending.take() {
            Some(msg) => msg,
            None => match receiver.blocking_recv() {
                Some(msg) => {
                    stats.queue_depth.dec();
                    msg
                }
                None => return handle, // channel closed and drained
            },
        };
        let (mut batch, since) = match first {
            WriteMsg::Maintenance(job) => {
                job(&mut handle.conn);
                continue;
            }
            WriteMsg::Rows { batch, since } => (batch, since),
        };
        // Merge whatever else is already queued into the same transaction.
        while batch.len() < MAX_ROWS_PER_COMMIT {
            match receiver.try_recv() {
                Ok(WriteMsg::Rows {
                    batch: mut more, ..
                }) => {
                    stats.queue_depth.dec();
                    batch.append(&mut more)
                }
                Ok(maintenance) => {
                    stats.queue_depth.dec();
                    pending = Some(maintenance);
                    break;
                }
                Err(_) => break,
            }
        }
        commit(&mut handle.conn, handle.session, &batch, since, stats);
        // Nothing waits: the lag clock stops. Otherwise it keeps this batch's time until the
        // next commit starts, which overstates the lag by at most one commit.
        if receiver.is_empty() {
            stats.pending_since_ms.store(0, Ordering::Relaxed);
        }
    }
}

/// Commits, retrying with backoff until it succeeds: history is never dropped.
/// Each commit moves the recording session's heartbeat (`session`), in the same transaction.
fn commit(
    conn: &mut Connection,
    session: Option<i64>,
    batch: &Batch,
    since: Instant,
    stats: &WriterStats,
) {
    // The batch being committed holds the oldest rows not yet on disk: /readyz measures the
    // writer's lag from here, so a commit stuck in retries makes the recorder unready.
    stats
        .pending_since_ms
        .store(unix_ms(since), Ordering::Relaxed);
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match write_batch_in_session(conn, batch, session.map(|id| (id, now_ms()))) {
            Ok(done) => {
                stats.commits.inc();
                stats.rows.inc_by(done.rows as u64);
                for (kind, n) in &done.inserted_by_kind {
                    stats.count_transitions(*kind, *n);
                }
                stats
                    .duplicates_ignored
                    .inc_by(done.transitions_ignored as u64);
                stats
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                stats.last_lag_seconds.set(since.elapsed().as_secs_f64());
                stats.last_commit_seconds.set(now_ms() as f64 / 1000.0);
                return;
            }
            Err(err) => {
                stats.failed_commits.inc();
                tracing::error!(error = %err, rows = batch.len(), retry_in = ?delay,
                    "cannot commit to the database; keeping the rows and retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(stats: &WriterStats) -> i64 {
        stats.pending_since_ms.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn rows_waiting_behind_maintenance_start_the_lag_clock_and_a_drained_queue_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let handle = crate::store::open_for_writing(&dir.path().join("t.db")).unwrap();
        let stats = Arc::new(WriterStats::default());
        let writer = Writer::spawn(handle, 4, stats.clone());
        // A slow maintenance step holds the writer, as a retention step does.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let job = move |_: &mut Connection| {
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
        batch.pods.push(crate::store::batch::tests::pod_row("u1"));
        let since = Instant::now();
        assert!(writer.send(WriteMsg::Rows { batch, since }).await.is_ok());
        let clock = pending(&stats);
        assert!(
            (clock - now_ms()).abs() < 1000,
            "queued rows start the clock: {clock}"
        );
        assert_eq!(stats.queue_depth.get(), 1);

        release_tx.send(()).unwrap();
        let _handle = writer.finish().await;
        assert_eq!(pending(&stats), 0, "committed and drained");
        assert_eq!(stats.queue_depth.get(), 0);
        assert_eq!(stats.commits.get(), 1);
    }
}
