//! Compares what the recorder wrote with the simulator's (or the e2e driver's) ground truth.
//!
//! Outside gaps the rule is strict: every truth transition has a recorded row for the same uid
//! and kind with `at` within 1 s, each row matches at most one truth line, and nothing is left
//! over. Inside a gap (before the recorder's first list, an outage, a kill -9) some things are
//! unknowable and are exempt, each for a stated reason; what can be known must still be there,
//! marked inferred.
//!
//! The truth's `relabeled` lines are not transitions: [`compare`] skips them, and [`scoped`]
//! turns a truth into what a recorder with `-l SELECTOR` should have written (`left_scope` and
//! `entered_scope` where a relabel crosses the selector, nothing about the pod while it is out
//! of scope).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use kubetrail::model::{Subject, TransitionKind};
use kubetrail_sim::TruthLine;

/// A recorded transition, flattened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub uid: String,
    pub kind: TransitionKind,
    pub at_ms: i64,
    pub observed_at_ms: i64,
    pub inferred: bool,
    pub container: Option<String>,
    pub restart_count: Option<i64>,
}

pub fn read_recorded(db: &Path) -> Vec<Recorded> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the recorded database");
    let mut stmt = conn
        .prepare(
            "SELECT coalesce(p.uid, n.uid), t.kind, t.at_ms, t.observed_at_ms, t.inferred, t.container,
                    t.restart_count
             FROM transitions t LEFT JOIN pods p ON p.id = t.pod_id LEFT JOIN nodes n ON n.id = t.node_id
             ORDER BY t.id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Recorded {
            uid: r.get(0)?,
            kind: TransitionKind::from_code(r.get(1)?).expect("known kind code"),
            at_ms: r.get(2)?,
            observed_at_ms: r.get(3)?,
            inferred: r.get(4)?,
            container: r.get(5)?,
            restart_count: r.get(6)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// A span (Unix ms) in which the recorder was not following live events.
#[derive(Clone, Copy, Debug)]
pub struct Gap {
    pub start_ms: i64,
    pub end_ms: i64,
    pub recovery: Recovery,
    /// A gap of one stream only (None: every stream). Each watch stream recovers on its own:
    /// the node watch can still be inferring after the pod watch has caught up.
    pub only: Option<Subject>,
}

/// How the recorder learns, after a gap, what happened in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// A list (the first list, a relist after 410, the list of a restarted recorder): it shows
    /// each object as it is now, and nothing of an object deleted meanwhile.
    List,
    /// A watch resumed from its last resourceVersion: the server replays every change.
    Replay,
}

impl Gap {
    /// A gap that a list ends.
    pub fn listed(start_ms: i64, end_ms: i64) -> Gap {
        Gap {
            start_ms,
            end_ms,
            recovery: Recovery::List,
            only: None,
        }
    }

    /// A gap that a resumed watch's replay ends.
    pub fn replayed(start_ms: i64, end_ms: i64) -> Gap {
        Gap {
            start_ms,
            end_ms,
            recovery: Recovery::Replay,
            only: None,
        }
    }

    /// The same gap, for the transitions of one subject only.
    pub fn only(self, subject: Subject) -> Gap {
        Gap {
            only: Some(subject),
            ..self
        }
    }
}

/// How long after a gap's end the recorder may take to list and infer what it missed.
const RECOVERY_SLACK_MS: i64 = 10_000;
const TOLERANCE_MS: i64 = 1_000;

#[derive(Debug, Default)]
pub struct Comparison {
    pub matched: usize,
    pub matched_inferred: usize,
    /// Truth lines with no recorded row.
    pub missing: Vec<TruthLine>,
    /// Recorded rows that match no truth line.
    pub unexpected: Vec<Recorded>,
    /// Truth lines that no recorder could see, with the reason.
    pub exempt: Vec<(TruthLine, &'static str)>,
    pub gaps: Vec<Gap>,
}

impl Comparison {
    pub fn assert_exact(&self) {
        let show = |v: &dyn std::fmt::Debug| format!("{v:#?}");
        assert!(
            self.missing.is_empty() && self.unexpected.is_empty(),
            "recorded history differs from the truth: {} matched, {} missing, {} unexpected, gaps {:?}\nmissing (first 20): {}\nunexpected (first 20): {}",
            self.matched,
            self.missing.len(),
            self.unexpected.len(),
            self.gaps,
            show(&self.missing.iter().take(20).collect::<Vec<_>>()),
            show(&self.unexpected.iter().take(20).collect::<Vec<_>>()),
        );
    }
}

fn in_gap(at_ms: i64, gaps: &[Gap]) -> Option<Gap> {
    gaps.iter()
        .copied()
        .find(|g| at_ms >= g.start_ms && at_ms <= g.end_ms)
}

/// The gap, if any, that the line of `kind` at `at_ms` falls into.
fn gap_of(at_ms: i64, kind: TransitionKind, gaps: &[Gap]) -> Option<Gap> {
    let ours: Vec<Gap> = gaps
        .iter()
        .copied()
        .filter(|g| g.only.is_none_or(|s| s == kind.subject()))
        .collect();
    in_gap(at_ms, &ours)
}

/// Flip-flop kinds: only the last of a family inside one gap is observable afterwards.
fn family(kind: TransitionKind) -> Option<u8> {
    use TransitionKind::*;
    match kind {
        Ready | Unready => Some(1),
        NodeReady | NodeNotReady => Some(2),
        Cordoned | Uncordoned => Some(3),
        _ => None,
    }
}

pub fn compare(truth: &[TruthLine], recorded: &[Recorded], gaps: &[Gap]) -> Comparison {
    let mut out = Comparison {
        gaps: gaps.to_vec(),
        ..Default::default()
    };
    let lines: Vec<(TruthLine, TransitionKind, i64)> = truth
        .iter()
        .filter(|l| !l.is_relabel())
        .map(|l| {
            let kind = l
                .transition_kind()
                .expect("truth kind is in the vocabulary");
            let at = l.at_ms().expect("truth time parses");
            (l.clone(), kind, at)
        })
        .collect();
    // Per subject: its first and last truth time, and whether it was deleted.
    let mut life: HashMap<&str, (i64, Option<i64>)> = HashMap::new();
    for (l, kind, at) in &lines {
        let entry = life.entry(l.uid.as_str()).or_insert((*at, None));
        entry.0 = entry.0.min(*at);
        if matches!(kind, TransitionKind::Deleted | TransitionKind::NodeDeleted) {
            entry.1 = Some(*at);
        }
    }
    let mut by_key: HashMap<(&str, TransitionKind), Vec<(usize, &Recorded)>> = HashMap::new();
    for (i, r) in recorded.iter().enumerate() {
        by_key
            .entry((r.uid.as_str(), r.kind))
            .or_default()
            .push((i, r));
    }
    let mut used = vec![false; recorded.len()];
    let candidates_of: Vec<&[(usize, &Recorded)]> = lines
        .iter()
        .map(|(line, kind, _)| {
            by_key
                .get(&(line.uid.as_str(), *kind))
                .map(Vec::as_slice)
                .unwrap_or(&[])
        })
        .collect();
    // Rows at the truth's own time are matched first, for every line: a gap's looser rule
    // (any inferred row bounded by the gap) must not let an earlier line inside the gap take
    // the row that is exactly a later line's (a pod first seen with restarts behind it has
    // a row for its last restart only; its first restart, earlier in the truth, took it).
    let mut matched_line = vec![false; lines.len()];
    for (idx, (_, _, at)) in lines.iter().enumerate() {
        let close = candidates_of[idx]
            .iter()
            .filter(|(i, r)| !used[*i] && (r.at_ms - at).abs() <= TOLERANCE_MS)
            .min_by_key(|(_, r)| (r.at_ms - at).abs());
        if let Some((i, r)) = close {
            used[*i] = true;
            matched_line[idx] = true;
            out.matched += 1;
            out.matched_inferred += r.inferred as usize;
        }
    }
    for (idx, (line, kind, at)) in lines.iter().enumerate() {
        if matched_line[idx] {
            continue;
        }
        let candidates = candidates_of[idx];
        let Some(gap) = gap_of(*at, *kind, gaps) else {
            out.missing.push(line.clone());
            continue;
        };
        // Only the last of a flip-flop family inside one gap is observable afterwards; an
        // earlier one must not take the inferred row that stands for the last.
        if let Some(fam) = family(*kind) {
            let superseded = lines[idx + 1..].iter().any(|(l, k, a)| {
                l.uid == line.uid && family(*k) == Some(fam) && in_gap(*a, &[gap]).is_some()
            });
            if superseded {
                out.exempt
                    .push((line.clone(), "flipped back inside one gap"));
                continue;
            }
        }
        // In a gap: an inferred row whose time is bounded by the gap (plus recovery) will do.
        let bounded = candidates.iter().find(|(i, r)| {
            !used[*i]
                && r.inferred
                && r.at_ms >= gap.start_ms - TOLERANCE_MS
                && r.at_ms <= gap.end_ms + RECOVERY_SLACK_MS
        });
        if let Some((i, _)) = bounded {
            used[*i] = true;
            out.matched += 1;
            out.matched_inferred += 1;
            continue;
        }
        // A change made while the recorder was still working through a replay (or a relist)
        // reaches it behind that backlog: it is live (past the replay, so not inferred), but
        // a row dated by observation (a deletion, a waiting reason) is dated when the recorder
        // got to it, later than the change by up to the backlog's length. Nothing in the event
        // says when the server made the change, so that row's time is only bounded: not before
        // the change, not after the gap (whose end is when the recorder caught up).
        let seen_late = candidates.iter().find(|(i, r)| {
            !used[*i]
                && !r.inferred
                && r.at_ms >= at - TOLERANCE_MS
                && r.at_ms <= gap.end_ms + RECOVERY_SLACK_MS
        });
        if let Some((i, _)) = seen_late {
            used[*i] = true;
            out.matched += 1;
            continue;
        }
        let (born, deleted) = life[line.uid.as_str()];
        if let Some(deleted) = deleted
            && in_gap(born, &[gap]).is_some()
            && in_gap(deleted, &[gap]).is_some()
        {
            out.exempt.push((
                line.clone(),
                "the object was created and deleted inside one gap",
            ));
            continue;
        }
        if *kind == TransitionKind::Terminating
            && deleted.is_some_and(|d| in_gap(d, &[gap]).is_some())
        {
            out.exempt.push((
                line.clone(),
                "graceful deletion began and ended inside one gap",
            ));
            continue;
        }
        if in_gap(born, &[gap]).is_some() && superseded_run(&lines, idx, gap) {
            out.exempt.push((
                line.clone(),
                "an earlier restart of a container first seen after the gap (status keeps the last)",
            ));
            continue;
        }
        if matches!(kind, TransitionKind::Unready | TransitionKind::NodeNotReady)
            && deleted.is_some_and(|d| in_gap(d, &[gap]).is_some())
        {
            out.exempt.push((
                line.clone(),
                "lost readiness and was deleted inside one gap",
            ));
            continue;
        }
        // A list after the gap does not hold an object deleted inside it: that the object is
        // gone (its `deleted`, inferred) is all that can be known of what it did after the
        // recorder last saw it, which was before the gap began (a kill -9 loses what was seen
        // but not committed, so such a gap begins before the kill).
        if gap.recovery == Recovery::List
            && !matches!(kind, TransitionKind::Deleted | TransitionKind::NodeDeleted)
            && deleted.is_some_and(|d| in_gap(d, &[gap]).is_some())
        {
            out.exempt.push((
                line.clone(),
                "deleted inside a gap that a list ended: the list does not show it",
            ));
            continue;
        }
        out.missing.push(line.clone());
    }
    out.unexpected = recorded
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(r, _)| r.clone())
        .collect();
    out
}

/// For a pod first seen after `gap`: status describes a container's last restart (whose row
/// carries the count), the termination just before it and any after it; its earlier restarts
/// and terminations inside the gap are unknowable.
fn superseded_run(lines: &[(TruthLine, TransitionKind, i64)], idx: usize, gap: Gap) -> bool {
    use TransitionKind::{ContainerRestarted, ContainerTerminated};
    let (line, kind, _) = &lines[idx];
    let runs = |k: &TransitionKind| matches!(k, ContainerRestarted | ContainerTerminated);
    if !runs(kind) {
        return false;
    }
    let same: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, (l, k, at))| {
            l.uid == line.uid
                && l.container == line.container
                && runs(k)
                && in_gap(*at, &[gap]).is_some()
        })
        .map(|(i, _)| i)
        .collect();
    let Some(&last_restart) = same
        .iter()
        .rev()
        .find(|&&i| lines[i].1 == ContainerRestarted)
    else {
        return false;
    };
    if idx >= last_restart {
        return false;
    }
    let last_state = same
        .iter()
        .rev()
        .find(|&&i| i < last_restart && lines[i].1 == ContainerTerminated);
    *kind == ContainerRestarted || last_state != Some(&idx)
}

/// Subject of a truth line, for filtering.
pub fn subject(line: &TruthLine) -> Subject {
    if line.node.is_some() {
        Subject::Node
    } else {
        Subject::Pod
    }
}

/// Waits until the database holds exactly the truth (or `timeout` passes); returns the last
/// comparison either way, for the caller to assert on.
pub fn settle(
    db: &Path,
    truth: &[TruthLine],
    gaps: &[Gap],
    timeout: std::time::Duration,
) -> Comparison {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let result = compare(truth, &read_recorded(db), gaps);
        if (result.missing.is_empty() && result.unexpected.is_empty())
            || std::time::Instant::now() > deadline
        {
            return result;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// What happened before the recorder's first list is reconstructed, not seen live.
pub fn before_start(listed_ms: i64) -> Gap {
    Gap::listed(0, listed_ms)
}

/// One term of an equality-based label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`). Parsed
/// here, not with the crate's selector code, so the truth does not share what it checks.
#[derive(Clone, Debug)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

fn parse_selector(selector: &str) -> Vec<Term> {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            if let Some((k, v)) = t.split_once("!=") {
                Term::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Term::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = t.strip_prefix('!') {
                Term::Absent(k.trim().into())
            } else {
                Term::Exists(t.into())
            }
        })
        .collect()
}

fn selects(terms: &[Term], labels: &std::collections::BTreeMap<String, String>) -> bool {
    terms.iter().all(|term| match term {
        Term::Equals(k, v) => labels.get(k) == Some(v),
        Term::NotEquals(k, v) => labels.get(k) != Some(v),
        Term::Exists(k) => labels.contains_key(k),
        Term::Absent(k) => !labels.contains_key(k),
    })
}

/// The truth as a recorder watching pods with `-l selector` sees it: pod lines only while the
/// pod matches, `left_scope`/`entered_scope` (at the relabel's time) where a relabel crosses
/// the selector, node lines unchanged. A pod whose labels are unknown (no `labels` on its
/// `created` line, as in hand-written truths) counts as matching.
pub fn scoped(truth: &[TruthLine], selector: &str) -> Vec<TruthLine> {
    let terms = parse_selector(selector);
    let mut in_scope: HashMap<String, bool> = HashMap::new();
    let mut out = Vec::new();
    for line in truth {
        if line.node.is_some() {
            out.push(line.clone());
            continue;
        }
        if line.is_relabel() {
            let now = line.labels.as_ref().is_none_or(|l| selects(&terms, l));
            let was = in_scope.insert(line.uid.clone(), now).unwrap_or(true);
            if was != now {
                let mut crossing = line.clone();
                crossing.kind = if now {
                    TransitionKind::EnteredScope
                } else {
                    TransitionKind::LeftScope
                }
                .as_str()
                .to_string();
                crossing.labels = None;
                out.push(crossing);
            }
            continue;
        }
        let matching = *in_scope
            .entry(line.uid.clone())
            .or_insert_with(|| line.labels.as_ref().is_none_or(|l| selects(&terms, l)));
        if matching {
            out.push(line.clone());
        }
    }
    out
}

/// [`read_recorded`] for one cluster of a PostgreSQL store, read with plain SQL (not through
/// kubetrail's reader), so that the comparison does not share the code it checks.
pub fn read_recorded_pg(conninfo: &str, cluster: &str) -> Vec<Recorded> {
    let mut client =
        postgres::Client::connect(conninfo, postgres::NoTls).expect("connect to the test server");
    client
        .query(
            "SELECT coalesce(p.uid, n.uid), t.kind, t.at_ms, t.observed_at_ms, t.inferred,
                    t.container, t.restart_count
             FROM transitions t
             JOIN clusters c ON c.id = t.cluster_id
             LEFT JOIN pods p ON p.id = t.pod_id LEFT JOIN nodes n ON n.id = t.node_id
             WHERE c.name = $1
             ORDER BY t.id",
            &[&cluster],
        )
        .expect("read the transitions")
        .iter()
        .map(|r| Recorded {
            uid: r.get(0),
            kind: TransitionKind::from_code(i64::from(r.get::<_, i16>(1)))
                .expect("known kind code"),
            at_ms: r.get(2),
            observed_at_ms: r.get(3),
            inferred: r.get(4),
            container: r.get(5),
            restart_count: r.get(6),
        })
        .collect()
}
