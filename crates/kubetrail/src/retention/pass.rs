//! One retention pass: the policy applied once, as a sequence of bounded steps.
//!
//! A [`Pass`] is a small state machine. Each call to [`Pass::step`] runs one short transaction
//! (a few thousand rows) and says whether there is more to do. `kubetrail prune` calls it in a
//! loop on its own connection; `record` sends each step to its writer thread as a maintenance
//! job, so the recorder's commits interleave with the pass (see `periodic`). Every step
//! re-derives what to do from the database, so nothing is lost if a pass stops half-way.
//!
//! Order: roll raw utilisation up first (it needs the node rows that pruning may remove), and
//! measured usage (metrics API samples) by the same horizon, then expire rollups of both, prune ended pods and deleted nodes, enforce the size budget, and finally hand
//! the freed pages back and truncate the write-ahead log.

use std::time::{Duration, Instant};

use crate::model::bytes::format_size;

use super::policy::Policy;
use super::prune::PruneCounts;
use super::rollup_step::roll_up;
use super::size::{ShrinkStep, shrink_step};
use crate::model::rollup::RollupProgress;
use crate::model::usage::UsageRollupProgress;
use crate::store::{FileSize, GiveBack, HistoryWriter, StoreError};

/// Rows per transaction: small enough that a recorder waits a few milliseconds, large enough
/// that a backlog of millions of rows takes seconds, not minutes.
pub const DEFAULT_ROW_BUDGET: u64 = 5_000;

/// Steps without a commit from another connection after which [`Pass::run_sharing`] stops
/// pausing: nobody else is writing.
pub const QUIET_STEPS: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    RollUp,
    /// Measured usage (metrics API samples) rolled up by the same horizon.
    UsageRollUp,
    ExpireRollups,
    UsageExpireRollups,
    EndedPods,
    DeletedNodes,
    /// Kubernetes Events last seen before the --max-age cutoff.
    Events,
    /// ReplicaSets and Jobs deleted before the cutoff that no kept pod names (after the ended
    /// pods, so that their owners go in the same pass).
    Owners,
    Shrink,
    GiveBack,
    Checkpoint,
    Done,
}

/// Whether a pass has more steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    More,
    Done,
}

/// The live state left over a size budget: the budget cannot be met without deleting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OverBudget {
    pub budget_bytes: u64,
    pub used_bytes: u64,
}

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PassReport {
    /// Rows removed by `--max-age`.
    pub aged_out: PruneCounts,
    /// Raw utilisation rolled up by `--raw-usage-age`.
    pub rolled_up: RollupProgress,
    /// Rollups removed by `--rollup-age`.
    pub rollups_expired: u64,
    /// Measured usage samples rolled up by `--raw-usage-age`.
    #[serde(skip_serializing_if = "usage_rollup_is_empty")]
    pub usage_rolled_up: UsageRollupProgress,
    /// Measured usage rollups removed by `--rollup-age`.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage_rollups_expired: u64,
    /// Rows removed early by `--max-db-size`.
    pub size_pruned: PruneCounts,
    /// Raw utilisation rolled up early by `--max-db-size`.
    pub size_rolled_up: RollupProgress,
    /// Rollups removed early by `--max-db-size`.
    pub size_rollups_expired: u64,
    pub before: FileSize,
    pub after: FileSize,
    /// Set when `--max-db-size` could not be met without touching live state.
    pub over_budget: Option<OverBudget>,
    /// The file cannot shrink: it was created without incremental auto-vacuum.
    pub cannot_give_back: bool,
    /// The write-ahead log could not be emptied (a reader still used it).
    pub checkpoint_busy: bool,
    pub steps: u64,
}

impl PassReport {
    /// Whether the pass deleted or rolled up anything.
    pub fn changed_anything(&self) -> bool {
        self.aged_out.rows() + self.size_pruned.rows() > 0
            || self.rolled_up.raw_rows_deleted + self.size_rolled_up.raw_rows_deleted > 0
            || self.rollups_expired + self.size_rollups_expired > 0
            || self.usage_rolled_up.samples_rolled_up + self.usage_rollups_expired > 0
    }
}

fn usage_rollup_is_empty(p: &UsageRollupProgress) -> bool {
    p.samples_rolled_up == 0 && p.hours_written == 0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The policy applied once, step by step.
pub struct Pass {
    policy: Policy,
    now_ms: i64,
    row_budget: u64,
    previous_used_bytes: Option<u64>,
    phase: Phase,
    /// (target with headroom, target without): the pass aims for the first; only missing the
    /// second means the budget cannot hold the live state.
    target_used_bytes: Option<(u64, u64)>,
    report: PassReport,
}

impl Pass {
    /// A pass of `policy` with "now" at `now_ms` (every age is measured back from it).
    pub fn new(policy: Policy, now_ms: i64) -> Pass {
        Pass {
            policy,
            now_ms,
            row_budget: DEFAULT_ROW_BUDGET,
            previous_used_bytes: None,
            phase: Phase::RollUp,
            target_used_bytes: None,
            report: PassReport::default(),
        }
    }

    /// Rows per transaction (default [`DEFAULT_ROW_BUDGET`]).
    pub fn row_budget(mut self, rows: u64) -> Pass {
        self.row_budget = rows.max(1);
        self
    }

    /// The used bytes at the end of the previous pass: what was written since then is taken as
    /// the growth to expect before the next one, and left free under the budget.
    pub fn after_previous(mut self, used_bytes: Option<u64>) -> Pass {
        self.previous_used_bytes = used_bytes;
        self
    }

    pub fn report(&self) -> &PassReport {
        &self.report
    }

    pub fn into_report(self) -> PassReport {
        self.report
    }

    /// Runs every step; for callers that own their connection (`kubetrail prune`, tests).
    pub fn run(mut self, store: &mut dyn HistoryWriter) -> Result<PassReport, StoreError> {
        while self.step(store)? == Step::More {}
        Ok(self.report)
    }

    /// Runs every step on a connection of its own (`kubetrail prune`) while another process may
    /// be writing the same file. SQLite's busy handler polls with growing sleeps, so a writer
    /// that finds the lock taken can miss back-to-back steps for a long time; pausing as long as
    /// each step took gives it room. The pauses stop after [`QUIET_STEPS`] steps in which no
    /// other connection committed ([`HistoryWriter::foreign_commits`]), and resume when one
    /// does. A store that cannot tell never pauses.
    pub fn run_sharing(mut self, store: &mut dyn HistoryWriter) -> Result<PassReport, StoreError> {
        let Some(mut seen) = store.foreign_commits()? else {
            return self.run(store);
        };
        let mut quiet_steps = 0;
        loop {
            let started = Instant::now();
            if self.step(store)? == Step::Done {
                return Ok(self.report);
            }
            let version = store.foreign_commits()?.unwrap_or(seen);
            quiet_steps = if version == seen { quiet_steps + 1 } else { 0 };
            seen = version;
            if quiet_steps < QUIET_STEPS {
                std::thread::sleep(started.elapsed().max(Duration::from_millis(2)));
            }
        }
    }

    /// Runs one bounded step.
    pub fn step(&mut self, store: &mut dyn HistoryWriter) -> Result<Step, StoreError> {
        if self.report.steps == 0 {
            self.report.before = store.space()?.unwrap_or_default();
        }
        self.report.steps += 1;
        let budget = self.row_budget;
        let now = self.now_ms;
        match self.phase {
            Phase::RollUp => match self.policy.raw_horizon_ms(now) {
                Some(horizon) => {
                    let progress = roll_up(store, horizon, budget)?;
                    self.report.rolled_up.add(&progress);
                    if progress.done {
                        self.phase = Phase::UsageRollUp;
                    }
                }
                None => self.phase = Phase::UsageRollUp,
            },
            Phase::UsageRollUp => match self.policy.raw_horizon_ms(now) {
                Some(horizon) => {
                    let progress = store.roll_up_usage(horizon, budget)?;
                    self.report.usage_rolled_up.add(&progress);
                    if progress.done {
                        self.phase = Phase::ExpireRollups;
                    }
                }
                None => self.phase = Phase::ExpireRollups,
            },
            Phase::ExpireRollups => match self.policy.rollup_cutoff_ms(now) {
                Some(cutoff) => {
                    let (deleted, done) = store.expire_rollups(cutoff, None, budget)?;
                    self.report.rollups_expired += deleted;
                    if done {
                        self.phase = Phase::UsageExpireRollups;
                    }
                }
                None => self.phase = Phase::UsageExpireRollups,
            },
            Phase::UsageExpireRollups => match self.policy.rollup_cutoff_ms(now) {
                Some(cutoff) => {
                    let (deleted, done) = store.expire_usage_rollups(cutoff, budget)?;
                    self.report.usage_rollups_expired += deleted;
                    if done {
                        self.phase = Phase::EndedPods;
                    }
                }
                None => self.phase = Phase::EndedPods,
            },
            Phase::EndedPods => match self.policy.ended_cutoff_ms(now) {
                Some(cutoff) => {
                    let (counts, done) = store.prune_ended_pods(cutoff, budget)?;
                    self.report.aged_out.add(&counts);
                    if done {
                        self.phase = Phase::DeletedNodes;
                    }
                }
                None => self.phase = Phase::DeletedNodes,
            },
            Phase::DeletedNodes => match self.policy.ended_cutoff_ms(now) {
                Some(cutoff) => {
                    let (counts, done) = store.prune_deleted_nodes(cutoff, budget)?;
                    self.report.aged_out.add(&counts);
                    if done {
                        self.phase = Phase::Events;
                    }
                }
                None => self.phase = Phase::Events,
            },
            // Events age like ended pods: by the last time they were seen.
            Phase::Events => match self.policy.ended_cutoff_ms(now) {
                Some(cutoff) => {
                    let (counts, done) = store.prune_events(cutoff, budget)?;
                    self.report.aged_out.add(&counts);
                    if done {
                        self.phase = Phase::Owners;
                    }
                }
                None => self.phase = Phase::Owners,
            },
            Phase::Owners => match self.policy.ended_cutoff_ms(now) {
                Some(cutoff) => {
                    let (counts, done) = store.prune_owners(cutoff, budget)?;
                    self.report.aged_out.add(&counts);
                    if done {
                        self.phase = Phase::Shrink;
                    }
                }
                None => self.phase = Phase::Shrink,
            },
            Phase::Shrink => self.shrink(store)?,
            Phase::GiveBack => match store.give_back_step()? {
                GiveBack::More => {}
                GiveBack::Done => self.phase = Phase::Checkpoint,
                GiveBack::Cannot { holds_free_space } => {
                    self.report.cannot_give_back = holds_free_space;
                    self.phase = Phase::Checkpoint;
                }
            },
            Phase::Checkpoint => {
                self.report.checkpoint_busy = !store.checkpoint()?;
                self.report.after = store.space()?.unwrap_or_default();
                self.phase = Phase::Done;
            }
            Phase::Done => {}
        }
        Ok(if self.phase == Phase::Done {
            Step::Done
        } else {
            Step::More
        })
    }

    fn shrink(&mut self, store: &mut dyn HistoryWriter) -> Result<(), StoreError> {
        let Some(budget) = self.policy.max_db_bytes else {
            self.phase = Phase::GiveBack;
            return Ok(());
        };
        let (target, hard_target) = match self.target_used_bytes {
            Some(targets) => targets,
            None => {
                let hard = budget
                    .saturating_sub(store.log_allowance(budget, self.report.before.wal_bytes)?);
                let growth = self.previous_used_bytes.map_or(0, |previous| {
                    self.report.before.used_bytes().saturating_sub(previous)
                });
                // Growth is capped at half the budget: one burst must not empty the file.
                let headroom = growth.min(budget / 2);
                *self
                    .target_used_bytes
                    .insert((hard.saturating_sub(headroom), hard))
            }
        };
        match shrink_step(store, target, self.now_ms, self.row_budget)? {
            ShrinkStep::Fits => self.phase = Phase::GiveBack,
            ShrinkStep::Pruned(counts) => self.report.size_pruned.add(&counts),
            ShrinkStep::RolledUp(progress) => self.report.size_rolled_up.add(&progress),
            ShrinkStep::UsageRolledUp(progress) => self.report.usage_rolled_up.add(&progress),
            ShrinkStep::RollupsExpired(n) => self.report.size_rollups_expired += n,
            ShrinkStep::NothingLeft => {
                let used_bytes = store.space()?.unwrap_or_default().used_bytes();
                if used_bytes > hard_target {
                    self.report.over_budget = Some(OverBudget {
                        budget_bytes: budget,
                        used_bytes,
                    });
                }
                self.phase = Phase::GiveBack;
            }
        }
        Ok(())
    }
}

impl PassReport {
    /// What the pass did, one line per kind of change, for the log and `kubetrail prune`.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let pruned = |what: &str, c: &PruneCounts| {
            format!(
                "{what}: {} ended pods ({} transitions, {} resource rows), {} node transitions, \
                 {} node capacity rows, {} node rows",
                c.pods,
                c.pod_transitions,
                c.pod_resources,
                c.node_transitions,
                c.node_capacity,
                c.nodes
            )
        };
        let rolled = |what: &str, r: &RollupProgress| {
            format!(
                "{what}: {} raw node usage rows replaced by {} hourly rollup rows ({} keyframes at the horizon)",
                r.raw_rows_deleted, r.rollups_written, r.keyframes_written
            )
        };
        let events = self.aged_out.events + self.aged_out.event_occurrences;
        let owners = self.aged_out.owners + self.aged_out.owner_scales;
        if self.aged_out.rows() > events + owners {
            lines.push(pruned("max-age removed", &self.aged_out));
        }
        if events > 0 {
            lines.push(format!(
                "max-age removed: {} events ({} occurrences)",
                self.aged_out.events, self.aged_out.event_occurrences
            ));
        }
        if owners > 0 {
            lines.push(format!(
                "max-age removed: {} deleted ReplicaSets and Jobs ({} scale rows)",
                self.aged_out.owners, self.aged_out.owner_scales
            ));
        }
        if self.rolled_up.raw_rows_deleted > 0 {
            lines.push(rolled("raw-usage-age rolled up", &self.rolled_up));
        }
        if self.rollups_expired > 0 {
            lines.push(format!(
                "rollup-age removed: {} hourly rollup rows",
                self.rollups_expired
            ));
        }
        if self.usage_rolled_up.samples_rolled_up > 0 {
            lines.push(format!(
                "raw-usage-age rolled up: {} measured usage samples replaced by {} hourly rows",
                self.usage_rolled_up.samples_rolled_up, self.usage_rolled_up.hours_written
            ));
        }
        if self.usage_rollups_expired > 0 {
            lines.push(format!(
                "rollup-age removed: {} hourly rows of measured usage",
                self.usage_rollups_expired
            ));
        }
        if self.size_pruned.rows() > 0 {
            lines.push(pruned("max-db-size removed early", &self.size_pruned));
        }
        if self.size_rolled_up.raw_rows_deleted > 0 {
            lines.push(rolled("max-db-size rolled up early", &self.size_rolled_up));
        }
        if self.size_rollups_expired > 0 {
            lines.push(format!(
                "max-db-size removed early: {} hourly rollup rows",
                self.size_rollups_expired
            ));
        }
        if lines.is_empty() {
            lines.push("nothing to remove".to_string());
        }
        lines.push(format!(
            "file: {} -> {} on disk (database {} + write-ahead log {})",
            format_size(self.before.on_disk()),
            format_size(self.after.on_disk()),
            format_size(self.after.db_bytes),
            format_size(self.after.wal_bytes)
        ));
        lines
    }

    /// Warnings a user must see: a budget that cannot be met, a file that cannot shrink.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(over) = self.over_budget {
            out.push(format!(
                "--max-db-size {} cannot be met: what may never be deleted (open pods and nodes \
                 with their history, the last hour of node utilisation and the newest 7 days of \
                 rollups) uses {}; nothing of it was deleted. Raise --max-db-size",
                format_size(over.budget_bytes),
                format_size(over.used_bytes)
            ));
        }
        if self.cannot_give_back {
            out.push(
                "this database was created without incremental auto-vacuum, so freed pages stay in \
                 the file (they are reused); stop the recorder and run `sqlite3 FILE 'PRAGMA \
                 auto_vacuum=INCREMENTAL; VACUUM;'` once to make it shrinkable"
                    .to_string(),
            );
        }
        out
    }
}
