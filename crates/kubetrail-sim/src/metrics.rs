//! The resource metrics API (`metrics.k8s.io/v1beta1`, what metrics-server serves): NodeMetrics
//! and PodMetrics per container, so that `kubectl top` and kubetrail's usage sampler work
//! against the simulator.
//!
//! The scenario keeps a small [`UsagePlans`] entry per pod and node (what the usage depends on:
//! requests, limits, when each container started, when an OOMKill is due) beside the objects
//! it publishes; each request computes the usage from it at the end of the current scrape
//! window, so the same seed and virtual time always give the same figures:
//!
//! - CPU wanders around the container's request (half to just over it), with a spike to
//!   two and a half times it in about one window in sixteen, capped by the limit;
//! - memory sits at 60-80% of the request, and in a run that will end in an OOMKill it climbs
//!   linearly from there to the limit, reached at the kill;
//! - a container that is not running uses nothing (zero), and a pod without a running
//!   container, or on a node that is not Ready, has no metrics at all (metrics-server cannot
//!   scrape it);
//! - a node uses a fixed share of its allocatable for the system plus its pods' usage.
//!
//! `timestamp` is the end of the scrape window and `window` its length, so they move once per
//! window, as metrics-server's do once per scrape; the first request of a window takes the
//! scrape and the rest of the window serves the same one, so a served sample never changes. Values use metrics-server's units:
//! nanocores (`123456789n`) and kibibytes (`1024Ki`). This is the simulator's own truth: the
//! recorder never calls it, it only parses what this serves.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use super::clock::format_secs;
use super::cluster::{ContainerState, NodeReadiness, NodeSim, Phase, PodSim};
use super::selector::LabelSelector;
use kubetrail::model::Resources;

/// The default scrape window (metrics-server's default `--metric-resolution` is 15 s).
pub const DEFAULT_WINDOW_MS: i64 = 15_000;

/// What one container's usage depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPlan {
    pub name: String,
    pub requests: Resources,
    pub limits: Resources,
    /// The current run's start; None while it is not running.
    pub running_since_ms: Option<i64>,
    /// When the current run is due to be OOMKilled, if it is.
    pub oom_at_ms: Option<i64>,
}

/// What one pod's metrics depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlan {
    pub uid: String,
    pub node: Option<String>,
    pub running: bool,
    pub labels: Vec<(String, String)>,
    pub containers: Vec<ContainerPlan>,
}

impl PodPlan {
    pub fn of(pod: &PodSim) -> PodPlan {
        PodPlan {
            uid: pod.uid.clone(),
            node: pod.node_name.clone(),
            running: pod.phase == Phase::Running,
            labels: pod.labels.clone(),
            containers: pod
                .containers
                .iter()
                .zip(&pod.statuses)
                .map(|(spec, status)| ContainerPlan {
                    name: spec.name.clone(),
                    requests: spec.requests,
                    limits: spec.limits,
                    running_since_ms: match status.state {
                        ContainerState::Running { started_ms } => Some(started_ms),
                        _ => None,
                    },
                    oom_at_ms: status.oom_at_ms,
                })
                .collect(),
        }
    }
}

/// What one node's metrics depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    pub uid: String,
    pub ready: bool,
    pub allocatable: Resources,
    pub labels: Vec<(String, String)>,
}

impl NodePlan {
    pub fn of(node: &NodeSim, labels: Vec<(String, String)>) -> NodePlan {
        NodePlan {
            uid: node.uid.clone(),
            ready: node.readiness == NodeReadiness::Ready,
            allocatable: Resources::new(node.allocatable.cpu_millis, node.allocatable.memory_bytes),
            labels,
        }
    }
}

#[derive(Default)]
struct Plans {
    pods: HashMap<(String, String), PodPlan>,
    nodes: BTreeMap<String, NodePlan>,
}

/// One scrape: every scrapable pod's and node's metrics at one window's end, with the labels
/// lists filter on. Taken at the first request of a window and served for the rest of it, as
/// metrics-server serves its last scrape: a sample never changes once served.
struct Scrape {
    at_ms: i64,
    pods: BTreeMap<(String, String), Labelled>,
    nodes: BTreeMap<String, Labelled>,
}

/// A served item and the labels a list's selector matches against.
type Labelled = (Vec<(String, String)>, Value);

/// The plans of every pod and node, shared by the scenario (which writes them) and the API.
pub struct UsagePlans {
    plans: Mutex<Plans>,
    window_ms: AtomicI64,
    scrape: Mutex<Option<Arc<Scrape>>>,
}

impl Default for UsagePlans {
    fn default() -> Self {
        UsagePlans {
            plans: Mutex::new(Plans::default()),
            window_ms: AtomicI64::new(DEFAULT_WINDOW_MS),
            scrape: Mutex::new(None),
        }
    }
}

/// One container's usage: CPU in nanocores, memory working set in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Usage {
    pub cpu_nanos: i64,
    pub memory_bytes: i64,
}

impl UsagePlans {
    fn lock(&self) -> MutexGuard<'_, Plans> {
        self.plans.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_window_ms(&self, ms: i64) {
        self.window_ms.store(ms.max(1), Ordering::Relaxed);
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms.load(Ordering::Relaxed)
    }

    pub fn set_pod(&self, namespace: &str, name: &str, plan: PodPlan) {
        self.lock()
            .pods
            .insert((namespace.to_string(), name.to_string()), plan);
    }

    pub fn remove_pod(&self, namespace: &str, name: &str) {
        self.lock()
            .pods
            .remove(&(namespace.to_string(), name.to_string()));
    }

    pub fn set_node(&self, name: &str, plan: NodePlan) {
        self.lock().nodes.insert(name.to_string(), plan);
    }

    pub fn remove_node(&self, name: &str) {
        self.lock().nodes.remove(name);
    }

    /// The end of the scrape window that holds `now_ms`: the sample time served now.
    pub fn sample_at_ms(&self, now_ms: i64) -> i64 {
        let w = self.window_ms();
        now_ms.div_euclid(w) * w
    }

    /// The scrape of the window that holds `now_ms`, taken now if it is the window's first.
    fn scrape(&self, now_ms: i64) -> Arc<Scrape> {
        let at = self.sample_at_ms(now_ms);
        let mut cached = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cached.as_ref().filter(|s| s.at_ms == at) {
            return s.clone();
        }
        let plans = self.lock();
        // One pass over the pods: their items, and each node's sum of its pods' usage.
        let mut on_node: HashMap<&str, Usage> = HashMap::new();
        let mut pods = BTreeMap::new();
        for (key, plan) in &plans.pods {
            let Some(item) = self.pod_item(&key.0, &key.1, plan, &plans.nodes, at) else {
                continue;
            };
            let sum = on_node
                .entry(plan.node.as_deref().unwrap_or(""))
                .or_default();
            for c in &plan.containers {
                let u = container_usage(&plan.uid, c, at);
                sum.cpu_nanos += u.cpu_nanos;
                sum.memory_bytes += u.memory_bytes;
            }
            pods.insert(key.clone(), (plan.labels.clone(), item));
        }
        let nodes = plans
            .nodes
            .iter()
            .filter_map(|(name, node)| {
                let used = on_node.get(name.as_str()).copied().unwrap_or_default();
                let item = self.node_item(name, node, used, at)?;
                Some((name.clone(), (node.labels.clone(), item)))
            })
            .collect();
        let scrape = Arc::new(Scrape {
            at_ms: at,
            pods,
            nodes,
        });
        *cached = Some(scrape.clone());
        scrape
    }

    /// `PodMetricsList`: the pods of `namespace` (all when None) that match `labels`.
    pub fn pod_list(&self, namespace: Option<&str>, labels: &LabelSelector, now_ms: i64) -> Value {
        let scrape = self.scrape(now_ms);
        let items = scrape
            .pods
            .iter()
            .filter(|((ns, _), (l, _))| {
                namespace.is_none_or(|want| want == ns) && labels.matches_pairs(l)
            })
            .map(|(_, (_, item))| item.clone())
            .collect();
        list("PodMetricsList", items)
    }

    /// One `PodMetrics`, or None when it has none (not found, or not scrapable).
    pub fn pod(&self, namespace: &str, name: &str, now_ms: i64) -> Option<Value> {
        let scrape = self.scrape(now_ms);
        let key = (namespace.to_string(), name.to_string());
        scrape.pods.get(&key).map(|(_, item)| item.clone())
    }

    /// `NodeMetricsList`: the Ready nodes that match `labels`.
    pub fn node_list(&self, labels: &LabelSelector, now_ms: i64) -> Value {
        let scrape = self.scrape(now_ms);
        let items = scrape
            .nodes
            .values()
            .filter(|(l, _)| labels.matches_pairs(l))
            .map(|(_, item)| item.clone())
            .collect();
        list("NodeMetricsList", items)
    }

    pub fn node(&self, name: &str, now_ms: i64) -> Option<Value> {
        let scrape = self.scrape(now_ms);
        scrape.nodes.get(name).map(|(_, item)| item.clone())
    }

    fn pod_item(
        &self,
        namespace: &str,
        name: &str,
        plan: &PodPlan,
        nodes: &BTreeMap<String, NodePlan>,
        at_ms: i64,
    ) -> Option<Value> {
        if !scrapable(plan, nodes, at_ms) {
            return None;
        }
        let containers: Vec<Value> = plan
            .containers
            .iter()
            .map(|c| {
                let u = container_usage(&plan.uid, c, at_ms);
                json!({ "name": c.name, "usage": usage_json(u) })
            })
            .collect();
        Some(json!({
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": format_secs(at_ms),
                "labels": labels_json(&plan.labels),
            },
            "timestamp": format_secs(at_ms),
            "window": go_seconds(self.window_ms()),
            "containers": containers,
        }))
    }

    fn node_item(&self, name: &str, node: &NodePlan, pods: Usage, at_ms: i64) -> Option<Value> {
        if !node.ready {
            return None;
        }
        let system = system_usage(node);
        let total = Usage {
            cpu_nanos: system.cpu_nanos + pods.cpu_nanos,
            memory_bytes: system.memory_bytes + pods.memory_bytes,
        };
        Some(json!({
            "metadata": {
                "name": name,
                "creationTimestamp": format_secs(at_ms),
                "labels": labels_json(&node.labels),
            },
            "timestamp": format_secs(at_ms),
            "window": go_seconds(self.window_ms()),
            "usage": usage_json(total),
        }))
    }
}

/// Whether metrics-server would have a sample of this pod: it runs, on a Ready node, with at
/// least one container running at the sample time.
fn scrapable(plan: &PodPlan, nodes: &BTreeMap<String, NodePlan>, at_ms: i64) -> bool {
    plan.running
        && plan
            .node
            .as_ref()
            .and_then(|n| nodes.get(n))
            .is_some_and(|n| n.ready)
        && plan
            .containers
            .iter()
            .any(|c| c.running_since_ms.is_some_and(|s| s <= at_ms))
}

/// The system's share of a node: 5% of its CPU and 10% of its memory, whole kibibytes.
fn system_usage(node: &NodePlan) -> Usage {
    Usage {
        cpu_nanos: node.allocatable.cpu_millis * 50_000,
        memory_bytes: node.allocatable.memory_bytes / 10 / 1024 * 1024,
    }
}

/// A deterministic 64-bit hash (FNV-1a, then a finaliser) of a container's identity and a
/// window: the simulator's only source of variation in usage.
fn hash(pod_uid: &str, container: &str, window: i64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in pod_uid
        .bytes()
        .chain([0])
        .chain(container.bytes())
        .chain(window.to_le_bytes())
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^ (h >> 33)
}

/// A container's usage at `at_ms`, the end of a scrape window.
pub fn container_usage(pod_uid: &str, c: &ContainerPlan, at_ms: i64) -> Usage {
    let Some(started) = c.running_since_ms.filter(|s| *s <= at_ms) else {
        return Usage::default();
    };
    let h = hash(pod_uid, &c.name, at_ms);
    let base_cpu = if c.requests.cpu_millis > 0 {
        c.requests.cpu_millis
    } else {
        50
    };
    // 0.50 .. 1.10 of the request, or 2.5 of it in a spike.
    let per_mille = if h.is_multiple_of(16) {
        2_500
    } else {
        500 + (h >> 8) as i64 % 601
    };
    let mut cpu_nanos = base_cpu * per_mille * 1_000 + (h >> 20) as i64 % 1_000_000;
    if c.limits.cpu_millis > 0 {
        cpu_nanos = cpu_nanos.min(c.limits.cpu_millis * 1_000_000);
    }
    let base_memory = if c.requests.memory_bytes > 0 {
        c.requests.memory_bytes
    } else {
        64 << 20
    };
    let ceiling = if c.limits.memory_bytes > 0 {
        c.limits.memory_bytes
    } else {
        2 * base_memory
    };
    // 60% .. 80% of the request, steadier than CPU (memory is not given back at once).
    let level = base_memory / 1000 * (600 + (h >> 40) as i64 % 201);
    let mut memory = level.min(ceiling);
    if let Some(oom) = c.oom_at_ms.filter(|oom| *oom > started) {
        let done = (at_ms - started).clamp(0, oom - started) as i128;
        memory += ((ceiling - memory) as i128 * done / (oom - started) as i128) as i64;
    }
    Usage {
        cpu_nanos,
        memory_bytes: memory / 1024 * 1024,
    }
}

/// A Go `time.Duration` of whole or fractional seconds as metrics-server writes the window.
fn go_seconds(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", ms as f64 / 1000.0)
    }
}

fn usage_json(u: Usage) -> Value {
    json!({
        "cpu": format!("{}n", u.cpu_nanos),
        "memory": format!("{}Ki", u.memory_bytes / 1024),
    })
}

fn labels_json(labels: &[(String, String)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(oom_at_ms: Option<i64>) -> ContainerPlan {
        ContainerPlan {
            name: "app".into(),
            requests: Resources::new(200, 256 << 20),
            limits: Resources::new(500, 512 << 20),
            running_since_ms: Some(10_000),
            oom_at_ms,
        }
    }

    #[test]
    fn usage_stays_near_the_request_spikes_within_the_limit_and_is_zero_before_the_run() {
        let c = plan(None);
        assert_eq!(container_usage("u", &c, 5_000), Usage::default());
        let samples: Vec<Usage> = (1..400)
            .map(|w| container_usage("u", &c, 10_000 + w * 15_000))
            .collect();
        assert!(samples.iter().all(|u| u.cpu_nanos <= 500_000_000));
        assert!(samples.iter().all(|u| u.cpu_nanos >= 100_000_000));
        assert!(
            samples.iter().any(|u| u.cpu_nanos == 500_000_000),
            "a spike hits the limit"
        );
        assert!(samples.iter().all(|u| u.memory_bytes <= 256 << 20));
        assert!(samples.iter().all(|u| u.memory_bytes % 1024 == 0));
        assert_eq!(
            container_usage("u", &c, 70_000),
            container_usage("u", &c, 70_000),
            "deterministic"
        );
    }

    #[test]
    fn memory_climbs_to_the_limit_before_an_oom_kill() {
        let c = plan(Some(100_000));
        let early = container_usage("u", &c, 20_000).memory_bytes;
        let late = container_usage("u", &c, 90_000).memory_bytes;
        let at_kill = container_usage("u", &c, 100_000).memory_bytes;
        assert!(early < late && late < at_kill, "{early} {late} {at_kill}");
        assert_eq!(at_kill, 512 << 20);
    }
}
