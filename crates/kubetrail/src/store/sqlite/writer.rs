//! Writing a SQLite store through the seam: [`HistoryWriter`] for a plain connection (`prune`'s,
//! and the tests') and for the recorder's locked [`WriteHandle`]. The trait keeps no state of its
//! own, so each method is today's free function on the connection.

use std::time::Duration;

use rusqlite::{Connection, params};

use super::batch::{BatchStats, write_batch_in_session};
use super::db::{BUSY_TIMEOUT, WriteHandle};
use super::error::db_error;
use super::file::{
    can_give_back, cap_wal_autocheckpoint, checkpoint_truncate, db_path, give_back_step, measure,
    wal_allowance,
};
use super::reader::SqliteSnapshot;
use super::{retention, rollup, sessions};
use crate::model::rollup::RollupProgress;
use crate::store::api::{GiveBack, Heartbeat, HistoryWriter, R, Snapshot};
use crate::store::plan::PruneCounts;
use crate::store::rollup::RollupRule;
use crate::store::{Batch, FileSize, Scope, StoreError};

/// How long one commit waits for another writer's lock (`kubetrail prune`) before it fails and
/// is retried: shorter than the store's busy timeout, so that a stop is obeyed within seconds
/// even while the lock is held.
const COMMIT_BUSY_WAIT: Duration = Duration::from_secs(2);

/// A rusqlite error on `conn`, naming its file.
fn error(conn: &Connection, err: rusqlite::Error) -> StoreError {
    db_error(&db_path(conn).unwrap_or_default(), err)
}

impl HistoryWriter for Connection {
    fn read(&mut self) -> R<Box<dyn Snapshot + '_>> {
        Ok(Box::new(SqliteSnapshot::borrowed(self)))
    }

    fn commit(&mut self, batch: &Batch, heartbeat: Option<Heartbeat>) -> R<BatchStats> {
        let _ = self.busy_timeout(COMMIT_BUSY_WAIT);
        let heartbeat = heartbeat.map(|hb| (hb.session, hb.at_ms));
        let result = write_batch_in_session(self, batch, heartbeat);
        let _ = self.busy_timeout(BUSY_TIMEOUT);
        result.map_err(|e| error(self, e))
    }

    fn start_session(&mut self, scope: &Scope, now_ms: i64) -> R<i64> {
        sessions::start(self, scope, now_ms).map_err(|e| error(self, e))
    }

    fn heartbeat(&mut self, hb: Heartbeat) -> R<()> {
        sessions::heartbeat(self, hb.session, hb.at_ms).map_err(|e| error(self, e))
    }

    fn stop_session(&mut self, hb: Heartbeat) -> R<()> {
        sessions::stop(self, hb.session, hb.at_ms).map_err(|e| error(self, e))
    }

    fn quarantine(&mut self, kind: &str, row: &str, error_text: &str, at_ms: i64) -> R<()> {
        self.execute(
            "INSERT INTO quarantine (at_ms, kind, error, row) VALUES (?1, ?2, ?3, ?4)",
            params![at_ms, kind, error_text, row],
        )
        .map(|_| ())
        .map_err(|e| error(self, e))
    }

    fn write_usage(
        &mut self,
        batch: &crate::model::usage::UsageBatch,
    ) -> R<crate::model::usage::UsageWriteStats> {
        let _ = self.busy_timeout(COMMIT_BUSY_WAIT);
        let write = |c: &mut Connection| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stats = super::usage::write_usage(&tx, batch)?;
            tx.commit()?;
            Ok(stats)
        };
        let result = write(self);
        let _ = self.busy_timeout(BUSY_TIMEOUT);
        result.map_err(|e| error(self, e))
    }

    fn roll_up_usage(
        &mut self,
        horizon_ms: i64,
        row_budget: u64,
    ) -> R<crate::model::usage::UsageRollupProgress> {
        super::usage_rollup::roll_up_step(self, horizon_ms, row_budget).map_err(|e| error(self, e))
    }

    fn expire_usage_rollups(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(u64, bool)> {
        super::usage_rollup::expire_step(self, cutoff_ms, row_budget).map_err(|e| error(self, e))
    }

    fn prune_ended_pods(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        retention::ended_pods_step(self, cutoff_ms, row_budget).map_err(|e| error(self, e))
    }

    fn prune_deleted_nodes(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        retention::deleted_nodes_step(self, cutoff_ms, row_budget).map_err(|e| error(self, e))
    }

    fn prune_events(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        let step = |c: &mut Connection| -> rusqlite::Result<(PruneCounts, bool)> {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (events, event_occurrences, done) =
                super::events::prune_events(&tx, cutoff_ms, row_budget)?;
            tx.commit()?;
            let counts = PruneCounts {
                events,
                event_occurrences,
                ..PruneCounts::default()
            };
            Ok((counts, done))
        };
        step(self).map_err(|e| error(self, e))
    }

    fn prune_owners(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        let step = |c: &mut Connection| -> rusqlite::Result<(PruneCounts, bool)> {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (owners, owner_scales, done) =
                super::owners::prune_owners(&tx, cutoff_ms, row_budget)?;
            tx.commit()?;
            let counts = PruneCounts {
                owners,
                owner_scales,
                ..PruneCounts::default()
            };
            Ok((counts, done))
        };
        step(self).map_err(|e| error(self, e))
    }

    fn roll_up(&mut self, _horizon_ms: i64, rule: &mut RollupRule<'_>) -> R<RollupProgress> {
        rollup::roll_up(self, rule)
    }

    fn expire_rollups(
        &mut self,
        cutoff_ms: i64,
        keep_from_ms: Option<i64>,
        row_budget: u64,
    ) -> R<(u64, bool)> {
        rollup::expire_step(self, cutoff_ms, keep_from_ms, row_budget).map_err(|e| error(self, e))
    }

    fn space(&mut self) -> R<Option<FileSize>> {
        measure(self).map(Some).map_err(|e| error(self, e))
    }

    fn log_allowance(&mut self, budget: u64, observed_log_bytes: u64) -> R<u64> {
        cap_wal_autocheckpoint(self, budget)
            .and_then(|()| wal_allowance(self, budget, observed_log_bytes))
            .map_err(|e| error(self, e))
    }

    fn checkpoint(&mut self) -> R<bool> {
        checkpoint_truncate(self).map_err(|e| error(self, e))
    }

    fn give_back_step(&mut self) -> R<GiveBack> {
        let step = || -> rusqlite::Result<GiveBack> {
            if !can_give_back(self)? {
                let holds_free_space = measure(self)?.freelist_pages > 0;
                return Ok(GiveBack::Cannot { holds_free_space });
            }
            Ok(if give_back_step(self)? {
                GiveBack::Done
            } else {
                GiveBack::More
            })
        };
        step().map_err(|e| error(self, e))
    }

    fn foreign_commits(&mut self) -> R<Option<i64>> {
        self.pragma_query_value(None, "data_version", |r| r.get::<_, i64>(0))
            .map(Some)
            .map_err(|e| error(self, e))
    }
}

/// The recorder's handle: its connection, while it holds the file's writer lock.
impl HistoryWriter for WriteHandle {
    fn read(&mut self) -> R<Box<dyn Snapshot + '_>> {
        self.conn.read()
    }

    fn commit(&mut self, batch: &Batch, heartbeat: Option<Heartbeat>) -> R<BatchStats> {
        self.conn.commit(batch, heartbeat)
    }

    fn start_session(&mut self, scope: &Scope, now_ms: i64) -> R<i64> {
        self.conn.start_session(scope, now_ms)
    }

    fn heartbeat(&mut self, hb: Heartbeat) -> R<()> {
        self.conn.heartbeat(hb)
    }

    fn stop_session(&mut self, hb: Heartbeat) -> R<()> {
        HistoryWriter::stop_session(&mut self.conn, hb)
    }

    fn quarantine(&mut self, kind: &str, row: &str, error: &str, at_ms: i64) -> R<()> {
        self.conn.quarantine(kind, row, error, at_ms)
    }

    fn write_usage(
        &mut self,
        batch: &crate::model::usage::UsageBatch,
    ) -> R<crate::model::usage::UsageWriteStats> {
        self.conn.write_usage(batch)
    }

    fn roll_up_usage(
        &mut self,
        horizon_ms: i64,
        row_budget: u64,
    ) -> R<crate::model::usage::UsageRollupProgress> {
        self.conn.roll_up_usage(horizon_ms, row_budget)
    }

    fn expire_usage_rollups(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(u64, bool)> {
        self.conn.expire_usage_rollups(cutoff_ms, row_budget)
    }

    fn prune_ended_pods(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        self.conn.prune_ended_pods(cutoff_ms, row_budget)
    }

    fn prune_deleted_nodes(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        self.conn.prune_deleted_nodes(cutoff_ms, row_budget)
    }

    fn prune_events(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        self.conn.prune_events(cutoff_ms, row_budget)
    }

    fn prune_owners(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        self.conn.prune_owners(cutoff_ms, row_budget)
    }

    fn roll_up(&mut self, horizon_ms: i64, rule: &mut RollupRule<'_>) -> R<RollupProgress> {
        self.conn.roll_up(horizon_ms, rule)
    }

    fn expire_rollups(
        &mut self,
        cutoff_ms: i64,
        keep_from_ms: Option<i64>,
        row_budget: u64,
    ) -> R<(u64, bool)> {
        self.conn
            .expire_rollups(cutoff_ms, keep_from_ms, row_budget)
    }

    fn space(&mut self) -> R<Option<FileSize>> {
        self.conn.space()
    }

    fn log_allowance(&mut self, budget: u64, observed_log_bytes: u64) -> R<u64> {
        self.conn.log_allowance(budget, observed_log_bytes)
    }

    fn checkpoint(&mut self) -> R<bool> {
        self.conn.checkpoint()
    }

    fn give_back_step(&mut self) -> R<GiveBack> {
        HistoryWriter::give_back_step(&mut self.conn)
    }

    fn foreign_commits(&mut self) -> R<Option<i64>> {
        self.conn.foreign_commits()
    }
}
