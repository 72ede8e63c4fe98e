//! Ground truth: one JSON line per lifecycle transition the simulator causes, which recorder
//! tests compare against what `kubetrail record` wrote.
//!
//! Semantics (the recorder's kinds, as docs/queries.md lists them):
//! - `at` is the virtual time of the change with milliseconds. The objects carry the same time
//!   truncated to the second, as metav1.Time does.
//! - Pod lines have `namespace` and `name`; node lines have `node` instead.
//! - `container_terminated` is about every container: app containers, plain init containers
//!   (each ends `Completed`, in order, before the app containers start, so before `started`)
//!   and sidecars (which end with the pod); an init container that fails is exactly what a user
//!   looks for. `container_restarted` is about app containers, the only ones the simulator
//!   restarts. Both carry `container`, `reason`, `exit_code` and the `container_id` of the run
//!   that ended: each run's termination is written once, at its finishedAt, when it ends; its
//!   `container_restarted` (with the new `restart_count`) when the next run starts (that is when
//!   the kubelet's restartCount grows), also with `at` = the finishedAt of the run that ended.
//! - `container_waiting` is written when a container enters a waiting reason other than the
//!   ordinary ContainerCreating and PodInitializing (CrashLoopBackOff between runs,
//!   ErrImagePull and ImagePullBackOff before the first), with `container` and `reason`; `at` is
//!   when the status showed it (the kubelet keeps no time for it).
//! - An in-place resize writes `resize_requested` when the spec changes and `resized` when the
//!   runtime has applied it (status resources follow the spec again); both are observed times.
//! - `started` is at the first app container's running.startedAt (status.startTime, when the
//!   kubelet admitted the pod, is earlier: image pulls and init containers come between).
//! - `created` lines carry the pod's `labels`; a `relabeled` line (not a recorded kind: see
//!   [`RELABELED`]) carries the new labels whenever they change, so a comparison can derive when
//!   the pod left or entered the scope of a label selector.
//! - `succeeded`/`failed` carry `reason` only when the pod has `status.reason` (e.g. Evicted).
//!   The `container_terminated` lines of the containers that ended with the pod come first.
//! - Within one object update the order is: container_terminated, container_restarted,
//!   ready/unready, succeeded/failed.
//! - Every delete gets `terminating` (at = deletionTimestamp minus the grace period, i.e. when
//!   the delete was asked for), then `deleted` at removal. A pod with a finalizer stays after
//!   its grace period: its containers end (`container_terminated`, then `succeeded` as the
//!   kubelet's terminal phase for a deleted pod), and `deleted` comes when the finalizer is
//!   removed. A delete that takes effect at once
//!   (grace period 0, an unscheduled or finished pod) still shows the deletionTimestamp with a
//!   grace period of 0 in one update before the object goes, as the real apiserver does.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::clock;
use kubetrail::model::{Subject, TransitionKind};

/// One ground-truth line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthLine {
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Set on node transitions instead of namespace/name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A [`TransitionKind`] name.
    pub kind: String,
    /// RFC 3339 UTC with milliseconds.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The run a container line is about (`containerd://...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The container's restartCount after a `container_restarted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
    /// The pod's labels, on `created` and [`RELABELED`] lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// The kind name of a truth line that says a pod's labels changed. It is not a transition the
/// recorder writes: with a label selector it becomes `left_scope` or `entered_scope`, without
/// one nothing.
pub const RELABELED: &str = "relabeled";

impl TruthLine {
    pub fn pod(uid: &str, namespace: &str, name: &str, kind: TransitionKind, at_ms: i64) -> Self {
        debug_assert_eq!(kind.subject(), Subject::Pod);
        TruthLine {
            uid: uid.to_string(),
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            node: None,
            kind: kind.as_str().to_string(),
            at: clock::format_millis(at_ms),
            container: None,
            reason: None,
            exit_code: None,
            container_id: None,
            restart_count: None,
            labels: None,
        }
    }

    /// A pod's labels changed (see [`RELABELED`]).
    pub fn relabeled(
        uid: &str,
        namespace: &str,
        name: &str,
        labels: &[(String, String)],
        at_ms: i64,
    ) -> Self {
        let mut line = TruthLine::pod(uid, namespace, name, TransitionKind::Created, at_ms);
        line.kind = RELABELED.to_string();
        line.labels = Some(labels.iter().cloned().collect());
        line
    }

    /// Whether this line is a [`RELABELED`] line rather than a transition.
    pub fn is_relabel(&self) -> bool {
        self.kind == RELABELED
    }

    pub fn node(uid: &str, node: &str, kind: TransitionKind, at_ms: i64) -> Self {
        debug_assert_eq!(kind.subject(), Subject::Node);
        TruthLine {
            uid: uid.to_string(),
            namespace: None,
            name: None,
            node: Some(node.to_string()),
            kind: kind.as_str().to_string(),
            at: clock::format_millis(at_ms),
            container: None,
            reason: None,
            exit_code: None,
            container_id: None,
            restart_count: None,
            labels: None,
        }
    }

    /// The typed kind (pods and nodes share some names, so the subject decides).
    pub fn transition_kind(&self) -> Result<TransitionKind, String> {
        let subject = if self.node.is_some() {
            Subject::Node
        } else {
            Subject::Pod
        };
        TransitionKind::from_name(subject, &self.kind)
    }

    /// `at` as Unix milliseconds.
    pub fn at_ms(&self) -> Result<i64, String> {
        clock::parse_rfc3339_ms(&self.at)
    }
}

/// Appends truth lines to a file. Buffered: the owner calls [`TruthWriter::flush`] on a short
/// interval so readers see lines while the simulation runs.
pub struct TruthWriter {
    out: Option<BufWriter<File>>,
    lines: u64,
}

impl TruthWriter {
    /// A writer that only counts (no `--truth-out`).
    pub fn disabled() -> Self {
        TruthWriter {
            out: None,
            lines: 0,
        }
    }

    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the truth file {}", path.display()))?;
        Ok(TruthWriter {
            out: Some(BufWriter::with_capacity(1 << 16, file)),
            lines: 0,
        })
    }

    pub fn write(&mut self, line: &TruthLine) {
        self.lines += 1;
        if let Some(out) = &mut self.out {
            // A full disk must not stop the simulated cluster; the next flush reports it.
            let _ = serde_json::to_writer(&mut *out, line);
            let _ = out.write_all(b"\n");
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    pub fn lines_written(&self) -> u64 {
        self.lines
    }
}

/// Reads a truth file. A last line without its newline is still being written and is skipped,
/// so this is safe to call while the simulator runs.
pub fn read_truth(path: &Path) -> anyhow::Result<Vec<TruthLine>> {
    let file = File::open(path)
        .with_context(|| format!("cannot open the truth file {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf)?;
        if n == 0 || !buf.ends_with('\n') {
            break;
        }
        let line: TruthLine = serde_json::from_str(buf.trim_end()).with_context(|| {
            format!("bad truth line {:?} in {}", buf.trim_end(), path.display())
        })?;
        lines.push(line);
    }
    Ok(lines)
}
