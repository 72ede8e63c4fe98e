//! Random but deterministic generation of what a cluster runs: namespaces, the workloads
//! (ReplicaSets, DaemonSets, Jobs) that own pods, their pod templates (containers, init
//! containers, sidecars, requests and limits, pod-level resources, overhead, env), names and
//! uids. Everything draws from one seeded ChaCha stream, so a seed fixes the whole cluster.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::cluster::{ContainerSpec, Role};
use kubetrail::model::Resources;

pub const MI: i64 = 1 << 20;
pub const GI: i64 = 1 << 30;

/// The scenario's random source. Only this type draws random numbers, so the draw order (and so
/// the whole run) is fixed by the seed.
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough for a simulation and branch-free.
        ((self.0.next_u64() as u128 * n.max(1) as u128) >> 64) as u64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below((hi - lo) as u64) as i64
        }
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn pick_copy<T: Copy>(&mut self, items: &[T]) -> T {
        *self.pick(items)
    }

    /// A random-looking, seed-determined RFC 4122 version 4 uid.
    pub fn uid(&mut self) -> String {
        let (a, b) = (self.0.next_u64(), self.0.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// A suffix from the alphabet Kubernetes uses for generated names (no vowels, no
    /// look-alike digits).
    pub fn name_suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len).map(|_| *self.pick(ALPHABET) as char).collect()
    }

    pub fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    }
}

/// The namespaces every simulated cluster has.
pub const NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "payments",
    "search",
    "batch",
    "monitoring",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    ReplicaSet,
    DaemonSet,
    Job,
}

/// Everything a new pod copies from its owner.
#[derive(Clone, Debug)]
pub struct PodTemplate {
    pub init_containers: Vec<ContainerSpec>,
    pub containers: Vec<ContainerSpec>,
    pub pod_resources: Option<(Resources, Resources)>,
    pub overhead: Option<Resources>,
    pub runtime_class: Option<&'static str>,
    pub grace_secs: i64,
    pub restart_policy: &'static str,
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    /// Owner name for ReplicaSets and DaemonSets; the name prefix of each Job.
    pub name: String,
    pub app: String,
    pub uid: String,
    pub template_hash: String,
    pub template: PodTemplate,
}

impl Workload {
    pub fn role(&self) -> Role {
        if self.kind == WorkloadKind::Job {
            Role::Batch
        } else {
            Role::Service
        }
    }
}

const APPS: &[&str] = &[
    "checkout",
    "cart",
    "frontend",
    "api-gateway",
    "search-indexer",
    "recommender",
    "billing",
    "auth",
    "inventory",
    "notifier",
    "ledger",
    "catalog",
    "session-store",
    "image-resizer",
];
const JOBS: &[&str] = &[
    "nightly-etl",
    "report",
    "db-backup",
    "reindex",
    "invoice-run",
    "cache-warmer",
];
const DAEMONS: &[&str] = &["node-exporter", "fluent-bit", "kube-proxy", "csi-node"];
const IMAGES: &[&str] = &[
    "registry.example.com/shop/app:1.24.3",
    "nginx:1.27.3",
    "python:3.12-slim",
    "eclipse-temurin:21-jre",
    "golang-service:2.8.0",
];

fn resources(rng: &mut SimRng, heavy: bool) -> (Resources, Resources) {
    let cpu = *rng.pick(if heavy {
        &[250, 500, 1000][..]
    } else {
        &[10, 50, 100, 100, 200, 250][..]
    });
    let mem = *rng.pick(if heavy {
        &[512, 1024, 2048][..]
    } else {
        &[32, 64, 128, 128, 256][..]
    }) * MI;
    let requests = Resources::new(cpu, mem);
    // Guaranteed, Burstable with limits, or Burstable with a memory limit only.
    let limits = match rng.below(3) {
        0 => requests,
        1 => Resources::new(cpu * 2, mem * 2),
        _ => Resources::new(0, mem * 2),
    };
    (requests, limits)
}

fn env(rng: &mut SimRng, app: &str) -> Vec<(String, String)> {
    vec![
        ("APP_NAME".into(), app.into()),
        (
            "LOG_LEVEL".into(),
            rng.pick(&["info", "debug", "warn"]).to_string(),
        ),
        // Secret-looking values: the recorder must never store env values.
        (
            "DATABASE_PASSWORD".into(),
            format!("s3cr3t-{}", rng.hex(16)),
        ),
        ("API_TOKEN".into(), format!("tok_{}", rng.hex(24))),
    ]
}

fn template(rng: &mut SimRng, kind: WorkloadKind, app: &str) -> PodTemplate {
    let heavy = rng.chance(0.15);
    let mut containers = Vec::new();
    let (requests, limits) = resources(rng, heavy);
    containers.push(ContainerSpec {
        name: app.split('-').next().unwrap_or(app).to_string(),
        image: rng.pick_copy(IMAGES),
        requests,
        limits,
        env: env(rng, app),
        port: (kind != WorkloadKind::Job).then_some(8080),
        sidecar: false,
    });
    if rng.chance(0.25) {
        let (requests, limits) = resources(rng, false);
        containers.push(ContainerSpec {
            name: "metrics".into(),
            image: "prom/statsd-exporter:v0.27.1",
            requests,
            limits,
            env: vec![("STATSD_PORT".into(), "9125".into())],
            port: Some(9102),
            sidecar: false,
        });
    }
    let mut init_containers = Vec::new();
    if rng.chance(0.3) {
        let heavy_init = rng.chance(0.3);
        let (requests, limits) = resources(rng, heavy_init);
        init_containers.push(ContainerSpec {
            name: "init-config".into(),
            image: "busybox:1.36",
            requests,
            limits,
            env: vec![("CONFIG_URL".into(), "http://config.internal/".into())],
            port: None,
            sidecar: false,
        });
    }
    if rng.chance(0.2) {
        let (requests, limits) = resources(rng, false);
        init_containers.push(ContainerSpec {
            name: rng.pick(&["istio-proxy", "log-shipper"]).to_string(),
            image: "envoyproxy/envoy:v1.31.2",
            requests,
            limits,
            env: vec![("PROXY_TOKEN".into(), format!("sidecar-{}", rng.hex(12)))],
            port: Some(15090),
            sidecar: true,
        });
    }
    let pod_resources = rng.chance(0.05).then(|| {
        let cpu = rng.range(2, 8) * 100;
        (Resources::new(cpu, 512 * MI), Resources::new(cpu * 2, GI))
    });
    let (overhead, runtime_class) = if rng.chance(0.05) {
        (Some(Resources::new(250, 160 * MI)), Some("kata"))
    } else {
        (None, None)
    };
    PodTemplate {
        init_containers,
        containers,
        pod_resources,
        overhead,
        runtime_class,
        grace_secs: *rng.pick(&[1, 2, 2, 3, 3, 5, 10, 30]),
        restart_policy: match kind {
            WorkloadKind::Job => rng.pick_copy(&["Never", "OnFailure"]),
            _ => "Always",
        },
    }
}

/// Generates the workloads pods will belong to; about one per 20 pods, at least a few of each
/// kind.
pub fn workloads(rng: &mut SimRng, pods: usize) -> Vec<Workload> {
    let count = (pods / 20).clamp(8, 2000);
    (0..count)
        .map(|i| {
            let kind = match i % 10 {
                0..=5 => WorkloadKind::ReplicaSet,
                6 => WorkloadKind::DaemonSet,
                _ => WorkloadKind::Job,
            };
            let namespace = match kind {
                WorkloadKind::DaemonSet => {
                    if i % 20 == 6 {
                        "kube-system"
                    } else {
                        "monitoring"
                    }
                }
                WorkloadKind::Job => {
                    if i % 2 == 0 {
                        "batch"
                    } else {
                        *rng.pick(NAMESPACES)
                    }
                }
                WorkloadKind::ReplicaSet => *rng.pick(&NAMESPACES[..4]),
            };
            let base = match kind {
                WorkloadKind::ReplicaSet => rng.pick(APPS),
                WorkloadKind::DaemonSet => rng.pick(DAEMONS),
                WorkloadKind::Job => rng.pick(JOBS),
            };
            let app = if i < 20 {
                base.to_string()
            } else {
                format!("{base}-{}", i / 20)
            };
            let template_hash = format!("{}{}", rng.below(10), rng.name_suffix(9));
            let name = match kind {
                WorkloadKind::ReplicaSet => format!("{app}-{template_hash}"),
                _ => app.clone(),
            };
            Workload {
                kind,
                namespace: namespace.to_string(),
                name,
                app: app.clone(),
                uid: rng.uid(),
                template_hash,
                template: template(rng, kind, &app),
            }
        })
        .collect()
}
