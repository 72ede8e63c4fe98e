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
//! Like Kubernetes, the sums are exact (quantities are kept in nano units, see [`Exact`]) and
//! rounded up to millicores and bytes only at the end, so two containers of "0.5m" request 1m.
//! A value of 0 means "not set" (the API server's validation makes an explicit 0 equivalent).
//!
//! [`effective`] reads the spec only, as `PodRequests` does with plain options. While a pod is
//! resized in place, [`effective_for_scheduler`] applies the kube-scheduler's options
//! (`UseStatusResources`): for each app and sidecar container with status resources, a request
//! counts as the maximum of desired (spec), allocated and actuated, and a limit as the maximum of
//! desired and actuated; when the resize is Infeasible the desired values are ignored. The
//! differential test tests/reference_resources.rs checks both against component-helpers.

use super::quantity::{NANOS_PER_UNIT, nanos_to_millis, nanos_to_units};

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
}

/// Sums of pods on a node, and what a resize adds: the one place `Resources` are added.
impl std::ops::Add for Resources {
    type Output = Resources;

    fn add(self, other: Resources) -> Resources {
        Resources::new(
            self.cpu_millis + other.cpu_millis,
            self.memory_bytes + other.memory_bytes,
        )
    }
}

impl std::ops::Sub for Resources {
    type Output = Resources;

    fn sub(self, other: Resources) -> Resources {
        Resources::new(
            self.cpu_millis - other.cpu_millis,
            self.memory_bytes - other.memory_bytes,
        )
    }
}

impl std::ops::AddAssign for Resources {
    fn add_assign(&mut self, other: Resources) {
        *self = *self + other;
    }
}

impl std::ops::SubAssign for Resources {
    fn sub_assign(&mut self, other: Resources) {
        *self = *self - other;
    }
}

/// Exact CPU and memory in nano units (10^-9 core, 10^-9 byte), which is the precision
/// Kubernetes keeps; sums of these are what `PodRequests` rounds up once at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exact {
    pub cpu_nanos: i128,
    pub memory_nanos: i128,
}

impl Exact {
    fn add(self, other: Exact) -> Exact {
        Exact {
            cpu_nanos: self.cpu_nanos + other.cpu_nanos,
            memory_nanos: self.memory_nanos + other.memory_nanos,
        }
    }

    fn max(self, other: Exact) -> Exact {
        Exact {
            cpu_nanos: self.cpu_nanos.max(other.cpu_nanos),
            memory_nanos: self.memory_nanos.max(other.memory_nanos),
        }
    }

    /// Where `over` sets a value (non-zero), it wins.
    fn overridden_by(self, over: Exact) -> Exact {
        let pick = |own: i128, over: i128| if over != 0 { over } else { own };
        Exact {
            cpu_nanos: pick(self.cpu_nanos, over.cpu_nanos),
            memory_nanos: pick(self.memory_nanos, over.memory_nanos),
        }
    }

    /// Adds `extra` only to the values that are set (PodLimits' overhead rule).
    fn add_where_set(self, extra: Exact) -> Exact {
        let add = |own: i128, extra: i128| if own != 0 { own + extra } else { 0 };
        Exact {
            cpu_nanos: add(self.cpu_nanos, extra.cpu_nanos),
            memory_nanos: add(self.memory_nanos, extra.memory_nanos),
        }
    }

    /// Rounded up to millicores and bytes, like `MilliValue()` and `Value()`.
    pub fn round_up(self) -> Resources {
        Resources {
            cpu_millis: nanos_to_millis(self.cpu_nanos),
            memory_bytes: nanos_to_units(self.memory_nanos),
        }
    }
}

impl From<Resources> for Exact {
    fn from(r: Resources) -> Exact {
        Exact {
            cpu_nanos: i128::from(r.cpu_millis) * 1_000_000,
            memory_nanos: i128::from(r.memory_bytes) * NANOS_PER_UNIT,
        }
    }
}

/// A container's resources as its status reports them during an in-place resize:
/// `status.containerStatuses[].resources` (actuated) and `allocatedResources`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusResources {
    pub actuated_requests: Exact,
    pub actuated_limits: Exact,
    pub allocated_requests: Exact,
}

/// One container's declared resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerResources {
    pub requests: Exact,
    pub limits: Exact,
    /// An init container with `restartPolicy: Always`, i.e. a sidecar.
    pub restartable: bool,
    /// Present when the container's status carries `resources` (the kubelet reports them).
    pub status: Option<StatusResources>,
}

/// The parts of a pod spec that decide its effective resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodResourceSpec {
    pub containers: Vec<ContainerResources>,
    pub init_containers: Vec<ContainerResources>,
    /// Pod-level `spec.resources` (requests, limits), if present.
    pub pod_level: Option<(Exact, Exact)>,
    /// `spec.overhead` from the RuntimeClass.
    pub overhead: Exact,
    /// The PodResizePending condition says Infeasible.
    pub resize_infeasible: bool,
}

/// The pod's effective requests and limits.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Effective {
    pub requests: Resources,
    pub limits: Resources,
}

/// Steps 1-3 for one of requests or limits; `pick(container, is_app)` gives a container's own
/// use.
fn aggregate(spec: &PodResourceSpec, pick: impl Fn(&ContainerResources, bool) -> Exact) -> Exact {
    let mut total = spec
        .containers
        .iter()
        .map(|c| pick(c, true))
        .fold(Exact::default(), Exact::add);
    let mut sidecars = Exact::default();
    let mut largest_init = Exact::default();
    for init in &spec.init_containers {
        let own = pick(init, false);
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

/// Steps 4-5, then rounding.
fn finish(spec: &PodResourceSpec, mut requests: Exact, mut limits: Exact) -> Effective {
    if let Some((pod_requests, pod_limits)) = spec.pod_level {
        requests = requests.overridden_by(pod_requests);
        limits = limits.overridden_by(pod_limits);
    }
    Effective {
        requests: requests.add(spec.overhead).round_up(),
        limits: limits.add_where_set(spec.overhead).round_up(),
    }
}

/// Applies Kubernetes' PodRequests and PodLimits rules to the spec (plain options).
pub fn effective(spec: &PodResourceSpec) -> Effective {
    let requests = aggregate(spec, |c, _| c.requests);
    let limits = aggregate(spec, |c, _| c.limits);
    finish(spec, requests, limits)
}

/// A container's request and limit as the scheduler counts them while it is resized in place.
/// Plain init containers never resize, so their spec is used.
pub fn resizing_container(c: &ContainerResources, app: bool, infeasible: bool) -> (Exact, Exact) {
    match c.status {
        Some(status) if app || c.restartable => {
            let settled = status.actuated_requests.max(status.allocated_requests);
            if infeasible {
                (settled, status.actuated_limits)
            } else {
                (
                    settled.max(c.requests),
                    status.actuated_limits.max(c.limits),
                )
            }
        }
        _ => (c.requests, c.limits),
    }
}

/// PodRequests and PodLimits with the kube-scheduler's options (`UseStatusResources`): what a
/// node's requested sum counts for a pod that is being resized in place. Equal to
/// [`effective`] for a pod without status resources.
pub fn effective_for_scheduler(spec: &PodResourceSpec) -> Effective {
    let infeasible = spec.resize_infeasible;
    let requests = aggregate(spec, |c, app| resizing_container(c, app, infeasible).0);
    let limits = aggregate(spec, |c, app| resizing_container(c, app, infeasible).1);
    finish(spec, requests, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(cpu: i64, mem: i64) -> ContainerResources {
        ContainerResources {
            requests: Resources::new(cpu, mem).into(),
            limits: Resources::new(cpu * 2, mem * 2).into(),
            ..Default::default()
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
                    overhead: Resources::new(10, 1).into(),
                    ..Default::default()
                },
                Resources::new(110, 11),
            ),
            (
                "pod-level resources override cpu and memory, overhead still added",
                PodResourceSpec {
                    containers: vec![c(100, 10), c(100, 10)],
                    pod_level: Some((Resources::new(1000, 0).into(), Exact::default())),
                    overhead: Resources::new(10, 1).into(),
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
                requests: Resources::new(100, 10).into(),
                limits: Resources::new(200, 0).into(),
                ..Default::default()
            }],
            overhead: Resources::new(10, 1).into(),
            ..Default::default()
        };
        assert_eq!(effective(&no_memory_limit).limits, Resources::new(210, 0));
    }

    fn resizing(desired: i64, actuated: i64, allocated: i64) -> ContainerResources {
        ContainerResources {
            status: Some(StatusResources {
                actuated_requests: Resources::new(actuated, 0).into(),
                actuated_limits: Resources::new(actuated * 2, 0).into(),
                allocated_requests: Resources::new(allocated, 0).into(),
            }),
            ..c(desired, 0)
        }
    }

    /// Expected values worked out by hand from component-helpers' rule (module doc).
    #[test]
    fn the_scheduler_counts_a_resizing_container_at_its_largest() {
        let cases: Vec<(&str, PodResourceSpec, Effective)> = vec![
            (
                "upsize asked, not yet applied: the desired request counts",
                PodResourceSpec {
                    containers: vec![resizing(500, 250, 250)],
                    ..Default::default()
                },
                Effective {
                    requests: Resources::new(500, 0),
                    limits: Resources::new(1000, 0),
                },
            ),
            (
                "downsize asked, not yet applied: the actuated request still counts",
                PodResourceSpec {
                    containers: vec![resizing(100, 250, 100)],
                    ..Default::default()
                },
                Effective {
                    requests: Resources::new(250, 0),
                    limits: Resources::new(500, 0),
                },
            ),
            (
                "allocated but not actuated counts too",
                PodResourceSpec {
                    containers: vec![resizing(100, 100, 300)],
                    ..Default::default()
                },
                Effective {
                    requests: Resources::new(300, 0),
                    limits: Resources::new(200, 0),
                },
            ),
            (
                "infeasible: the desired values are ignored",
                PodResourceSpec {
                    containers: vec![resizing(5000, 250, 250)],
                    resize_infeasible: true,
                    ..Default::default()
                },
                Effective {
                    requests: Resources::new(250, 0),
                    limits: Resources::new(500, 0),
                },
            ),
            (
                "a plain init container's status is not consulted, a sidecar's is",
                PodResourceSpec {
                    containers: vec![c(100, 0)],
                    init_containers: vec![
                        resizing(50, 900, 900),
                        ContainerResources {
                            restartable: true,
                            ..resizing(10, 20, 30)
                        },
                    ],
                    ..Default::default()
                },
                Effective {
                    requests: Resources::new(130, 0),
                    limits: Resources::new(240, 0),
                },
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(effective_for_scheduler(&spec), want, "{name}");
            // Plain options ignore the status.
            let mut plain = spec.clone();
            for c in plain
                .containers
                .iter_mut()
                .chain(&mut plain.init_containers)
            {
                c.status = None;
            }
            assert_eq!(effective(&spec), effective(&plain), "{name}");
        }
    }

    #[test]
    fn two_half_millicore_requests_sum_to_one_millicore() {
        // Kubernetes sums exact quantities and rounds once: 0.5m + 0.5m is 1m, not 2m.
        let half = ContainerResources {
            requests: Exact {
                cpu_nanos: 500_000,
                memory_nanos: 500_000_000,
            },
            ..Default::default()
        };
        let spec = PodResourceSpec {
            containers: vec![half, half],
            ..Default::default()
        };
        assert_eq!(effective(&spec).requests, Resources::new(1, 1));
    }
}
