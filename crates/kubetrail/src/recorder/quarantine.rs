//! Which commit failures are worth retrying, and what to do with rows the database refuses for
//! good: narrow the failure down to the rows that cause it and keep each in the `quarantine`
//! table, so that one poison row neither blocks every later commit (retried forever) nor takes
//! its whole batch with it.
//!
//! The batch is split by kind in the order `write_batch` writes it (nodes and pods before the
//! rows that refer to them), then halved until the failing rows stand alone.

use crate::model::time::now_ms;
use crate::store::{Batch, HistoryWriter, StoreError};

/// The batch split by kind, in write order; empty parts left out.
pub fn by_kind(mut batch: Batch) -> Vec<(&'static str, Batch)> {
    let mut parts = Vec::new();
    macro_rules! part {
        ($($field:ident),*) => {$(
            if !batch.$field.is_empty() {
                parts.push((
                    stringify!($field),
                    Batch {
                        $field: std::mem::take(&mut batch.$field),
                        ..Batch::default()
                    },
                ));
            }
        )*};
    }
    part!(
        nodes,
        pods,
        transitions,
        pod_resources,
        node_capacity,
        node_usage,
        events,
        owners
    );
    if !batch.is_empty() {
        parts.push(("other", batch));
    }
    parts
}

/// Splits off the second half of every kind of row.
pub fn split_half(batch: &mut Batch) -> Batch {
    macro_rules! half {
        ($($field:ident),*) => {
            Batch {
                $($field: batch.$field.split_off(batch.$field.len() / 2),)*
            }
        };
    }
    half!(
        nodes,
        pods,
        transitions,
        pod_resources,
        node_capacity,
        node_usage,
        events,
        owners
    )
}

/// A one-row batch as text for the quarantine table.
fn row_text(batch: &Batch) -> String {
    macro_rules! first {
        ($($field:ident),*) => {$(
            if let Some(row) = batch.$field.first() {
                return format!("{row:?}");
            }
        )*};
    }
    first!(
        nodes,
        pods,
        transitions,
        pod_resources,
        node_capacity,
        node_usage,
        events,
        owners
    );
    format!("{batch:?}")
}

/// Keeps a refused row in the quarantine table and says so in the log.
pub fn keep(store: &mut dyn HistoryWriter, kind: &str, batch: &Batch, error: &StoreError) {
    let row = row_text(batch);
    let error = error.detail();
    tracing::error!(%error, kind, row = %row,
        "the database refused a row; it is kept in the quarantine table and recording goes on");
    if let Err(e) = store.quarantine(kind, &row, &error, now_ms()) {
        tracing::error!(error = %e.detail(), "cannot write the refused row to the quarantine table either");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::batch::tests::pod_row;

    #[test]
    fn a_batch_splits_by_kind_in_write_order_and_in_halves() {
        let mut batch = Batch::default();
        for uid in ["a", "b", "c"] {
            batch.pods.push(pod_row(uid));
        }
        let parts = by_kind(batch);
        assert_eq!(parts.len(), 1);
        let (kind, mut pods) = parts.into_iter().next().unwrap();
        assert_eq!(kind, "pods");
        let second = split_half(&mut pods);
        assert_eq!((pods.len(), second.len()), (1, 2));
        assert!(row_text(&pods).contains("uid: \"a\""));
    }
}
