//! Generates a synthetic kubetrail database for the benchmarks in BENCHMARKS.md.
//!
//! The shape follows a busy cluster: about a million pods over 30 days on 1000 nodes, each pod
//! with a realistic lifecycle (created, scheduled, started, ready, sometimes restarts and
//! readiness flaps, a terminal phase with a reason, terminating, deleted), a few StatefulSet
//! names reused by many incarnations, and node utilisation as the recorder writes it: a
//! `node_usage` row at every pod bind and finish plus a keyframe per node every
//! `--keyframe-interval`. Everything goes through `store::write_batch`, the recorder's own
//! writer, in large batches, so the file is laid out as a real recording would be.
//!
//! ```text
//! cargo run --release --example gen_db -- --out /tmp/bench.db            # 10M transitions
//! cargo run --release --example gen_db -- --out /tmp/small.db --transitions 100000
//! ```
//!
//! The output is deterministic for a given `--seed` and `--end`. It prints the names it used for
//! the history benchmark and the file's bytes per transition.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use kubetrail::model::time::{format_time_ms, parse_duration_ms, parse_time_ms};
use kubetrail::model::{Effective, Phase, Resources, TransitionKind};
use kubetrail::store::sqlite::{open_for_writing, write_batch};
use kubetrail::store::{
    Batch, NodeCapacityRow, NodeResources, NodeRow, NodeUsageRow, PodResourcesRow, PodRow,
    SubjectUid, TransitionRow,
};

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const GI: i64 = 1 << 30;
const MI: i64 = 1 << 20;

#[derive(Parser)]
#[command(about = "Generate a synthetic kubetrail database for benchmarks")]
struct Args {
    /// The database to create (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Approximate number of transitions to generate.
    #[arg(long, default_value_t = 10_000_000)]
    transitions: u64,
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    #[arg(long, default_value_t = 30)]
    days: i64,
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// A node_usage keyframe per node this often (the recorder's --snapshot-interval).
    #[arg(long, default_value = "5m", value_parser = parse_duration_ms)]
    keyframe_interval: i64,
    /// End of the recorded period (RFC 3339); default: now, rounded down to the hour.
    #[arg(long)]
    end: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

/// splitmix64: tiny, fast, deterministic; statistical quality is plenty for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn exp(&mut self, mean: f64) -> f64 {
        let u = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        -mean * u.ln()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn uid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
    fn suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len).map(|_| *self.pick(ALPHABET) as char).collect()
    }
}

/// One change of a node's requested sums, at a pod's bind (+) or finish (-).
#[derive(Clone, Copy)]
struct UsageEvent {
    node: u32,
    at_ms: i64,
    sign: i8,
    requests: Resources,
    limits: Resources,
}

struct NodePlan {
    uid: String,
    name: String,
    allocatable: NodeResources,
    /// (at_ms, new allocatable) for the few nodes that get resized mid-period.
    change: Option<(i64, NodeResources)>,
}

impl NodePlan {
    fn allocatable_at(&self, at_ms: i64) -> NodeResources {
        match self.change {
            Some((when, to)) if at_ms >= when => to,
            _ => self.allocatable,
        }
    }
}

struct Generator {
    rng: Rng,
    start_ms: i64,
    end_ms: i64,
    nodes: Vec<NodePlan>,
    namespaces: Vec<String>,
    events: Vec<UsageEvent>,
    resource_version: i64,
    transitions: u64,
    pods: u64,
}

/// What one pod's generated life looks like, before it becomes rows.
struct PodLife {
    row: PodRow,
    transitions: Vec<TransitionRow>,
}

impl Generator {
    fn rv(&mut self) -> Option<i64> {
        self.resource_version += self.rng.range(1, 40);
        Some(self.resource_version)
    }

    /// Kubernetes' own times have whole seconds; ours (observed) have milliseconds.
    fn k8s_time(ms: i64) -> i64 {
        ms - ms.rem_euclid(SEC)
    }

    fn push(
        &mut self,
        life: &mut PodLife,
        kind: TransitionKind,
        at_ms: i64,
        f: impl FnOnce(&mut TransitionRow),
    ) -> bool {
        if at_ms >= self.end_ms {
            return false;
        }
        let at_ms = Self::k8s_time(at_ms);
        let observed = at_ms + self.rng.range(50, 1500);
        let mut row =
            TransitionRow::new(SubjectUid::Pod(life.row.uid.clone()), kind, at_ms, observed);
        row.resource_version = self.rv();
        f(&mut row);
        life.transitions.push(row);
        true
    }

    /// One pod's life from `created_ms`, bound to `node`, running for `lifetime_ms` unless the
    /// period ends first.
    #[allow(clippy::too_many_arguments)]
    fn pod(
        &mut self,
        namespace: &str,
        name: String,
        owner: (&str, String),
        labels: String,
        created_ms: i64,
        lifetime_ms: i64,
        job_like: bool,
    ) -> PodLife {
        use TransitionKind::*;
        let node = self.rng.below(self.nodes.len() as u64) as u32;
        let node_name = self.nodes[node as usize].name.clone();
        let cpu = *self.rng.pick(&[50, 100, 100, 100, 200, 250, 250, 500]);
        let memory = *self.rng.pick(&[
            64 * MI,
            128 * MI,
            128 * MI,
            256 * MI,
            256 * MI,
            512 * MI,
            GI,
        ]);
        let limits = if self.rng.chance(0.2) {
            Resources::default()
        } else {
            Resources::new(2 * cpu, 2 * memory)
        };
        let resources = Effective {
            requests: Resources::new(cpu, memory),
            limits,
        };
        let uid = self.rng.uid();
        let mut life = PodLife {
            row: PodRow {
                uid: uid.clone(),
                namespace: namespace.to_string(),
                name,
                node: None,
                owner_kind: Some(owner.0.to_string()),
                owner_name: Some(owner.1),
                labels_json: Some(labels),
                created_at_ms: Self::k8s_time(created_ms),
                started_at_ms: None,
                finished_at_ms: None,
                deleted_at_ms: None,
                phase: Phase::Pending,
                reason: None,
                restarts: 0,
                resources,
                state: Vec::new(),
            },
            transitions: Vec::new(),
        };
        let created = created_ms;
        self.push(&mut life, Created, created, |r| {
            r.phase_after = Some(Phase::Pending)
        });
        let scheduled = created + self.rng.range(0, 2 * SEC);
        if self.push(&mut life, Scheduled, scheduled, |_| {}) {
            life.row.node = Some(node_name);
            self.events.push(UsageEvent {
                node,
                at_ms: Self::k8s_time(scheduled),
                sign: 1,
                requests: resources.requests,
                limits,
            });
        }
        let started = scheduled + self.rng.range(SEC, 20 * SEC);
        if self.push(&mut life, Started, started, |r| {
            r.phase_before = Some(Phase::Pending);
            r.phase_after = Some(Phase::Running);
        }) {
            life.row.phase = Phase::Running;
            life.row.started_at_ms = Some(Self::k8s_time(started));
        }
        let ready = started + self.rng.range(SEC, 30 * SEC);
        self.push(&mut life, Ready, ready, |_| {});
        let end_run = created + lifetime_ms.max(2 * MIN);

        // Restarts, for a quarter of the pods, spread over the run.
        let mut restarts = 0;
        if self.rng.chance(0.25) {
            let count = self.rng.range(1, 5);
            let mut times: Vec<i64> = (0..count).map(|_| self.rng.range(ready, end_run)).collect();
            times.sort_unstable();
            for (i, at) in times.into_iter().enumerate() {
                let oom = self.rng.chance(0.3);
                let pushed = self.push(&mut life, ContainerRestarted, at, |r| {
                    r.seq = i as i64;
                    r.container = Some("app".into());
                    r.reason = Some(if oom { "OOMKilled" } else { "Error" }.into());
                    r.exit_code = Some(if oom { 137 } else { 1 });
                    r.restart_count = Some(i as i64 + 1);
                });
                if pushed {
                    restarts += 1;
                }
            }
        }
        life.row.restarts = restarts;
        // A readiness flap for some long-running pods.
        if !job_like && self.rng.chance(0.3) {
            let at = self.rng.range(ready, end_run);
            self.push(&mut life, Unready, at, |_| {});
            let back = at + self.rng.range(5 * SEC, 5 * MIN);
            self.push(&mut life, Ready, back, |r| r.seq = 1);
        }

        // The end: a Job completes or fails; a service pod is deleted by a rollout or evicted.
        let roll = self.rng.below(100);
        let (terminated_reason, exit_code, phase, pod_reason, terminating_first) = if job_like {
            match roll {
                0..=84 => ("Completed", 0, Phase::Succeeded, None, false),
                85..=94 => ("Error", 1, Phase::Failed, None, false),
                _ => ("OOMKilled", 137, Phase::Failed, None, false),
            }
        } else {
            match roll {
                0..=89 => ("Completed", 0, Phase::Succeeded, None, true),
                90..=94 => ("Error", 143, Phase::Failed, None, true),
                95..=97 => ("OOMKilled", 137, Phase::Failed, None, false),
                _ => ("Error", 137, Phase::Failed, Some("Evicted"), false),
            }
        };
        let mut t = end_run;
        if terminating_first && self.push(&mut life, Terminating, t, |_| {}) {
            t += self.rng.range(SEC, 30 * SEC);
        }
        self.push(&mut life, ContainerTerminated, t, |r| {
            r.container = Some("app".into());
            r.reason = Some(terminated_reason.into());
            r.exit_code = Some(exit_code);
        });
        let terminal = if phase == Phase::Succeeded {
            Succeeded
        } else {
            Failed
        };
        if self.push(&mut life, terminal, t, |r| {
            r.phase_before = Some(Phase::Running);
            r.phase_after = Some(phase);
            r.reason = Some(pod_reason.unwrap_or(terminated_reason).into());
            if pod_reason.is_some() {
                r.message =
                    Some("The node was low on resource: memory. Threshold quantity: 100Mi.".into());
            }
        }) {
            life.row.phase = phase;
            life.row.reason = Some(pod_reason.unwrap_or(terminated_reason).into());
            life.row.finished_at_ms = Some(Self::k8s_time(t));
            self.events.push(UsageEvent {
                node,
                at_ms: Self::k8s_time(t),
                sign: -1,
                requests: resources.requests,
                limits,
            });
        }
        if !terminating_first {
            t += self.rng.range(SEC, 10 * MIN);
            self.push(&mut life, Terminating, t, |_| {});
        }
        let deleted = t + self.rng.range(SEC, 5 * SEC);
        if self.push(&mut life, Deleted, deleted, |r| {
            r.phase_before = Some(phase);
            r.phase_after = Some(phase);
        }) {
            life.row.deleted_at_ms = life.transitions.last().map(|r| r.at_ms);
        }
        life.row.state = state_json(&life.row).into_bytes();
        life
    }
}

/// About the size of the recorder's compact projection (`recorder::state::PodState`), which it
/// keeps for every pod; the exact keys do not matter to the benchmarks, the bytes do.
fn state_json(row: &PodRow) -> String {
    let mut s = format!(
        r#"{{"u":"{}","ns":"{}","n":"{}","p":"{}","ca":{},"rd":{},"c":[{{"n":"app","rc":{},"sa":{}}}],"e":{{"requests":{{"cpu_millis":{},"memory_bytes":{}}},"limits":{{"cpu_millis":{},"memory_bytes":{}}}}}"#,
        row.uid,
        row.namespace,
        row.name,
        row.phase,
        row.created_at_ms,
        row.phase == Phase::Running,
        row.restarts,
        row.started_at_ms.unwrap_or(0),
        row.resources.requests.cpu_millis,
        row.resources.requests.memory_bytes,
        row.resources.limits.cpu_millis,
        row.resources.limits.memory_bytes,
    );
    if let Some(node) = &row.node {
        s.push_str(&format!(r#","no":"{node}""#));
    }
    s.push('}');
    s
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let now = kubetrail::model::time::now_ms();
    let end_ms = match &args.end {
        Some(end) => parse_time_ms("--end", end, now)?,
        None => now - now.rem_euclid(HOUR),
    };
    let start_ms = end_ms - args.days * DAY;
    if args.out.exists() {
        anyhow::ensure!(
            args.force,
            "{} exists; pass --force to replace it",
            args.out.display()
        );
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", args.out.display()));
        }
    }
    let began = Instant::now();
    let mut handle = open_for_writing(&args.out)?;
    // A generator, not a recorder: durability of each commit does not matter, speed does.
    handle
        .conn
        .execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000;")?;

    let mut rng = Rng(args.seed);
    let mut batch = Batch::default();
    let nodes: Vec<NodePlan> = (0..args.nodes)
        .map(|i| {
            let big = rng.chance(0.5);
            let allocatable = if big {
                NodeResources {
                    cpu_millis: 15_890,
                    memory_bytes: 60 * GI,
                    pods: 110,
                }
            } else {
                NodeResources {
                    cpu_millis: 7_910,
                    memory_bytes: 29 * GI,
                    pods: 110,
                }
            };
            // One node in a hundred is resized once (allocatable changes, e.g. a kubelet reserve).
            let change = rng.chance(0.01).then(|| {
                let at = rng.range(start_ms, end_ms);
                (
                    at - at.rem_euclid(SEC),
                    NodeResources {
                        cpu_millis: allocatable.cpu_millis - 500,
                        ..allocatable
                    },
                )
            });
            NodePlan {
                uid: rng.uid(),
                name: format!("ip-10-0-{}-{}.ec2.internal", i / 250, i % 250),
                allocatable,
                change,
            }
        })
        .collect();
    for node in &nodes {
        let created = start_ms - DAY;
        let latest = node.allocatable_at(end_ms);
        batch.nodes.push(NodeRow {
            uid: node.uid.clone(),
            name: node.name.clone(),
            created_at_ms: created,
            deleted_at_ms: None,
            capacity: latest,
            allocatable: latest,
            state_json: format!(
                r#"{{"u":"{}","n":"{}","ca":{created},"rd":true}}"#,
                node.uid, node.name
            ),
        });
        let mut added = TransitionRow::new(
            SubjectUid::Node(node.uid.clone()),
            TransitionKind::NodeAdded,
            created,
            created + 500,
        );
        added.resource_version = Some(1);
        batch.transitions.push(added);
        batch.transitions.push(TransitionRow::new(
            SubjectUid::Node(node.uid.clone()),
            TransitionKind::NodeReady,
            created + 30 * SEC,
            created + 30 * SEC + 500,
        ));
        batch.node_capacity.push(NodeCapacityRow {
            node_uid: node.uid.clone(),
            at_ms: created,
            capacity: node.allocatable,
            allocatable: node.allocatable,
        });
        if let Some((at, to)) = node.change {
            batch.transitions.push(TransitionRow::new(
                SubjectUid::Node(node.uid.clone()),
                TransitionKind::CapacityChanged,
                at,
                at + 500,
            ));
            batch.node_capacity.push(NodeCapacityRow {
                node_uid: node.uid.clone(),
                at_ms: at,
                capacity: to,
                allocatable: to,
            });
        }
    }
    let node_transitions = batch.transitions.len() as u64;
    write_batch(&mut handle.conn, &batch)?;
    batch = Batch::default();

    let namespaces: Vec<String> = (0..args.namespaces)
        .map(|i| format!("team-{i:02}"))
        .collect();
    let mut g = Generator {
        rng,
        start_ms,
        end_ms,
        nodes,
        namespaces,
        events: Vec::new(),
        resource_version: 1000,
        transitions: node_transitions,
        pods: 0,
    };

    // StatefulSet pods: three ordinals of two apps per namespace, each name reused by a chain of
    // incarnations (mean life 5 days) across the whole period.
    let mut history_example = None;
    for ns_index in 0..g.namespaces.len() {
        let ns = g.namespaces[ns_index].clone();
        for app in ["db", "cache"] {
            for ordinal in 0..3 {
                let name = format!("{app}-{ordinal}");
                let mut t = g.start_ms + g.rng.range(0, HOUR);
                while t < g.end_ms {
                    let lifetime = g.rng.exp(5.0 * DAY as f64) as i64;
                    let labels = format!(
                        r#"{{"app":"{app}","statefulset.kubernetes.io/pod-name":"{name}"}}"#
                    );
                    let mut life = g.pod(
                        &ns,
                        name.clone(),
                        ("StatefulSet", app.to_string()),
                        labels,
                        t,
                        lifetime,
                        false,
                    );
                    t = life.row.deleted_at_ms.unwrap_or(g.end_ms) + g.rng.range(SEC, 10 * SEC);
                    g.emit(&mut batch, &mut life);
                }
                if history_example.is_none() && ns_index == 7 {
                    history_example = Some((ns.clone(), name.clone()));
                }
            }
        }
    }

    // Calibrate the number of other pods so the total lands near --transitions.
    let per_pod = {
        let mut probe = g.shallow();
        probe.rng = Rng(args.seed ^ 0xabcdef);
        probe.nodes = g
            .nodes
            .iter()
            .map(|n| NodePlan {
                uid: n.uid.clone(),
                name: n.name.clone(),
                allocatable: n.allocatable,
                change: None,
            })
            .collect();
        let mut total = 0usize;
        for _ in 0..20_000 {
            let created = probe.rng.range(start_ms, end_ms - 2 * DAY);
            total += probe.random_pod(created).transitions.len();
        }
        total as f64 / 20_000.0
    };
    let remaining = args.transitions.saturating_sub(g.transitions) as f64;
    let pods = (remaining / per_pod).max(0.0) as u64;
    let gap = (end_ms - start_ms) as f64 / pods.max(1) as f64;
    let mut t = start_ms as f64;
    let mut deployment_example = None;
    for i in 0..pods {
        t += g.rng.exp(gap);
        if t as i64 >= end_ms {
            break;
        }
        let mut life = g.random_pod(t as i64);
        if i == pods / 2 {
            deployment_example = Some((life.row.namespace.clone(), life.row.name.clone()));
        }
        g.emit(&mut batch, &mut life);
        if batch.transitions.len() >= 200_000 {
            write_batch(&mut handle.conn, &batch)?;
            batch = Batch::default();
            eprint!(
                "\r{} pods, {} transitions, {:.0}s",
                g.pods,
                g.transitions,
                began.elapsed().as_secs_f64()
            );
        }
    }
    write_batch(&mut handle.conn, &batch)?;
    batch = Batch::default();
    eprintln!();

    // Node usage: replay binds and finishes per node in time order, with keyframes.
    let events = std::mem::take(&mut g.events);
    let usage_rows = write_usage(
        &mut handle.conn,
        &g,
        events,
        args.keyframe_interval,
        &mut batch,
    )?;
    handle
        .conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(handle);

    let bytes = std::fs::metadata(&args.out)?.len();
    println!("database            {}", args.out.display());
    println!(
        "period              {} .. {}",
        format_time_ms(start_ms),
        format_time_ms(end_ms)
    );
    println!("pods                {}", g.pods);
    println!("transitions         {}", g.transitions);
    println!(
        "node_usage rows     {usage_rows} (keyframe every {})",
        kubetrail::model::time::format_duration_ms(args.keyframe_interval)
    );
    println!("file bytes          {bytes}");
    println!(
        "bytes/transition    {:.1}",
        bytes as f64 / g.transitions as f64
    );
    if let Some((ns, name)) = history_example {
        println!("history (reused)    kubetrail query history {name} -n {ns}");
    }
    if let Some((ns, name)) = deployment_example {
        println!("history (single)    kubetrail query history {name}   # namespace {ns}");
    }
    println!("generated in        {:.1}s", began.elapsed().as_secs_f64());
    Ok(())
}

impl Generator {
    /// A copy of the scalar settings, for the calibration probe.
    fn shallow(&self) -> Generator {
        Generator {
            rng: Rng(0),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            nodes: Vec::new(),
            namespaces: self.namespaces.clone(),
            events: Vec::new(),
            resource_version: 0,
            transitions: 0,
            pods: 0,
        }
    }

    /// A Deployment pod (70%) or a Job pod (30%) created at `created_ms`.
    fn random_pod(&mut self, created_ms: i64) -> PodLife {
        let namespaces = if self.namespaces.is_empty() {
            vec!["team-00".to_string()]
        } else {
            self.namespaces.clone()
        };
        // A few namespaces are much busier than the rest.
        let ns_index =
            (self.rng.exp(namespaces.len() as f64 / 4.0) as usize).min(namespaces.len() - 1);
        let ns = namespaces[ns_index].clone();
        let app = format!("svc-{}", self.rng.below(20));
        if self.rng.chance(0.3) {
            let job = format!("{app}-job-{}", created_ms / HOUR);
            let name = format!("{job}-{}", self.rng.suffix(5));
            let labels = format!(r#"{{"app":"{app}","job-name":"{job}"}}"#);
            let lifetime = self.rng.range(MIN, HOUR);
            self.pod(&ns, name, ("Job", job), labels, created_ms, lifetime, true)
        } else {
            let hash = format!(
                "{:x}",
                (created_ms / (6 * HOUR)) as u64 * 2_654_435_761 % 0xff_ffff_ffff
            );
            let rs = format!("{app}-{hash}");
            let name = format!("{rs}-{}", self.rng.suffix(5));
            let labels = format!(r#"{{"app":"{app}","pod-template-hash":"{hash}"}}"#);
            let lifetime = (self.rng.exp(36.0 * HOUR as f64) as i64).min(10 * DAY);
            self.pod(
                &ns,
                name,
                ("ReplicaSet", rs),
                labels,
                created_ms,
                lifetime,
                false,
            )
        }
    }

    fn emit(&mut self, batch: &mut Batch, life: &mut PodLife) {
        self.pods += 1;
        self.transitions += life.transitions.len() as u64;
        batch.pod_resources.push(PodResourcesRow {
            pod_uid: life.row.uid.clone(),
            at_ms: life.row.created_at_ms,
            resources: life.row.resources,
        });
        batch.pods.push(life.row.clone());
        batch.transitions.append(&mut life.transitions);
    }
}

/// Turns bind/finish events into each node's step function plus keyframes and writes them.
fn write_usage(
    conn: &mut rusqlite::Connection,
    g: &Generator,
    mut events: Vec<UsageEvent>,
    keyframe_ms: i64,
    batch: &mut Batch,
) -> anyhow::Result<u64> {
    events.sort_unstable_by_key(|e| (e.node, e.at_ms));
    let mut rows = 0u64;
    let mut i = 0;
    for (index, node) in g.nodes.iter().enumerate() {
        let mut requested = Resources::default();
        let mut limits = Resources::default();
        let mut pods = 0i64;
        let mut next_keyframe = g.start_ms;
        let mut changes: Vec<i64> = node.change.iter().map(|(at, _)| *at).collect();
        let row =
            |at_ms: i64, requested: Resources, limits: Resources, pods: i64, keyframe: bool| {
                NodeUsageRow {
                    node_uid: node.uid.clone(),
                    at_ms,
                    requested,
                    limits,
                    pod_count: pods,
                    allocatable: node.allocatable_at(at_ms).cpu_memory(),
                    keyframe,
                }
            };
        loop {
            let event_at = events
                .get(i)
                .filter(|e| e.node as usize == index)
                .map(|e| e.at_ms);
            let change_at = changes.first().copied();
            let next = [
                event_at,
                change_at,
                (next_keyframe < g.end_ms).then_some(next_keyframe),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(at) = next else { break };
            // Apply every event at this millisecond, so one row holds the step's final value.
            let mut changed = false;
            while let Some(e) = events
                .get(i)
                .filter(|e| e.node as usize == index && e.at_ms == at)
            {
                let s = e.sign as i64;
                requested = Resources::new(
                    requested.cpu_millis + s * e.requests.cpu_millis,
                    requested.memory_bytes + s * e.requests.memory_bytes,
                );
                limits = Resources::new(
                    limits.cpu_millis + s * e.limits.cpu_millis,
                    limits.memory_bytes + s * e.limits.memory_bytes,
                );
                pods += s;
                changed = true;
                i += 1;
            }
            if change_at == Some(at) {
                changes.remove(0);
                changed = true;
            }
            let keyframe = next_keyframe == at;
            while next_keyframe <= at {
                next_keyframe += keyframe_ms;
            }
            batch
                .node_usage
                .push(row(at, requested, limits, pods, keyframe && !changed));
            rows += 1;
            if batch.node_usage.len() >= 500_000 {
                write_batch(conn, batch)?;
                *batch = Batch::default();
            }
        }
    }
    write_batch(conn, batch)?;
    *batch = Batch::default();
    Ok(rows)
}
