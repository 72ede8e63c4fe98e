//! The single writer: one thread owns the write connection and commits what the recorder sends
//! through a bounded channel, merging queued batches into one transaction (up to a row limit).
//!
//! Backpressure is explicit: when SQLite falls behind, the channel fills and the recorder's
//! event loop waits on `send`, which in turn slows its reading of the watch streams. A failed
//! commit is retried with backoff, never dropped, so a full disk stalls the recorder (loudly)
//! instead of losing history.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::mpsc;

use crate::store::{Batch, WriteHandle, write_batch};

/// Most rows merged into one transaction; bounds commit latency and memory.
const MAX_ROWS_PER_COMMIT: usize = 200_000;

/// Work for the writer thread.
pub enum WriteMsg {
    /// Rows to commit; `since` is when the oldest event in it was received (for the lag figure).
    Rows { batch: Batch, since: Instant },
    /// Maintenance that needs the write connection (retention); runs between commits.
    Maintenance(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Counters the writer keeps for the status line and /metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub rows: AtomicU64,
    pub transitions: AtomicU64,
    pub duplicates_ignored: AtomicU64,
    /// Time from receiving an event to committing it, for the most recent commit.
    pub last_lag_ms: AtomicU64,
    pub failed_commits: AtomicU64,
}

pub struct Writer {
    pub sender: mpsc::Sender<WriteMsg>,
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
                Some(msg) => msg,
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
                }) => batch.append(&mut more),
                Ok(maintenance) => {
                    pending = Some(maintenance);
                    break;
                }
                Err(_) => break,
            }
        }
        commit(&mut handle.conn, &batch, since, stats);
    }
}

/// Commits, retrying with backoff until it succeeds: history is never dropped.
fn commit(conn: &mut Connection, batch: &Batch, since: Instant, stats: &WriterStats) {
    let mut delay = Duration::from_millis(100);
    loop {
        match write_batch(conn, batch) {
            Ok(done) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.rows.fetch_add(done.rows as u64, Ordering::Relaxed);
                stats
                    .transitions
                    .fetch_add(done.transitions_inserted as u64, Ordering::Relaxed);
                stats
                    .duplicates_ignored
                    .fetch_add(done.transitions_ignored as u64, Ordering::Relaxed);
                stats
                    .last_lag_ms
                    .store(since.elapsed().as_millis() as u64, Ordering::Relaxed);
                return;
            }
            Err(err) => {
                stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %err, rows = batch.len(), retry_in = ?delay,
                    "cannot commit to the database; keeping the rows and retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
