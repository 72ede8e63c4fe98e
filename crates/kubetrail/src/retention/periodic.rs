//! Retention inside `record`: every `--retention-interval`, one [`Pass`] runs as a series of
//! maintenance jobs on the recorder's writer thread.
//!
//! Running on the writer thread (rather than on a second connection) means the pass never
//! competes with the recorder for SQLite's write lock: each bounded step is queued like a batch
//! of rows, and the rows queued behind it are committed as soon as it returns. Backpressure is
//! the recorder's own: while the channel is full, the pass waits its turn.
//!
//! The recorder hands this module a [`WriteQueue`], nothing of its own: the queue holds only a
//! weak handle on the writer's channel, so it never keeps the writer alive at shutdown; when the
//! recorder stops, the next step finds the channel gone and the task ends.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::pass::{Pass, PassReport, Step};
use super::policy::Policy;
use crate::model::time::now_ms;
use crate::store::{HistoryWriter, StoreError};

/// Work for the write connection, run between two commits.
pub type WriteJob = Box<dyn FnOnce(&mut dyn HistoryWriter) + Send>;

/// Where the steps of a pass run: the recorder's writer thread, behind the rows already queued.
pub trait WriteQueue: Send + Sync + 'static {
    /// Queues `job`; false when the writer has gone away (the job is then dropped unrun).
    fn queue(&self, job: WriteJob) -> impl Future<Output = bool> + Send;
}

/// The first pass runs this soon after start (or after the interval, if shorter), so a
/// recorder that is restarted often still applies its policy.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(60);

/// Starts periodic retention for a running writer. The returned task ends when the writer's
/// channel closes; abort it to stop earlier.
pub fn spawn(writer: impl WriteQueue, policy: Policy, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(policy = %policy.describe(), every = ?interval, "retention: periodic passes enabled");
        let mut delay = interval.min(FIRST_PASS_AFTER);
        let mut previous_used: Option<u64> = None;
        loop {
            tokio::time::sleep(delay).await;
            delay = interval;
            let pass = Pass::new(policy.clone(), now_ms()).after_previous(previous_used);
            match run_on_writer(&writer, pass).await {
                None => return, // the recorder is stopping
                Some(Ok(report)) => {
                    log_report(&report);
                    previous_used = Some(report.after.used_bytes());
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "retention pass failed; retrying at the next interval");
                }
            }
        }
    })
}

/// Runs `pass` step by step on the writer thread. None when the writer has gone away.
pub async fn run_on_writer(
    writer: &impl WriteQueue,
    mut pass: Pass,
) -> Option<Result<PassReport, StoreError>> {
    loop {
        let (done_tx, done_rx) = oneshot::channel();
        let job = Box::new(move |store: &mut dyn HistoryWriter| {
            let result = pass.step(store);
            let _ = done_tx.send((pass, result));
        });
        // The sender is weak, so the writer can shut down while the step waits in its queue.
        if !writer.queue(job).await {
            return None;
        }
        let (returned, result) = done_rx.await.ok()?;
        pass = returned;
        match result {
            Ok(Step::More) => {}
            Ok(Step::Done) => return Some(Ok(pass.into_report())),
            Err(err) => return Some(Err(err)),
        }
    }
}

fn log_report(report: &PassReport) {
    for warning in report.warnings() {
        tracing::warn!("retention: {warning}");
    }
    if report.changed_anything() {
        for line in report.summary() {
            tracing::info!("retention: {line}");
        }
    } else {
        tracing::debug!(steps = report.steps, "retention: nothing to remove");
    }
}
