//! Each sampled container's own requests and limits, from the recorder's cache.
//!
//! The metrics API names a pod and its containers but says nothing of their requests; the
//! recorder's cache holds every recorded pod's spec (`spec.containers[].resources`, kept for
//! in-place resizes). The cache belongs to the event loop alone (no locks on the hot path), so
//! the sampler does not read it: it hands its sample to the loop, which fills in each
//! container's resources between two stream events and hands the sample back. That is one
//! pass over the cache per sample (every `--usage-interval`), and no second copy of the specs.

use tokio::sync::{mpsc, oneshot};

use crate::model::usage::UsageBatch;

/// A sample waiting for its containers' resources.
pub struct Ask {
    pub batch: UsageBatch,
    pub reply: oneshot::Sender<UsageBatch>,
}

/// The sampler's end: asks the loop.
#[derive(Clone)]
pub struct Asker(mpsc::Sender<Ask>);

/// One sample at a time waits (the sampler writes one at a time): a queue of one suffices.
pub fn channel() -> (Asker, mpsc::Receiver<Ask>) {
    let (tx, rx) = mpsc::channel(1);
    (Asker(tx), rx)
}

impl Asker {
    /// The batch with its containers' resources filled in; as it was if the loop is gone
    /// (the recorder is stopping: the sample is written without them).
    pub async fn fill(&self, batch: UsageBatch) -> UsageBatch {
        let (reply, answer) = oneshot::channel();
        match self.0.send(Ask { batch, reply }).await {
            Ok(()) => answer.await.unwrap_or_default(),
            Err(mpsc::error::SendError(ask)) => ask.batch,
        }
    }
}
