//! The bounded queue from the events watch to the writer thread. Its capacity is counted in
//! event rows, not batches, so memory stays bounded however the batches are cut; a batch that
//! does not fit is dropped whole (and counted) rather than waited for, so a flood of events
//! never slows the watch that reads them nor the pod transitions the writer commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use super::EventStats;
use crate::store::EventRow;

/// A batch of event rows and when its oldest was received.
pub struct EventBatch {
    pub rows: Vec<EventRow>,
    pub since: Instant,
}

/// The watch's end of the queue.
pub struct EventSender {
    sender: mpsc::UnboundedSender<EventBatch>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    stats: Arc<EventStats>,
}

/// The writer's end.
pub struct EventReceiver {
    receiver: mpsc::UnboundedReceiver<EventBatch>,
    queued: Arc<AtomicUsize>,
    stats: Arc<EventStats>,
}

/// A queue that holds at most `capacity` event rows.
pub fn channel(capacity: usize, stats: Arc<EventStats>) -> (EventSender, EventReceiver) {
    // Unbounded as a channel, bounded by the row count below: the bound is in rows.
    let (sender, receiver) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        EventSender {
            sender,
            queued: queued.clone(),
            capacity,
            stats: stats.clone(),
        },
        EventReceiver {
            receiver,
            queued,
            stats,
        },
    )
}

/// Why a batch was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum NotQueued {
    /// The queue holds `capacity` rows already: dropped.
    Full,
    /// The writer is gone.
    Closed,
}

impl EventSender {
    /// Queues the batch if it fits; never waits. On failure the batch is handed back.
    pub fn try_send(&self, batch: EventBatch) -> Result<(), (NotQueued, EventBatch)> {
        let n = batch.rows.len();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.capacity && before > 0 {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err((NotQueued::Full, batch));
        }
        match self.sender.send(batch) {
            Ok(()) => {
                self.stats.queued.set((before + n) as i64);
                Ok(())
            }
            Err(mpsc::error::SendError(batch)) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                Err((NotQueued::Closed, batch))
            }
        }
    }

    /// Event rows waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl EventReceiver {
    fn taken(&self, batch: &EventBatch) {
        let left = self.queued.fetch_sub(batch.rows.len(), Ordering::AcqRel) - batch.rows.len();
        self.stats.queued.set(left as i64);
    }

    /// A batch if one waits.
    pub fn try_recv(&mut self) -> Option<EventBatch> {
        let batch = self.receiver.try_recv().ok()?;
        self.taken(&batch);
        Some(batch)
    }

    /// Waits for a batch; None once the watch has stopped and everything is taken.
    pub async fn recv(&mut self) -> Option<EventBatch> {
        let batch = self.receiver.recv().await?;
        self.taken(&batch);
        Some(batch)
    }

    pub fn stats(&self) -> &EventStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> EventBatch {
        let row = EventRow::about_pod("e", 1, 0);
        EventBatch {
            rows: vec![row; n],
            since: Instant::now(),
        }
    }

    #[test]
    fn the_queue_holds_at_most_its_capacity_in_rows_and_frees_room_as_batches_are_taken() {
        let stats = Arc::new(EventStats::default());
        let (tx, mut rx) = channel(10, stats.clone());
        assert!(tx.try_send(rows(6)).is_ok());
        let (why, back) = tx.try_send(rows(6)).unwrap_err();
        assert_eq!((why, back.rows.len()), (NotQueued::Full, 6));
        assert!(tx.try_send(rows(4)).is_ok());
        assert_eq!(tx.queued(), 10);
        assert_eq!(stats.queued.get(), 10);
        assert_eq!(rx.try_recv().unwrap().rows.len(), 6);
        assert_eq!(tx.queued(), 4);
        assert!(tx.try_send(rows(6)).is_ok());
        // A batch larger than the whole queue still goes into an empty one.
        rx.try_recv();
        rx.try_recv();
        assert!(tx.try_send(rows(50)).is_ok());
        drop(rx);
        assert_eq!(tx.try_send(rows(1)).unwrap_err().0, NotQueued::Full);
    }
}
