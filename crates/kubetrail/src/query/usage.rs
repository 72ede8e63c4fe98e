//! `query usage` and `export usage`: requests against measured usage per pod, container or
//! owner (workload), with efficiency, reserved-but-unused resources and a right-sizing
//! recommendation.
//!
//! Over raw samples the figures are exact:
//! - a pod's usage at a sample time is the sum of its containers' samples at that time;
//! - an owner's figures are over the samples of all its pods (so "p95" is the p95 of one
//!   replica's usage, what a request per replica has to cover);
//! - `p95` is the nearest-rank 95th percentile ([`crate::model::usage::Spread`]);
//! - efficiency is the average usage over the request, in percent;
//! - idle is the request that the average usage leaves unused (request minus average, never
//!   below zero): reserved on a node, used by nobody;
//! - the recommendation is labelled as what it is: a request of p95 plus 15% headroom (CPU and
//!   memory), and a memory limit of the maximum plus 20%, since memory under-sized to the
//!   average is what gets OOMKilled.
//!
//! Past `--raw-usage-age` only hourly rollups are left, and a rolled-up hour counts when it
//! starts in the window. Each row says what it was computed from (`basis`: `raw`, `hourly` or
//! `raw+hourly`). Over rollups, the sample count, the sums (so the average and efficiency) and
//! a container's maximum stay exact; p95 becomes the largest p95 of the hours and parts it
//! covers, an upper bound of the exact one ([`Hourly::merge`]), so the recommendation errs
//! towards more. A pod of several containers has only its containers' rollups: its maximum
//! is then the sum of theirs (an upper bound) and its p95 the sum of theirs (an estimate,
//! [`Hourly::stack`]).
//!
//! Requests per container are not stored (the pods table keeps the pod's effective requests),
//! so `--by container` shows usage and the recommendation, and the pod's request is shown with
//! `--by pod` and `--by owner`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::QueryError;
use crate::model::quantity::{format_cpu_millis, format_memory_bytes};
pub use crate::model::usage::UsageFilter;
use crate::model::usage::{ContainerRollup, ContainerSample, Hourly, UsageSubject};
use crate::output::Record;
use crate::store::HistoryReader;

/// What a row of the report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UsageBy {
    Pod,
    Container,
    Owner,
}

/// Headroom of the recommended requests over p95, and of the memory limit over the maximum.
pub const REQUEST_HEADROOM_PERCENT: i64 = 15;
pub const LIMIT_HEADROOM_PERCENT: i64 = 20;

/// One row of `query usage` (machine units: millicores and bytes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageRecord {
    /// pod, container or owner.
    pub by: &'static str,
    pub namespace: String,
    /// The pod's name, or the owner as `Kind/name` (`-` for a pod without one).
    pub name: String,
    /// The container (with `--by container`), else empty.
    pub container: String,
    /// What the figures are computed from: `raw` samples (exact), `hourly` rollups, or both
    /// (`raw+hourly`); over rollups p95 is an upper bound (see the module's documentation).
    pub basis: &'static str,
    /// Pods the row covers, and samples.
    pub pods: u64,
    pub samples: u64,
    /// The pods' effective CPU request (the largest of them for an owner); None with --by
    /// container.
    pub cpu_request_millis: Option<i64>,
    pub cpu_avg_millis: f64,
    pub cpu_p95_millis: i64,
    pub cpu_max_millis: i64,
    /// Average over request, percent; None without a request.
    pub cpu_efficiency_percent: Option<f64>,
    /// Request minus average usage, never below zero.
    pub cpu_idle_millis: Option<i64>,
    pub memory_request_bytes: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
    pub memory_avg_bytes: f64,
    pub memory_p95_bytes: i64,
    pub memory_max_bytes: i64,
    pub memory_efficiency_percent: Option<f64>,
    pub memory_idle_bytes: Option<i64>,
    /// Recommended: CPU request p95 + 15%, memory request p95 + 15%, memory limit max + 20%.
    pub recommended_cpu_request_millis: i64,
    pub recommended_memory_request_bytes: i64,
    pub recommended_memory_limit_bytes: i64,
}

pub const USAGE_FIELDS: &[&str] = &[
    "by",
    "namespace",
    "name",
    "container",
    "basis",
    "pods",
    "samples",
    "cpu_request_millis",
    "cpu_avg_millis",
    "cpu_p95_millis",
    "cpu_max_millis",
    "cpu_efficiency_percent",
    "cpu_idle_millis",
    "memory_request_bytes",
    "memory_limit_bytes",
    "memory_avg_bytes",
    "memory_p95_bytes",
    "memory_max_bytes",
    "memory_efficiency_percent",
    "memory_idle_bytes",
    "recommended_cpu_request_millis",
    "recommended_memory_request_bytes",
    "recommended_memory_limit_bytes",
];

fn opt_cpu(v: Option<i64>) -> String {
    v.map(format_cpu_millis).unwrap_or_else(|| "-".into())
}

fn opt_mem(v: Option<i64>) -> String {
    v.map(format_memory_bytes).unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "-".into())
}

impl Record for UsageRecord {
    const FIELDS: &'static [&'static str] = USAGE_FIELDS;
    const TABLE_HEADERS: &'static [&'static str] = &[
        "NAMESPACE",
        "NAME",
        "CONTAINER",
        "BASIS",
        "PODS",
        "SAMPLES",
        "CPU REQ",
        "CPU AVG",
        "CPU P95",
        "CPU MAX",
        "CPU EFF",
        "CPU IDLE",
        "MEM REQ",
        "MEM AVG",
        "MEM P95",
        "MEM MAX",
        "MEM EFF",
        "REC CPU REQ",
        "REC MEM REQ",
        "REC MEM LIM",
    ];

    fn table_cells(&self) -> Vec<String> {
        vec![
            self.namespace.clone(),
            self.name.clone(),
            if self.container.is_empty() {
                "-".into()
            } else {
                self.container.clone()
            },
            self.basis.to_string(),
            self.pods.to_string(),
            self.samples.to_string(),
            opt_cpu(self.cpu_request_millis),
            format_cpu_millis(self.cpu_avg_millis.round() as i64),
            format_cpu_millis(self.cpu_p95_millis),
            format_cpu_millis(self.cpu_max_millis),
            pct(self.cpu_efficiency_percent),
            opt_cpu(self.cpu_idle_millis),
            opt_mem(self.memory_request_bytes),
            format_memory_bytes(self.memory_avg_bytes.round() as i64),
            format_memory_bytes(self.memory_p95_bytes),
            format_memory_bytes(self.memory_max_bytes),
            pct(self.memory_efficiency_percent),
            format_cpu_millis(self.recommended_cpu_request_millis),
            format_memory_bytes(self.recommended_memory_request_bytes),
            format_memory_bytes(self.recommended_memory_limit_bytes),
        ]
    }

    fn table_footnote(&self) -> Option<&'static str> {
        Some(
            "AVG/P95/MAX: measured usage (metrics API) over the window, P95 by nearest rank. \
             BASIS hourly: from hourly rollups, where P95 is the largest hourly P95 (an upper \
             bound; for a pod of several containers, MAX and P95 are their sums). EFF: average \
             over request. IDLE: request minus average. REC: recommended request p95+15%, \
             memory limit max+20%.",
        )
    }
}

/// One pod's part of a row.
#[derive(Default)]
struct PodPart {
    /// at_ms -> summed (cpu, memory): the pod's raw samples, its containers added.
    points: BTreeMap<i64, (i64, i64)>,
    /// The pod's rolled-up hours in the window, its containers stacked.
    rolled: Hourly,
}

/// The samples and rollups of one row, by pod, and the pods' requests.
#[derive(Default)]
struct Group {
    pods: BTreeMap<String, PodPart>,
    cpu_request: Option<i64>,
    memory_request: Option<i64>,
    memory_limit: Option<i64>,
}

impl Group {
    /// The group of `s`'s row, its pod's part, and the pod's requests noted.
    fn of<'a>(
        groups: &'a mut BTreeMap<(String, String, String), Group>,
        by: UsageBy,
        s: &UsageSubject,
    ) -> &'a mut PodPart {
        let key = match by {
            UsageBy::Pod => (s.namespace.clone(), s.pod.clone(), String::new()),
            UsageBy::Container => (s.namespace.clone(), s.pod.clone(), s.container.clone()),
            UsageBy::Owner => {
                let owner = match (&s.owner_kind, &s.owner_name) {
                    (Some(kind), Some(name)) => format!("{kind}/{name}"),
                    _ => format!("Pod/{}", s.pod),
                };
                (s.namespace.clone(), owner, String::new())
            }
        };
        let g = groups.entry(key).or_default();
        // A container's row takes its own requests, recorded beside its usage (none for one
        // recorded without them); the other rows their pods' effective requests.
        let requests = match by {
            UsageBy::Container => s.container_resources.map(|c| {
                let (r, l) = (c.requests, c.limits);
                (r.cpu_millis, r.memory_bytes, l.memory_bytes)
            }),
            UsageBy::Pod | UsageBy::Owner => Some((
                s.pod_cpu_request_millis,
                s.pod_memory_request_bytes,
                s.pod_memory_limit_bytes,
            )),
        };
        if let Some((cpu, memory, memory_limit)) = requests {
            let max = |a: Option<i64>, b: i64| Some(a.map_or(b, |a| a.max(b)));
            g.cpu_request = max(g.cpu_request, cpu);
            g.memory_request = max(g.memory_request, memory);
            g.memory_limit = max(g.memory_limit, memory_limit);
        }
        g.pods.entry(s.pod_uid.clone()).or_default()
    }
}

fn with_headroom(v: i64, percent: i64) -> i64 {
    let scaled = v as i128 * (100 + percent) as i128;
    ((scaled + 99) / 100) as i64
}

fn row(by: UsageBy, key: (String, String, String), g: Group) -> Option<UsageRecord> {
    let points: Vec<(i64, i64)> = g
        .pods
        .values()
        .flat_map(|p| p.points.values().copied())
        .collect();
    // Exact over the raw samples; then the pods' rolled-up parts, disjoint from them.
    let raw = Hourly::of(&points);
    let rolled = g
        .pods
        .values()
        .fold(Hourly::default(), |all, p| all.merge(p.rolled));
    let basis = match (raw.is_some(), rolled.samples > 0) {
        (true, false) => "raw",
        (false, true) => "hourly",
        (true, true) => "raw+hourly",
        (false, false) => return None,
    };
    let all = raw.unwrap_or_default().merge(rolled);
    let (cpu_avg, memory_avg) = (
        all.cpu_sum as f64 / all.samples as f64,
        all.memory_sum as f64 / all.samples as f64,
    );
    let eff = |avg: f64, req: Option<i64>| req.filter(|r| *r > 0).map(|r| avg * 100.0 / r as f64);
    let idle = |avg: f64, req: Option<i64>| req.map(|r| (r - avg.ceil() as i64).max(0));
    Some(UsageRecord {
        by: match by {
            UsageBy::Pod => "pod",
            UsageBy::Container => "container",
            UsageBy::Owner => "owner",
        },
        namespace: key.0,
        name: key.1,
        container: key.2,
        basis,
        pods: g.pods.len() as u64,
        samples: all.samples as u64,
        cpu_request_millis: g.cpu_request,
        cpu_avg_millis: cpu_avg,
        cpu_p95_millis: all.cpu_p95,
        cpu_max_millis: all.cpu_max,
        cpu_efficiency_percent: eff(cpu_avg, g.cpu_request),
        cpu_idle_millis: idle(cpu_avg, g.cpu_request),
        memory_request_bytes: g.memory_request,
        memory_limit_bytes: g.memory_limit,
        memory_avg_bytes: memory_avg,
        memory_p95_bytes: all.memory_p95,
        memory_max_bytes: all.memory_max,
        memory_efficiency_percent: eff(memory_avg, g.memory_request),
        memory_idle_bytes: idle(memory_avg, g.memory_request),
        recommended_cpu_request_millis: with_headroom(all.cpu_p95, REQUEST_HEADROOM_PERCENT),
        recommended_memory_request_bytes: with_headroom(all.memory_p95, REQUEST_HEADROOM_PERCENT),
        recommended_memory_limit_bytes: with_headroom(all.memory_max, LIMIT_HEADROOM_PERCENT),
    })
}

/// Groups raw samples and containers' rolled-up windows into report rows (pure; in any
/// order). A container's samples and rollups cover disjoint hours: retention replaces an
/// hour's samples by its rollup in one transaction.
pub fn report(
    by: UsageBy,
    samples: impl IntoIterator<Item = ContainerSample>,
    rollups: impl IntoIterator<Item = ContainerRollup>,
) -> Vec<UsageRecord> {
    let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    for s in samples {
        let part = Group::of(&mut groups, by, &s.subject);
        let point = part.points.entry(s.at_ms).or_default();
        point.0 += s.cpu_millis;
        point.1 += s.memory_bytes;
    }
    for r in rollups {
        let part = Group::of(&mut groups, by, &r.subject);
        part.rolled = part.rolled.stack(r.hourly);
    }
    groups
        .into_iter()
        .filter_map(|(key, g)| row(by, key, g))
        .collect()
}

/// Reads the samples and rollups the filter selects from one snapshot and reports them.
pub fn usage(
    reader: &dyn HistoryReader,
    filter: &UsageFilter,
    by: UsageBy,
) -> Result<Vec<UsageRecord>, QueryError> {
    let (mut samples, mut rollups) = (Vec::new(), Vec::new());
    let mut snapshot = reader.snapshot()?;
    snapshot.container_samples(filter, &mut |s| samples.push(s))?;
    snapshot.container_rollups(filter, &mut |r| rollups.push(r))?;
    Ok(report(by, samples, rollups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Effective, Resources};

    fn subject(pod: &str, container: &str) -> UsageSubject {
        UsageSubject {
            pod_uid: format!("uid-{pod}"),
            namespace: "shop".into(),
            pod: pod.into(),
            owner_kind: Some("ReplicaSet".into()),
            owner_name: Some("web-7f".into()),
            node: None,
            container: container.into(),
            pod_cpu_request_millis: 200,
            pod_memory_request_bytes: 1_000,
            pod_cpu_limit_millis: 0,
            pod_memory_limit_bytes: 2_000,
            container_resources: None,
        }
    }

    fn s(pod: &str, container: &str, at_ms: i64, cpu: i64, mem: i64) -> ContainerSample {
        ContainerSample {
            subject: subject(pod, container),
            at_ms,
            window_ms: 15_000,
            cpu_millis: cpu,
            memory_bytes: mem,
        }
    }

    #[test]
    fn pods_sum_their_containers_per_sample_and_owners_pool_their_pods() {
        let samples = vec![
            s("a", "app", 1, 100, 400),
            s("a", "side", 1, 10, 100),
            s("a", "app", 2, 300, 600),
            s("a", "side", 2, 10, 100),
            s("b", "app", 1, 50, 200),
        ];
        let pods = report(UsageBy::Pod, samples.clone(), []);
        assert_eq!(pods.len(), 2);
        let a = &pods[0];
        assert_eq!(
            (a.samples, a.cpu_max_millis, a.memory_max_bytes),
            (2, 310, 700)
        );
        assert_eq!(a.cpu_avg_millis, 210.0);
        assert_eq!(a.cpu_efficiency_percent, Some(105.0));
        assert_eq!(a.cpu_idle_millis, Some(0));
        assert_eq!(a.memory_idle_bytes, Some(400));
        // p95 of two samples by nearest rank is the larger; +15% rounded up.
        assert_eq!(a.recommended_cpu_request_millis, 357);
        assert_eq!(a.recommended_memory_limit_bytes, 840);
        let owners = report(UsageBy::Owner, samples.clone(), []);
        assert_eq!(owners.len(), 1);
        assert_eq!((owners[0].pods, owners[0].samples), (2, 3));
        assert_eq!(owners[0].name, "ReplicaSet/web-7f");
        assert_eq!(owners[0].cpu_p95_millis, 310);
        let containers = report(UsageBy::Container, samples, []);
        assert_eq!(containers.len(), 3);
        assert_eq!(containers[0].cpu_request_millis, None);
        assert!(pods.iter().chain(&owners).all(|r| r.basis == "raw"));
    }

    #[test]
    fn a_container_row_takes_the_containers_own_requests_and_the_pod_row_the_pods() {
        let own = |container: &str, cpu: i64, memory: i64| {
            let mut sample = s("a", container, 1, 50, 300);
            sample.subject.container_resources = Some(Effective {
                requests: Resources::new(cpu, memory),
                limits: Resources::new(0, memory * 2),
            });
            sample
        };
        let samples = vec![own("app", 150, 600), own("side", 50, 400)];
        let containers = report(UsageBy::Container, samples.clone(), []);
        let requests: Vec<_> = containers
            .iter()
            .map(|r| {
                let c = r.container.as_str();
                (
                    c,
                    r.cpu_request_millis,
                    r.memory_request_bytes,
                    r.memory_limit_bytes,
                )
            })
            .collect();
        assert_eq!(
            requests,
            [
                ("app", Some(150), Some(600), Some(1_200)),
                ("side", Some(50), Some(400), Some(800))
            ]
        );
        assert_eq!(
            containers[0].cpu_efficiency_percent,
            Some(50.0 * 100.0 / 150.0)
        );
        assert_eq!(containers[1].memory_idle_bytes, Some(100));
        // The pod's row keeps the pod's effective requests (200m here, not 150m + 50m).
        let pods = report(UsageBy::Pod, samples, []);
        assert_eq!(pods[0].cpu_request_millis, Some(200));
    }

    /// Pod a's first hour is rolled up, its second raw; the truth is the report over all
    /// of them raw.
    #[test]
    fn rolled_up_hours_keep_counts_sums_and_maxima_and_bound_p95_from_above() {
        let first: Vec<(i64, i64)> = (1..=20).map(|v| (v * 10, 1_000 - v)).collect();
        let second: Vec<(i64, i64)> = (1..=20).map(|v| (v * 3, v * 50)).collect();
        let raw = |part: &[(i64, i64)], from: i64| {
            part.iter()
                .enumerate()
                .map(|(i, (cpu, mem))| s("a", "app", from + i as i64, *cpu, *mem))
                .collect::<Vec<_>>()
        };
        let truth = &report(
            UsageBy::Pod,
            raw(&first, 0).into_iter().chain(raw(&second, 100)),
            [],
        )[0];
        let rollup = ContainerRollup {
            subject: subject("a", "app"),
            hourly: Hourly::of(&first).unwrap(),
        };
        let mixed = &report(UsageBy::Pod, raw(&second, 100), [rollup.clone()])[0];
        assert_eq!(mixed.basis, "raw+hourly");
        assert_eq!(
            (mixed.samples, mixed.cpu_avg_millis, mixed.memory_avg_bytes),
            (truth.samples, truth.cpu_avg_millis, truth.memory_avg_bytes)
        );
        assert_eq!(
            (mixed.cpu_max_millis, mixed.memory_max_bytes),
            (truth.cpu_max_millis, truth.memory_max_bytes)
        );
        // cpu: the rolled hour's p95 (190) is the largest part's, above the exact 180.
        assert_eq!((truth.cpu_p95_millis, mixed.cpu_p95_millis), (180, 190));
        assert!(mixed.memory_p95_bytes >= truth.memory_p95_bytes);
        assert_eq!(mixed.cpu_efficiency_percent, truth.cpu_efficiency_percent);
        let only = &report(UsageBy::Owner, Vec::new(), [rollup])[0];
        assert_eq!((only.basis, only.samples, only.pods), ("hourly", 20, 1));
    }

    #[test]
    fn fields_match_the_serialised_row() {
        let row = &report(UsageBy::Pod, vec![s("a", "app", 1, 1, 1)], [])[0];
        assert_eq!(crate::output::json_keys(row), USAGE_FIELDS);
        assert_eq!(row.table_cells().len(), UsageRecord::TABLE_HEADERS.len());
    }
}
