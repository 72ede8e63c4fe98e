//! Shared helper of the real-cluster e2e test: a `controlplane --cluster` (etcd, kube-apiserver
//! with an audit log, kube-scheduler, kube-controller-manager, kwok kubelets playing
//! e2e/kwok/stages.yaml), kubectl against it, the audit-log truth of `audittruth` (Go, written
//! from the Kubernetes objects, sharing nothing with the recorder), `kubetrail export
//! transitions` parsed from its CSV, and the comparison of the two.
//!
//! Include it with `#[path = "common/cluster.rs"] mod cluster;` next to `common/e2e.rs`.
//!
//! The comparison: outside the gaps (spans in which the recorder was not following live
//! events) every truth transition must be exported exactly once, with `at` equal to the truth's
//! (status-timed kinds: a time the object carries) or within 1 s of it (observed kinds: the
//! audit event's completion time); inside a gap a transition may be missing, but a row that is
//! there must still be true. Every exported row must match a truth transition. For a pod first
//! seen after a gap, status no longer holds the first run's start nor the older restarts'
//! times: those rows must be inferred and lie within the bounds status still gives.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::e2e::ControlPlane;

/// Observed kinds: the recorder's clock against the audit event's completion.
pub const OBSERVED_TOLERANCE_MS: i64 = 1_000;
/// After a gap the recorder lists again and infers what it missed; an inferred row of an
/// observed kind carries the time it was inferred, up to this long after the gap's end.
pub const RECOVERY_SLACK_MS: i64 = 15_000;

/// The repository root (the test's working directory is the crate root).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running cluster. Stopped on drop (through the [`ControlPlane`] it holds).
pub struct Cluster {
    pub cp: ControlPlane,
    pub audit_log: PathBuf,
    pub bin: PathBuf,
    pub kwok_log: PathBuf,
    pub kcm_log: PathBuf,
    pub scheduler_log: PathBuf,
    /// How long the launcher took to print its ready line.
    pub startup: Duration,
}

impl Cluster {
    /// Starts the cluster from `$KUBETRAIL_E2E_BIN`; None (skipped) when it is unset, unless
    /// `KUBETRAIL_E2E_REQUIRED=1` (see [`ControlPlane::start`]). The watch cache is off, so
    /// an etcd compaction makes watches from older resourceVersions answer 410.
    pub fn start() -> Option<Cluster> {
        let stages = repo().join("e2e/kwok/stages.yaml");
        let t0 = Instant::now();
        let (cp, ready) = ControlPlane::start_with(
            false,
            &[
                "--cluster".to_string(),
                format!("--kwok-config={}", stages.display()),
            ],
        )?;
        let startup = t0.elapsed();
        let path = |key: &str| -> PathBuf {
            PathBuf::from(
                ready[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("the launcher's ready line has no {key}: {ready}")),
            )
        };
        let bin = PathBuf::from(std::env::var_os("KUBETRAIL_E2E_BIN").expect("set: started"));
        for tool in [
            "audittruth",
            "kwok",
            "kube-scheduler",
            "kube-controller-manager",
        ] {
            assert!(
                bin.join(tool).is_file(),
                "KUBETRAIL_E2E_BIN={} has no {tool}; rebuild with e2e/controlplane/build.sh",
                bin.display()
            );
        }
        Some(Cluster {
            audit_log: path("audit_log"),
            kwok_log: path("kwok_log"),
            kcm_log: path("controller_manager_log"),
            scheduler_log: path("scheduler_log"),
            cp,
            bin,
            startup,
        })
    }

    /// Runs kubectl (`$KUBECTL`, else `kubectl` on PATH) against the cluster; panics with its
    /// output when it fails. Returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&self.cp.kubeconfig)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {kubectl}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {}: {}\n{stdout}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `kubectl get ... -o jsonpath=EXPR`, or an empty string when the object is not there.
    pub fn jsonpath(&self, args: &[&str], expr: &str) -> String {
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&self.cp.kubeconfig)
            .args(args)
            .arg("-o")
            .arg(format!("jsonpath={expr}"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {kubectl}: {e}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Applies a manifest from the repository (path relative to its root).
    pub fn apply(&self, manifest: &str) {
        let path = repo().join(manifest);
        self.kubectl(&["apply", "-f", path.to_str().expect("utf-8 path")]);
    }

    fn audittruth(&self, args: &[&str]) -> String {
        let out = Command::new(self.bin.join("audittruth"))
            .args(args)
            .arg(&self.audit_log)
            .output()
            .expect("run audittruth");
        assert!(
            out.status.success(),
            "audittruth {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Every transition the audit log shows, as `audittruth` reads it.
    pub fn truth(&self) -> Vec<Truth> {
        self.audittruth(&[])
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("audittruth line ({e}): {l}"))
            })
            .collect()
    }

    /// Per node, the summed effective requests of the pods bound to it and not terminal, as of
    /// the end of the audit log (upstream PodRequests, in audittruth).
    pub fn node_requests(&self) -> Vec<NodeRequests> {
        self.audittruth(&["--requests"])
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("audittruth line ({e}): {l}"))
            })
            .collect()
    }

    /// Every time a pod's status carried for `started` and readiness, from the audit log.
    pub fn status_history(&self) -> StatusHistory {
        StatusHistory::read(&self.audit_log)
    }

    /// The last lines of each component's log, for failure messages.
    pub fn logs(&self) -> String {
        let tail = |p: &Path| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..]
                .iter()
                .map(|l| &l[..l.len().min(400)])
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "---- kwok ----\n{}\n---- kube-controller-manager ----\n{}\n---- kube-scheduler ----\n{}\n",
            tail(&self.kwok_log),
            tail(&self.kcm_log),
            tail(&self.scheduler_log)
        )
    }
}

/// One `audittruth` line.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Truth {
    pub subject: String,
    pub uid: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub node: String,
    pub kind: String,
    #[serde(default)]
    pub container: String,
    #[serde(default)]
    pub reason: String,
    pub exit_code: Option<i64>,
    pub at_ms: i64,
    /// "status" or "observed".
    pub timing: String,
    /// When the write that caused it completed (the audit event's stageTimestamp).
    pub write_ms: i64,
}

/// One `audittruth --requests` line.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct NodeRequests {
    pub node: String,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: Vec<String>,
}

/// One row of `kubetrail export transitions` (the columns the comparison uses).
#[derive(Clone, Debug, PartialEq)]
pub struct Exported {
    pub subject: String,
    pub uid: String,
    pub pod: String,
    pub kind: String,
    pub at_ms: i64,
    pub observed_at_ms: i64,
    pub container: String,
    pub reason: String,
    pub exit_code: Option<i64>,
    pub inferred: bool,
}

/// Runs `kubetrail export transitions --nodes --db DB` (pod and node rows) and parses its CSV
/// by header name.
pub fn export_transitions(db: &Path) -> Vec<Exported> {
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["export", "transitions", "--nodes", "--db"])
        .arg(db)
        .output()
        .expect("run kubetrail export");
    assert!(
        out.status.success(),
        "kubetrail export transitions: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let headers = reader.headers().expect("CSV header").clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("export has no {name} column: {headers:?}"))
    };
    let (subject, uid, pod, kind, at, observed, container, reason, exit, inferred) = (
        col("subject"),
        col("uid"),
        col("pod"),
        col("kind"),
        col("at_ms"),
        col("observed_at_ms"),
        col("container"),
        col("reason"),
        col("exit_code"),
        col("inferred"),
    );
    reader
        .records()
        .map(|r| {
            let r = r.expect("CSV record");
            let int = |i: usize| -> i64 {
                r[i].parse().unwrap_or_else(|e| {
                    panic!("column {} is not an integer ({e}): {r:?}", &headers[i])
                })
            };
            Exported {
                subject: r[subject].to_string(),
                uid: r[uid].to_string(),
                pod: r[pod].to_string(),
                kind: r[kind].to_string(),
                at_ms: int(at),
                observed_at_ms: int(observed),
                container: r[container].to_string(),
                reason: r[reason].to_string(),
                exit_code: (!r[exit].is_empty()).then(|| int(exit)),
                inferred: matches!(&r[inferred], "true" | "1"),
            }
        })
        .collect()
}

/// A span (Unix ms) in which the recorder was not following live events.
#[derive(Clone, Copy, Debug)]
pub struct Gap {
    pub start_ms: i64,
    pub end_ms: i64,
    pub why: &'static str,
}

impl Gap {
    pub fn new(start_ms: i64, end_ms: i64, why: &'static str) -> Gap {
        Gap {
            start_ms,
            end_ms,
            why,
        }
    }

    fn contains(&self, ms: i64) -> bool {
        ms >= self.start_ms && ms <= self.end_ms
    }
}

#[derive(Debug, Default)]
pub struct Comparison {
    pub matched: usize,
    /// Matched rows of transitions inside a gap (the recorder inferred or relisted them).
    pub matched_in_gap: usize,
    /// Truth transitions outside every gap with no exported row.
    pub missing: Vec<Truth>,
    /// Truth transitions inside a gap with no exported row (allowed).
    pub missed_in_gap: Vec<Truth>,
    /// Exported rows that match no truth transition.
    pub unexpected: Vec<Exported>,
}

impl Comparison {
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }

    /// Missing and unexpected rows counted per kind, e.g. `pod/started: 3 missing, 3 unexpected`.
    pub fn summary(&self) -> String {
        let mut by: HashMap<String, (usize, usize)> = HashMap::new();
        for t in &self.missing {
            by.entry(format!("{}/{}", t.subject, t.kind)).or_default().0 += 1;
        }
        for e in &self.unexpected {
            by.entry(format!("{}/{}", e.subject, e.kind)).or_default().1 += 1;
        }
        let mut lines: Vec<String> = by
            .into_iter()
            .map(|(k, (m, u))| format!("{k}: {m} missing, {u} unexpected"))
            .collect();
        lines.sort();
        lines.join("\n")
    }

    pub fn report(&self) -> String {
        self.report_with(&[])
    }

    /// The report, with the exported rows of the same subject and kind next to each missing
    /// transition (so a wrong time or reason shows as such).
    pub fn report_with(&self, exported: &[Exported]) -> String {
        let mut s = format!(
            "{} matched ({} inside gaps), {} missing, {} unexpected, {} inside gaps not recorded\nper kind:\n{}\n",
            self.matched,
            self.matched_in_gap,
            self.missing.len(),
            self.unexpected.len(),
            self.missed_in_gap.len(),
            self.summary()
        );
        s.push_str("missing:\n");
        for t in &self.missing {
            s.push_str(&format!(
                "  {} {}/{} {} container={} reason={} exit={:?} at_ms={} ({}) write_ms={}\n",
                t.subject,
                t.namespace,
                t.name,
                t.kind,
                t.container,
                t.reason,
                t.exit_code,
                t.at_ms,
                t.timing,
                t.write_ms
            ));
            for e in exported
                .iter()
                .filter(|e| e.uid == t.uid && e.kind == t.kind)
            {
                s.push_str(&format!(
                    "      exported: container={} reason={} exit={:?} at_ms={} ({:+} ms) inferred={}\n",
                    e.container, e.reason, e.exit_code, e.at_ms, e.at_ms - t.at_ms, e.inferred
                ));
            }
        }
        s.push_str("unexpected:\n");
        for e in &self.unexpected {
            s.push_str(&format!(
                "  {} {} {} container={} reason={} exit={:?} at_ms={} observed_at_ms={} inferred={}\n",
                e.subject, e.pod, e.kind, e.container, e.reason, e.exit_code, e.at_ms, e.observed_at_ms, e.inferred
            ));
        }
        s
    }
}

/// The kinds whose reason (and exit code) are part of what happened.
fn reason_matters(kind: &str) -> bool {
    matches!(kind, "container_terminated" | "container_waiting")
}

fn same_event(t: &Truth, e: &Exported) -> bool {
    t.subject == e.subject
        && t.uid == e.uid
        && t.kind == e.kind
        && t.container == e.container
        && (!reason_matters(&t.kind) || (t.reason == e.reason && t.exit_code == e.exit_code))
}

/// How far `e.at_ms` is from `t`'s time, if it is acceptable; the closest acceptable row wins.
fn distance(t: &Truth, e: &Exported, gap: Option<&Gap>) -> Option<i64> {
    let d = (e.at_ms - t.at_ms).abs();
    match (t.timing.as_str(), gap) {
        ("status", _) => (d == 0).then_some(0),
        (_, None) => (d <= OBSERVED_TOLERANCE_MS).then_some(d),
        // Seen only after the gap: any time from the event to the end of the recovery.
        (_, Some(g)) => (e.at_ms >= t.at_ms - OBSERVED_TOLERANCE_MS
            && e.at_ms <= g.end_ms.saturating_add(RECOVERY_SLACK_MS))
        .then_some(d),
    }
}

/// The times pods' status carried, write by write, read straight from the audit log (not from
/// audittruth, which keeps each transition's first write only):
/// `(uid, write_ms, kind, container, at_ms)` for the Ready condition's lastTransitionTime
/// (`ready` / `unready` by its status), the first run's `running.startedAt` of each app
/// container (`started`), each container's `terminated.finishedAt` in `state` and `lastState`
/// (`container_terminated`, with its container), and the latest of those when the phase is
/// terminal (`succeeded` / `failed`, as audittruth dates them). kwok replays a stage whose patch
/// failed while the API server was down, and the replay rewrites these times with the same
/// containerID: a recorder that lists after the replay can only know the second time.
#[derive(Debug, Default)]
pub struct StatusHistory(Vec<(String, i64, &'static str, Option<String>, i64)>);

impl StatusHistory {
    pub fn read(audit_log: &Path) -> StatusHistory {
        let text = std::fs::read_to_string(audit_log).unwrap_or_default();
        let ms = |v: &serde_json::Value| v.as_str().map(crate::e2e::parse_ms);
        let mut out = Vec::new();
        for line in text.lines() {
            let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let code = e["responseStatus"]["code"].as_i64().unwrap_or(200);
            if e["stage"] != "ResponseComplete"
                || e["objectRef"]["resource"] != "pods"
                || !matches!(e["verb"].as_str(), Some("patch" | "update"))
                || !(200..300).contains(&code)
            {
                continue;
            }
            let (object, Some(write_ms)) = (&e["responseObject"], ms(&e["stageTimestamp"])) else {
                continue;
            };
            let Some(uid) = object["metadata"]["uid"].as_str() else {
                continue;
            };
            let status = &object["status"];
            for c in status["conditions"].as_array().into_iter().flatten() {
                if c["type"] == "Ready"
                    && let Some(at) = ms(&c["lastTransitionTime"])
                {
                    let kind = if c["status"] == "True" {
                        "ready"
                    } else {
                        "unready"
                    };
                    out.push((uid.to_string(), write_ms, kind, None, at));
                }
            }
            for c in status["containerStatuses"].as_array().into_iter().flatten() {
                if c["restartCount"].as_i64() == Some(0)
                    && let Some(at) = ms(&c["state"]["running"]["startedAt"])
                {
                    out.push((uid.to_string(), write_ms, "started", None, at));
                }
            }
            let mut latest_finish = None;
            for c in ["initContainerStatuses", "containerStatuses"]
                .iter()
                .flat_map(|list| status[*list].as_array().into_iter().flatten())
            {
                let name = c["name"].as_str().unwrap_or_default();
                let ended = ms(&c["state"]["terminated"]["finishedAt"]);
                let ended_before = ms(&c["lastState"]["terminated"]["finishedAt"]);
                for at in [ended_before, ended].into_iter().flatten() {
                    let container = Some(name.to_string());
                    out.push((
                        uid.to_string(),
                        write_ms,
                        "container_terminated",
                        container,
                        at,
                    ));
                }
                latest_finish = latest_finish.max(ended);
            }
            let terminal = match status["phase"].as_str() {
                Some("Succeeded") => Some("succeeded"),
                Some("Failed") => Some("failed"),
                _ => None,
            };
            if let (Some(kind), Some(at)) = (terminal, latest_finish) {
                out.push((uid.to_string(), write_ms, kind, None, at));
            }
        }
        StatusHistory(out)
    }

    /// Whether a write of pod `uid` inside `gap`, at or after `after_ms`, set `kind`'s time (of
    /// `container`, for a container's kind) to `at_ms`.
    fn rewrote(&self, t: &Truth, at_ms: i64, gap: &Gap) -> bool {
        self.0.iter().any(|(u, w, k, c, at)| {
            *u == t.uid
                && *k == t.kind
                && c.as_ref().is_none_or(|c| *c == t.container)
                && *at == at_ms
                && *w >= t.write_ms
                && gap.contains(*w)
        })
    }
}

/// For a pod the recorder first saw after `gap` (its `created` was written inside it), the span
/// in which status still places a transition whose own time it no longer holds, if `t` is such
/// a transition. The kubelet keeps a container's newest run and, in lastState, one more; for a
/// pod first listed mid crash loop (restartCount k, lastState = run k) that leaves:
/// - `started` (the first run's start): gone. status.startTime, set when the kubelet admitted
///   the pod, is after the binding and before any container started, so the recorder's row
///   lies between `scheduled` and the true start.
/// - `container_restarted` k (dated at run k-1's finishedAt): run k-1 is gone; run k's startedAt
///   (lastState) is after the restart and before run k ended, so the recorder's row lies
///   between the true restart and run k's end (or the gap's end while run k still runs).
///   Earlier restarts leave nothing: one row carries the count.
///
/// No other kind and no line outside such a gap gets bounds: there status gives the exact time.
fn first_sight_bounds(t: &Truth, truth: &[Truth], gap: &Gap) -> Option<(i64, i64)> {
    let of_pod = |kind: &'static str| {
        truth
            .iter()
            .filter(move |o| o.subject == t.subject && o.uid == t.uid && o.kind == kind)
    };
    if !of_pod("created").any(|c| gap.contains(c.write_ms)) {
        return flip_bounds(t, truth, gap);
    }
    match t.kind.as_str() {
        "started" => {
            let first = |kind| of_pod(kind).map(|o| o.at_ms).min();
            Some((first("scheduled").or_else(|| first("created"))?, t.at_ms))
        }
        "container_restarted" => {
            let run_end = of_pod("container_terminated")
                .filter(|o| o.container == t.container && o.at_ms > t.at_ms)
                .map(|o| o.at_ms)
                .min();
            Some((t.at_ms, run_end.unwrap_or(gap.end_ms)))
        }
        _ => flip_bounds(t, truth, gap),
    }
}

/// A readiness flip whose flip back happened inside the same gap: the condition's
/// lastTransitionTime shows only the flip back, so the recorder dates the first flip no later
/// than that (inferred); the first flip lies between its own time and the flip back's.
fn flip_bounds(t: &Truth, truth: &[Truth], gap: &Gap) -> Option<(i64, i64)> {
    let back = match (t.subject.as_str(), t.kind.as_str()) {
        ("pod", "ready") => "unready",
        ("pod", "unready") => "ready",
        ("node", "ready") => "not_ready",
        ("node", "not_ready") => "ready",
        _ => return None,
    };
    let flip_back = truth
        .iter()
        .filter(|o| {
            o.subject == t.subject
                && o.uid == t.uid
                && o.kind == back
                && o.at_ms >= t.at_ms
                && o.write_ms > t.write_ms
        })
        .min_by_key(|o| (o.at_ms, o.write_ms))?;
    gap.contains(flip_back.write_ms)
        .then_some((t.at_ms, flip_back.at_ms))
}

/// Compares the truth with the exported rows: each truth transition takes the closest
/// acceptable unmatched row of the same subject, kind, container (and, for container kinds,
/// reason and exit code).
///
/// Transitions outside every gap choose first, oldest first: a row written while the recorder
/// was watching belongs to what it watched, and an earlier transition inside a gap (whose
/// window for an observed kind reaches past the gap) must not take it. Then the transitions
/// inside gaps, newest first: after a gap, status shows the latest state, so the latest of a
/// kind has the first claim on the row recovered from it. Last, what is still unmatched inside
/// a gap may take an inferred row within [`first_sight_bounds`] or [`flip_bounds`].
pub fn compare(truth: &[Truth], exported: &[Exported], gaps: &[Gap]) -> Comparison {
    compare_with(truth, exported, gaps, &StatusHistory::default())
}

/// [`compare`], where a status-timed transition in [`StatusHistory`] inside a gap may also be
/// an inferred row at the time a later write inside the same gap gave it: the status the
/// recorder listed after the gap said so.
pub fn compare_with(
    truth: &[Truth],
    exported: &[Exported],
    gaps: &[Gap],
    history: &StatusHistory,
) -> Comparison {
    let mut out = Comparison::default();
    let mut used = vec![false; exported.len()];
    let mut by_key: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, e) in exported.iter().enumerate() {
        by_key
            .entry((e.uid.as_str(), e.kind.as_str()))
            .or_default()
            .push(i);
    }
    let candidates = |t: &Truth| -> Vec<usize> {
        by_key
            .get(&(t.uid.as_str(), t.kind.as_str()))
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| same_event(t, &exported[i]))
            .collect()
    };
    let mut order: Vec<&Truth> = truth.iter().collect();
    order.sort_by_key(|t| (t.at_ms, t.write_ms));
    // Whether the recorder was watching is decided by when the write completed.
    let gap_of = |t: &Truth| gaps.iter().find(|g| g.contains(t.write_ms));
    let (watched, in_gaps): (Vec<&Truth>, Vec<&Truth>) =
        order.into_iter().partition(|t| gap_of(t).is_none());
    for t in watched {
        let best = candidates(t)
            .into_iter()
            .filter(|&i| !used[i])
            .filter_map(|i| distance(t, &exported[i], None).map(|d| (d, i)))
            .min();
        match best {
            Some((_, i)) => {
                used[i] = true;
                out.matched += 1;
            }
            None => out.missing.push(t.clone()),
        }
    }
    let mut unmatched = Vec::new();
    for &t in in_gaps.iter().rev() {
        let gap = gap_of(t);
        let best = candidates(t)
            .into_iter()
            .filter(|&i| !used[i])
            .filter_map(|i| distance(t, &exported[i], gap).map(|d| (d, i)))
            .min();
        match best {
            Some((_, i)) => {
                used[i] = true;
                out.matched += 1;
                out.matched_in_gap += 1;
            }
            None => unmatched.push(t),
        }
    }
    for t in unmatched {
        let gap = gap_of(t).expect("inside a gap");
        let rewritten = (t.subject == "pod" && t.timing == "status")
            .then(|| {
                candidates(t).into_iter().find(|&i| {
                    let e = &exported[i];
                    !used[i] && e.inferred && history.rewrote(t, e.at_ms, gap)
                })
            })
            .flatten();
        let bounded = rewritten.or_else(|| {
            first_sight_bounds(t, truth, gap).and_then(|(from, to)| {
                candidates(t)
                    .into_iter()
                    .filter(|&i| {
                        let e = &exported[i];
                        !used[i] && e.inferred && e.at_ms >= from && e.at_ms <= to
                    })
                    .min_by_key(|&i| (exported[i].at_ms - t.at_ms).abs())
            })
        });
        match bounded {
            Some(i) => {
                used[i] = true;
                out.matched += 1;
                out.matched_in_gap += 1;
            }
            None => out.missed_in_gap.push(t.clone()),
        }
    }
    out.missed_in_gap.sort_by_key(|t| (t.at_ms, t.write_ms));
    out.unexpected = exported
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(e, _)| e.clone())
        .collect();
    out
}

/// Compares again and again until the export equals the truth or `timeout` passes; returns
/// the last comparison. (Both sides move while the cluster settles; this waits for a state,
/// not for a time.)
pub fn settle(
    cluster: &Cluster,
    db: &Path,
    gaps: &[Gap],
    timeout: Duration,
) -> (Comparison, Vec<Truth>, Vec<Exported>) {
    let deadline = Instant::now() + timeout;
    loop {
        let truth = cluster.truth();
        let exported = export_transitions(db);
        let result = compare_with(&truth, &exported, gaps, &cluster.status_history());
        if result.is_exact() || Instant::now() >= deadline {
            return (result, truth, exported);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
