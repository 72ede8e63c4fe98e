//! Which time the history covers: the recording sessions (migration 0006) merged into covered
//! intervals, with their gaps and their scope. Reports integrate only over covered time, so a
//! step function never runs on past the end of recording or through a time the recorder was
//! down, and they say when node sums were written from only some pods (`-n`/`-l`).
//!
//! A database without any session (written by tests or tools through `store::write_batch`
//! alone) has unknown coverage: everything counts, as before sessions existed.

use std::sync::Arc;

use crate::model::time::{format_duration_ms, format_time_ms};
use crate::store::{Session, Snapshot, StoreError};

/// The most gaps a note lists one by one; the rest are counted.
const GAPS_LISTED: usize = 5;

/// The covered time of a database.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    pub sessions: Vec<Session>,
    /// Merged `[from, to)` intervals of the sessions, in time order.
    intervals: Vec<(i64, i64)>,
}

impl Coverage {
    /// Reads every session (a tiny table).
    pub fn read(read: &mut dyn Snapshot) -> Result<Coverage, StoreError> {
        Ok(Coverage::from_sessions(read.sessions()?))
    }

    pub fn from_sessions(sessions: Vec<Session>) -> Coverage {
        let mut spans: Vec<(i64, i64)> = sessions
            .iter()
            .map(|s| (s.started_at_ms, s.end_ms()))
            .filter(|(a, b)| a < b)
            .collect();
        spans.sort_unstable();
        let mut intervals: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
        for (from, to) in spans {
            match intervals.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => intervals.push((from, to)),
            }
        }
        Coverage {
            sessions,
            intervals,
        }
    }

    /// Whether any session is stored; without one, coverage is unknown and everything counts.
    pub fn is_known(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// The covered intervals for [`super::NodeIntegrator::covering`]; None when unknown.
    pub fn intervals(&self) -> Option<Arc<[(i64, i64)]>> {
        self.is_known().then(|| self.intervals.as_slice().into())
    }

    /// Where recorded time ends (the last clean stop or heartbeat); None when unknown.
    pub fn end_ms(&self) -> Option<i64> {
        if !self.is_known() {
            return None;
        }
        Some(self.intervals.last().map_or(i64::MIN, |i| i.1))
    }

    /// Where an open pod's lifetime ends: at `now_ms`, or at the end of recording when that is
    /// earlier (a backup read later must not grow its pods' lifetimes).
    pub fn open_until_ms(&self, now_ms: i64) -> i64 {
        self.end_ms().map_or(now_ms, |end| end.min(now_ms))
    }

    /// Covered milliseconds within `[from, to)`.
    pub fn covered_ms(&self, from: i64, to: i64) -> i64 {
        if !self.is_known() {
            return (to - from).max(0);
        }
        self.intervals
            .iter()
            .map(|&(a, b)| (b.min(to) - a.max(from)).max(0))
            .sum()
    }

    /// The uncovered stretches within `[from, to)`, in time order.
    pub fn gaps(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        if !self.is_known() || from >= to {
            return Vec::new();
        }
        let mut gaps = Vec::new();
        let mut t = from;
        for &(a, b) in &self.intervals {
            if b <= t {
                continue;
            }
            if a >= to {
                break;
            }
            if a > t {
                gaps.push((t, a));
            }
            t = b;
        }
        if t < to {
            gaps.push((t, to));
        }
        gaps
    }

    /// Whether some of `[from, to)` was recorded with `-n` or `-l`: node sums written then
    /// count only the pods in that scope.
    pub fn partial_in(&self, from: i64, to: i64) -> bool {
        self.sessions
            .iter()
            .any(|s| s.scope.is_partial() && s.started_at_ms < to && s.end_ms() > from)
    }

    /// The scopes of the partial sessions overlapping `[from, to)`, for a note.
    pub fn partial_scopes(&self, from: i64, to: i64) -> Vec<String> {
        let mut scopes: Vec<String> = self
            .sessions
            .iter()
            .filter(|s| s.scope.is_partial() && s.started_at_ms < to && s.end_ms() > from)
            .map(|s| s.scope.describe())
            .collect();
        scopes.dedup();
        scopes
    }

    /// One line for stderr about `[from, to)`: how much of it is recorded and where the gaps
    /// are. None when it is all covered or coverage is unknown.
    pub fn note(&self, from: i64, to: i64) -> Option<String> {
        let gaps = self.gaps(from, to);
        if gaps.is_empty() {
            return None;
        }
        let covered = self.covered_ms(from, to);
        let listed: Vec<String> = gaps
            .iter()
            .take(GAPS_LISTED)
            .map(|&(a, b)| {
                format!(
                    "{} to {} ({})",
                    format_time_ms(a),
                    format_time_ms(b),
                    format_duration_ms(b - a)
                )
            })
            .collect();
        let more = match gaps.len().saturating_sub(GAPS_LISTED) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        Some(format!(
            "coverage: {} of the {} window recorded; not recorded (counted as unknown, not as \
             utilisation or lifetime): {}{more}",
            format_duration_ms(covered),
            format_duration_ms(to - from),
            listed.join(", ")
        ))
    }

    /// One line for stderr when node sums in `[from, to)` come from a scoped recorder.
    pub fn partial_note(&self, from: i64, to: i64) -> Option<String> {
        let scopes = self.partial_scopes(from, to);
        (!scopes.is_empty()).then(|| {
            format!(
                "partial: node sums in buckets marked partial count only the pods recorded with \
                 {}, not every pod on the node",
                scopes.join("; ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Scope;

    fn session(from: i64, to: i64, namespace: Option<&str>) -> Session {
        Session {
            id: 0,
            started_at_ms: from,
            heartbeat_at_ms: to,
            stopped_at_ms: None,
            scope: Scope {
                namespace: namespace.map(str::to_string),
                ..Scope::everything()
            },
            inferred: false,
        }
    }

    #[test]
    fn sessions_merge_and_their_gaps_are_the_rest_of_the_window() {
        let c = Coverage::from_sessions(vec![
            session(10, 20, None),
            session(15, 30, None),
            session(50, 60, Some("web")),
        ]);
        assert_eq!(c.intervals().unwrap().as_ref(), &[(10, 30), (50, 60)]);
        assert_eq!(c.gaps(0, 100), vec![(0, 10), (30, 50), (60, 100)]);
        assert_eq!(c.gaps(12, 28), vec![]);
        assert_eq!(c.covered_ms(0, 100), 30);
        assert_eq!(c.end_ms(), Some(60));
        assert_eq!(c.open_until_ms(1000), 60);
        assert!(c.partial_in(55, 70) && !c.partial_in(0, 50));
        assert!(
            c.note(0, 100).unwrap().contains("30ms of the 100ms window"),
            "{:?}",
            c.note(0, 100)
        );
    }

    #[test]
    fn without_sessions_everything_counts() {
        let c = Coverage::default();
        assert!(c.intervals().is_none());
        assert_eq!(c.covered_ms(0, 100), 100);
        assert_eq!(c.open_until_ms(1000), 1000);
        assert!(c.note(0, 100).is_none());
    }
}
