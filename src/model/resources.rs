//! A pod's effective requests and limits, by Kubernetes' own rule (`PodRequests` / `PodLimits`
//! in k8s.io/component-helpers/resource), which is what the scheduler and `kubectl describe node`
//! use. The naive "sum of all containers" over-counts init containers and misses sidecars.
//!
//! The rule, per resource (cpu, memory):
//! 1. Sum the app containers.
//! 2. Walk the init containers in order with a running sum R of restartable (sidecar) init
//!    containers. A sidecar adds to the app sum and to R, and its own use is R. A plain init
//!    container's use is its request + R (the sidecars started before it keep running).
//! 3. Take the max of the app sum and the largest init container use.
//! 4. Pod-level `spec.resources` overrides cpu and memory where it is set.
//! 5. Add `spec.overhead` (for limits: only where a limit exists).
//!
//! A value of 0 means "not set". In-place resize's status resources are not consulted; the spec
//! is what we record as the pod's request.

/// CPU and memory of one container or of the whole pod.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

impl Resources {
    pub fn new(cpu_millis: i64, memory_bytes: i64) -> Self {
        Resources {
            cpu_millis,
            memory_bytes,
        }
    }

    fn add(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis + other.cpu_millis,
            memory_bytes: self.memory_bytes + other.memory_bytes,
        }
    }

    fn max(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
        }
    }

    /// Where `over` sets a value (non-zero), it wins.
    fn overridden_by(self, over: Resources) -> Resources {
        Resources {
            cpu_millis: if over.cpu_millis != 0 {
                over.cpu_millis
            } else {
                self.cpu_millis
            },
            memory_bytes: if over.memory_bytes != 0 {
                over.memory_bytes
            } else {
                self.memory_bytes
            },
        }
    }

    /// Adds `extra` only to the values that are set (PodLimits' overhead rule).
    fn add_where_set(self, extra: Resources) -> Resources {
        Resources {
            cpu_millis: if self.cpu_millis != 0 {
                self.cpu_millis + extra.cpu_millis
            } else {
                0
            },
            memory_bytes: if self.memory_bytes != 0 {
                self.memory_bytes + extra.memory_bytes
            } else {
                0
            },
        }
    }
}

/// One container's declared resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerResources {
    pub requests: Resources,
    pub limits: Resources,
    /// An init container with `restartPolicy: Always`, i.e. a sidecar.
    pub restartable: bool,
}

/// The parts of a pod spec that decide its effective resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodResourceSpec {
    pub containers: Vec<ContainerResources>,
    pub init_containers: Vec<ContainerResources>,
    /// Pod-level `spec.resources` (requests, limits), if present.
    pub pod_level: Option<(Resources, Resources)>,
    /// `spec.overhead` from the RuntimeClass.
    pub overhead: Resources,
}

/// The pod's effective requests and limits.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Effective {
    pub requests: Resources,
    pub limits: Resources,
}

/// Steps 1-3 for one of requests or limits.
fn aggregate(spec: &PodResourceSpec, pick: fn(&ContainerResources) -> Resources) -> Resources {
    let mut total = spec
        .containers
        .iter()
        .map(pick)
        .fold(Resources::default(), Resources::add);
    let mut sidecars = Resources::default();
    let mut largest_init = Resources::default();
    for init in &spec.init_containers {
        let own = pick(init);
        let used = if init.restartable {
            total = total.add(own);
            sidecars = sidecars.add(own);
            sidecars
        } else {
            own.add(sidecars)
        };
        largest_init = largest_init.max(used);
    }
    total.max(largest_init)
}

/// Applies Kubernetes' PodRequests and PodLimits rules.
pub fn effective(spec: &PodResourceSpec) -> Effective {
    let mut requests = aggregate(spec, |c| c.requests);
    let mut limits = aggregate(spec, |c| c.limits);
    if let Some((pod_requests, pod_limits)) = spec.pod_level {
        requests = requests.overridden_by(pod_requests);
        limits = limits.overridden_by(pod_limits);
    }
    Effective {
        requests: requests.add(spec.overhead),
        limits: limits.add_where_set(spec.overhead),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(cpu: i64, mem: i64) -> ContainerResources {
        ContainerResources {
            requests: Resources::new(cpu, mem),
            limits: Resources::new(cpu * 2, mem * 2),
            restartable: false,
        }
    }

    fn sidecar(cpu: i64, mem: i64) -> ContainerResources {
        ContainerResources {
            restartable: true,
            ..c(cpu, mem)
        }
    }

    /// Table-driven cases; expected values worked out by hand from the rule in the module doc.
    #[test]
    fn effective_requests_follow_pod_requests() {
        let cases: Vec<(&str, PodResourceSpec, Resources)> = vec![
            (
                "app containers are summed",
                PodResourceSpec {
                    containers: vec![c(100, 10), c(200, 20)],
                    ..Default::default()
                },
                Resources::new(300, 30),
            ),
            (
                "a big plain init container dominates the app sum",
                PodResourceSpec {
                    containers: vec![c(100, 10)],
                    init_containers: vec![c(500, 5)],
                    ..Default::default()
                },
                Resources::new(500, 10),
            ),
            (
                "init containers take the max, not the sum",
                PodResourceSpec {
                    containers: vec![c(100, 100)],
                    init_containers: vec![c(300, 1), c(200, 400)],
                    ..Default::default()
                },
                Resources::new(300, 400),
            ),
            (
                "a sidecar adds to the app sum",
                PodResourceSpec {
                    containers: vec![c(100, 10)],
                    init_containers: vec![sidecar(50, 5)],
                    ..Default::default()
                },
                Resources::new(150, 15),
            ),
            (
                "a plain init container after a sidecar uses its own request plus the sidecar's",
                PodResourceSpec {
                    containers: vec![c(100, 10)],
                    init_containers: vec![sidecar(50, 5), c(400, 1)],
                    ..Default::default()
                },
                Resources::new(450, 15),
            ),
            (
                "a plain init container before a sidecar does not see it",
                PodResourceSpec {
                    containers: vec![c(100, 10)],
                    init_containers: vec![c(400, 1), sidecar(50, 5)],
                    ..Default::default()
                },
                Resources::new(400, 15),
            ),
            (
                "overhead is added last",
                PodResourceSpec {
                    containers: vec![c(100, 10)],
                    overhead: Resources::new(10, 1),
                    ..Default::default()
                },
                Resources::new(110, 11),
            ),
            (
                "pod-level resources override cpu and memory, overhead still added",
                PodResourceSpec {
                    containers: vec![c(100, 10), c(100, 10)],
                    pod_level: Some((Resources::new(1000, 0), Resources::default())),
                    overhead: Resources::new(10, 1),
                    ..Default::default()
                },
                Resources::new(1010, 21),
            ),
            (
                "an empty pod requests nothing",
                PodResourceSpec::default(),
                Resources::default(),
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(effective(&spec).requests, want, "{name}");
        }
    }

    #[test]
    fn limits_follow_pod_limits() {
        // c() sets limits to twice the requests.
        let spec = PodResourceSpec {
            containers: vec![c(100, 10)],
            init_containers: vec![sidecar(50, 5), c(400, 1)],
            ..Default::default()
        };
        assert_eq!(effective(&spec).limits, Resources::new(900, 30));

        // Overhead is added to limits only where a limit is set.
        let no_memory_limit = PodResourceSpec {
            containers: vec![ContainerResources {
                requests: Resources::new(100, 10),
                limits: Resources::new(200, 0),
                restartable: false,
            }],
            overhead: Resources::new(10, 1),
            ..Default::default()
        };
        assert_eq!(effective(&no_memory_limit).limits, Resources::new(210, 0));
    }
}
