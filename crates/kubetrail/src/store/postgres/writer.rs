//! [`HistoryWriter`] for PostgreSQL: the seam's write side over one cluster's [`PgWriter`].
//! The file mechanics of SQLite (a size budget, a log to checkpoint, free pages to give back)
//! have no counterpart on a shared server: `space` is None, so `--max-db-size` never applies,
//! and disk space goes back by dropping the partitions retention emptied
//! ([`super::partitions`]), in [`HistoryWriter::give_back_step`].
//!
//! Every method runs on a thread of its own when called from async code (the recorder opens
//! and closes its session there): see `outside_runtime`.

use super::reader::PgSnapshot;
use super::{PgWriter, retention, sessions};
use crate::model::rollup::RollupProgress;
use crate::store::BatchStats;
use crate::store::api::{GiveBack, Heartbeat, HistoryWriter, R, Snapshot};
use crate::store::plan::PruneCounts;
use crate::store::rollup::RollupRule;
use crate::store::rows::Batch;
use crate::store::sessions::Scope;
use crate::store::size::FileSize;

impl HistoryWriter for PgWriter {
    fn read(&mut self) -> R<Box<dyn Snapshot + '_>> {
        super::outside_runtime(|| self.client_mut().map(|_| ()))?;
        let (target, cluster) = (self.target.clone(), self.cluster_id);
        let client = self.client.as_mut().expect("connected");
        Ok(Box::new(PgSnapshot::borrowed(client, target, cluster)))
    }

    fn commit(&mut self, batch: &Batch, heartbeat: Option<Heartbeat>) -> R<BatchStats> {
        super::outside_runtime(move || {
            PgWriter::commit(self, batch, heartbeat.map(|h| (h.session, h.at_ms)))
        })
    }

    fn start_session(&mut self, scope: &Scope, now_ms: i64) -> R<i64> {
        super::outside_runtime(move || {
            self.with(|c, cluster| sessions::start(c, cluster, scope, now_ms))
        })
    }

    fn heartbeat(&mut self, hb: Heartbeat) -> R<()> {
        super::outside_runtime(move || {
            self.with(|c, _| sessions::heartbeat(c, hb.session, hb.at_ms))
        })
    }

    fn stop_session(&mut self, hb: Heartbeat) -> R<()> {
        super::outside_runtime(move || self.with(|c, _| sessions::stop(c, hb.session, hb.at_ms)))
    }

    fn quarantine(&mut self, kind: &str, row: &str, error: &str, at_ms: i64) -> R<()> {
        super::outside_runtime(move || {
            self.with(|c, cluster| {
                c.execute(
                    "INSERT INTO quarantine (cluster_id, at_ms, kind, error, row)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&cluster, &at_ms, &kind, &error, &row],
                )
                .map(|_| ())
            })
        })
    }

    fn prune_ended_pods(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        super::outside_runtime(move || {
            self.with(|c, cluster| retention::ended_pods_step(c, cluster, cutoff_ms, row_budget))
        })
    }

    fn prune_deleted_nodes(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        super::outside_runtime(move || {
            self.with(|c, cluster| retention::deleted_nodes_step(c, cluster, cutoff_ms, row_budget))
        })
    }

    fn write_usage(
        &mut self,
        batch: &crate::model::usage::UsageBatch,
    ) -> R<crate::model::usage::UsageWriteStats> {
        super::outside_runtime(move || {
            self.with(|c, cluster| {
                let mut tx = c.transaction()?;
                let stats = super::usage::write_usage(&mut tx, cluster, batch)?;
                tx.commit()?;
                Ok(stats)
            })
        })
    }

    fn roll_up_usage(
        &mut self,
        horizon_ms: i64,
        row_budget: u64,
    ) -> R<crate::model::usage::UsageRollupProgress> {
        super::outside_runtime(move || {
            self.with(|c, cluster| {
                super::usage_rollup::roll_up_step(c, cluster, horizon_ms, row_budget)
            })
        })
    }

    fn expire_usage_rollups(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(u64, bool)> {
        super::outside_runtime(move || {
            self.with(|c, cluster| {
                super::usage_rollup::expire_step(c, cluster, cutoff_ms, row_budget)
            })
        })
    }

    fn prune_events(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        super::outside_runtime(move || {
            self.with(|c, cluster| {
                let (events, event_occurrences, done) =
                    super::events::prune_step(c, cluster, cutoff_ms, row_budget)?;
                let counts = PruneCounts {
                    events,
                    event_occurrences,
                    ..PruneCounts::default()
                };
                Ok((counts, done))
            })
        })
    }

    fn prune_owners(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)> {
        super::outside_runtime(move || {
            self.with(|c, cluster| {
                let (owners, owner_scales, done) =
                    super::owners::prune_step(c, cluster, cutoff_ms, row_budget)?;
                let counts = PruneCounts {
                    owners,
                    owner_scales,
                    ..PruneCounts::default()
                };
                Ok((counts, done))
            })
        })
    }

    fn roll_up(&mut self, horizon_ms: i64, rule: &mut RollupRule<'_>) -> R<RollupProgress> {
        super::outside_runtime(move || super::rollup::roll_up(self, horizon_ms, rule))
    }

    fn expire_rollups(
        &mut self,
        cutoff_ms: i64,
        keep_from_ms: Option<i64>,
        row_budget: u64,
    ) -> R<(u64, bool)> {
        super::outside_runtime(move || {
            self.with(|c, cluster| {
                retention::expire_step(c, cluster, cutoff_ms, keep_from_ms, row_budget)
            })
        })
    }

    fn space(&mut self) -> R<Option<FileSize>> {
        Ok(None)
    }

    fn log_allowance(&mut self, _budget: u64, _observed_log_bytes: u64) -> R<u64> {
        Ok(0)
    }

    fn checkpoint(&mut self) -> R<bool> {
        // The server checkpoints on its own.
        Ok(true)
    }

    fn give_back_step(&mut self) -> R<GiveBack> {
        super::outside_runtime(move || {
            // Months that ended more than a month ago: the current and the last month keep their
            // partitions even when empty, so that a writer never waits to create them.
            let before = super::partitions::month_of(crate::model::time::now_ms()).0 - 1;
            let before = super::partitions::month_of(before).0;
            self.client_mut()?;
            let client = self.client.as_mut().expect("connected");
            let dropped = self.partitions.drop_empty(client, before);
            match dropped {
                Ok(_) => Ok(GiveBack::Done),
                Err(e) => Err(self.error(e)),
            }
        })
    }

    fn foreign_commits(&mut self) -> R<Option<i64>> {
        Ok(None)
    }
}
