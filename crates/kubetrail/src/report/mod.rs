//! Pictures of a recorded history: the model behind `kubetrail report` (one self-contained HTML
//! file) and `kubetrail serve` (the same page, live, over a small read-only JSON API).
//!
//! The layers stay one-way: this module reads only through the public report functions of
//! `query` (`for_each_pod`, `for_each_transition`, `for_each_node_bucket`, `for_each_event`,
//! `history`) and the store's coverage, and nothing in `query` or `store` knows it exists.
//!
//! - [`model`]: the [`Report`] as the page reads it (serialised to JSON, columnar so that 100k
//!   pods stay a few megabytes), and what each field means;
//! - [`build`]: one pass over pods, transitions and node buckets into a [`Report`];
//! - [`warnings`]: the Kubernetes Warning events about the report's pods and nodes;
//! - [`summary`]: what is computed from those rows: pods per phase per bucket, the "top" tables,
//!   node spells (NotReady, cordoned), workloads;
//! - [`html`]: the page: a template, the vendored uPlot, our script and styles, and the report's
//!   JSON compressed into it;
//! - [`serve`]: the read-only HTTP API and the live page (axum, already used for `/metrics`).
//!
//! Workloads are grouped by the owner *as recorded*: the pod's direct controller (a ReplicaSet
//! for a Deployment's pods, a Job for a CronJob's). No Deployment is guessed from a
//! ReplicaSet's name; real owner chains are a later change.

pub mod build;
pub mod html;
pub mod model;
pub mod serve;
pub mod summary;
pub mod warnings;

pub use build::build;
pub use model::Report;

use crate::model::time::Window;

/// Bucket sizes a report picks from when no `--step` is given: the smallest that keeps a window
/// within [`AUTO_BUCKETS`] buckets (7 days at 1 h, 30 days at 3 h, the demo's 30 s at 1 s).
pub const STEPS_MS: &[i64] = &[
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];

/// The most buckets an automatic step gives: enough to see a day's shape in a week, few enough
/// that 1000 nodes' series stay small.
pub const AUTO_BUCKETS: i64 = 240;

/// The most buckets an explicit `--step` may give: the page draws every bucket of every node.
pub const MAX_BUCKETS: i64 = 2_000;

/// The most pods a report lists; past it the pods with trouble (restarts, OOMKills, evictions,
/// failures) are kept first and a note says how many were left out.
pub const MAX_PODS: usize = 250_000;

/// `--owner KIND/NAME`: the pod's direct owner as recorded (kind compared without case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
}

impl OwnerRef {
    /// Parses `ReplicaSet/web-5d8f9`, `Job/backup-28731`, `StatefulSet/db`.
    pub fn parse(s: &str) -> Result<OwnerRef, String> {
        match s.trim().split_once('/') {
            Some((kind, name))
                if !kind.is_empty()
                    && !name.is_empty()
                    && !name.contains('/')
                    && kind.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Ok(OwnerRef {
                    kind: kind.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!(
                "--owner {s:?} is not KIND/NAME; give the pod's direct owner as recorded, e.g. \
                 ReplicaSet/web-5d8f9c7b4 or StatefulSet/db (a Deployment's pods are owned by \
                 its ReplicaSets)"
            )),
        }
    }

    pub fn matches(&self, kind: Option<&str>, name: Option<&str>) -> bool {
        kind.is_some_and(|k| k.eq_ignore_ascii_case(&self.kind)) && name == Some(&self.name)
    }
}

impl std::fmt::Display for OwnerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// What to draw: a window and the filters of `kubetrail report` (and of `/api/report`).
#[derive(Clone, Debug)]
pub struct ReportRequest {
    /// Clipped to the recorded time before use; an open end means now.
    pub window: Window,
    pub namespace: Option<String>,
    pub owner: Option<OwnerRef>,
    pub node: Option<String>,
    /// None: the smallest of [`STEPS_MS`] within [`AUTO_BUCKETS`].
    pub step_ms: Option<i64>,
    pub max_pods: usize,
}

impl Default for ReportRequest {
    fn default() -> Self {
        ReportRequest {
            window: Window::default(),
            namespace: None,
            owner: None,
            node: None,
            step_ms: None,
            max_pods: MAX_PODS,
        }
    }
}

/// The step for `[since_ms, until_ms)`: the explicit one (refused past [`MAX_BUCKETS`]), or the
/// smallest of [`STEPS_MS`] that gives at most [`AUTO_BUCKETS`] buckets.
pub fn choose_step(since_ms: i64, until_ms: i64, explicit: Option<i64>) -> Result<i64, String> {
    let buckets = |step: i64| {
        crate::model::utilisation::Grid {
            since_ms,
            until_ms,
            step_ms: step,
        }
        .bucket_count()
    };
    match explicit {
        Some(step) if step <= 0 => Err("--step must be longer than zero".into()),
        Some(step) if buckets(step) > MAX_BUCKETS => Err(format!(
            "--step {} gives {} buckets over the window (at most {MAX_BUCKETS}); use a larger \
             --step or a shorter window",
            crate::model::time::format_duration_ms(step),
            buckets(step)
        )),
        Some(step) => Ok(step),
        None => Ok(STEPS_MS
            .iter()
            .copied()
            .find(|&s| buckets(s) <= AUTO_BUCKETS)
            .unwrap_or(*STEPS_MS.last().expect("a step"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn the_step_keeps_a_window_within_the_bucket_budget() {
        assert_eq!(choose_step(0, 7 * 24 * H, None), Ok(H));
        assert_eq!(choose_step(0, 30 * 24 * H, None), Ok(3 * H));
        assert_eq!(choose_step(0, 30_000, None), Ok(1_000));
        assert_eq!(choose_step(0, 24 * H, Some(H)), Ok(H));
        let err = choose_step(0, 30 * 24 * H, Some(60_000)).unwrap_err();
        assert!(err.contains("43200 buckets"), "{err}");
        assert!(choose_step(0, H, Some(0)).is_err());
    }

    #[test]
    fn owners_are_kind_slash_name() {
        let o = OwnerRef::parse("ReplicaSet/web-5d8f").unwrap();
        assert_eq!(
            (o.kind.as_str(), o.name.as_str()),
            ("ReplicaSet", "web-5d8f")
        );
        assert!(o.matches(Some("replicaset"), Some("web-5d8f")));
        assert!(!o.matches(Some("ReplicaSet"), Some("web")));
        assert!(!o.matches(None, Some("web-5d8f")));
        for bad in ["web", "/web", "ReplicaSet/", "a/b/c", "Replica Set/x"] {
            let err = OwnerRef::parse(bad).unwrap_err();
            assert!(err.contains("KIND/NAME"), "{bad}: {err}");
        }
    }
}
