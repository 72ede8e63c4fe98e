//! The transition detector: old state + new state -> transition rows. Pure functions, no I/O.
//!
//! The same functions serve live watch events and recovery after a gap (a relist, a reconnect,
//! a recorder restart): they compare what was last known with what is known now, and use the
//! timestamps Kubernetes keeps in status (conditions, startTime, container startedAt/finishedAt)
//! for `at`. Rows found while recovering carry `inferred = true`.
//!
//! Idempotency: every row has a `seq` chosen so that the same real-world event always gets the
//! same (subject, kind, seq), whichever way it is detected. Kinds that happen once use 0;
//! container kinds combine a hash of the container name with the run number; ready/unready and
//! the observed-time kinds use their `at`.

use super::state::{ContainerState, NodeState, PodState, ResourceQuad, Termination};
use crate::model::quantity::{format_cpu_millis, format_memory_bytes};
use crate::model::{Phase, Resources, TransitionKind};
use crate::store::{SubjectUid, TransitionRow};

/// When and how a state was observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The recorder's clock.
    pub at_ms: i64,
    /// True when recovering (initial list, relist, restart) rather than following live events.
    pub inferred: bool,
}

impl Observation {
    pub fn live(at_ms: i64) -> Self {
        Observation {
            at_ms,
            inferred: false,
        }
    }

    pub fn recovered(at_ms: i64) -> Self {
        Observation {
            at_ms,
            inferred: true,
        }
    }
}

const FLIP_UNKNOWN_TIME: &str =
    "flipped and flipped back while the recorder was not watching; time unknown";

/// A readiness condition whose lastTransitionTime moved although its status is the same.
fn flipped_back(old_changed_at: Option<i64>, new_changed_at: Option<i64>) -> bool {
    matches!((old_changed_at, new_changed_at), (Some(a), Some(b)) if b > a)
}

/// A stable 32-bit hash of a container name (FNV-1a), so a container's seq does not depend on
/// the order of container statuses.
fn name_hash(name: &str) -> i64 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i64::from(hash)
}

/// seq of a container event: which container, and which run of it (0 = the first run).
pub fn container_seq(name: &str, run: i64) -> i64 {
    (name_hash(name) << 24) | (run & 0xff_ffff)
}

struct PodRows<'a> {
    old: Option<&'a PodState>,
    new: &'a PodState,
    obs: Observation,
    rows: Vec<TransitionRow>,
}

impl PodRows<'_> {
    fn push(
        &mut self,
        kind: TransitionKind,
        at_ms: Option<i64>,
        fill: impl FnOnce(&mut TransitionRow),
    ) {
        let mut row = TransitionRow::new(
            SubjectUid::Pod(self.new.uid.to_string()),
            kind,
            at_ms.unwrap_or(self.obs.at_ms),
            self.obs.at_ms,
        );
        row.phase_before = self.old.map(|o| o.phase);
        row.phase_after = Some(self.new.phase);
        row.resource_version = self.new.resource_version;
        row.inferred = self.obs.inferred;
        fill(&mut row);
        self.rows.push(row);
    }

    fn container(&mut self, c: &ContainerState) {
        let old = self
            .old
            .and_then(|o| o.containers.iter().find(|oc| oc.name == c.name));
        let old_count = old.map_or(0, |o| o.restart_count);
        let old_terminated = old.and_then(|o| o.terminated.as_deref());
        // Runs old_count .. restart_count-1 ended since we last looked, and each was restarted.
        // Only the newest of them is still described in lastState; earlier ones (several
        // restarts inside one gap) are recorded with what is known.
        for run in old_count..c.restart_count {
            let term: Option<&Termination> = if run + 1 == c.restart_count {
                c.last_terminated.as_deref()
            } else if run == old_count {
                old_terminated
            } else {
                None
            };
            let at = term.and_then(|t| t.finished_at_ms);
            let already_seen = run == old_count && old_terminated.is_some();
            if !already_seen {
                self.push(TransitionKind::ContainerTerminated, at, |r| {
                    r.seq = container_seq(&c.name, run);
                    r.container = Some(c.name.to_string());
                    r.reason = term.and_then(|t| t.reason.as_deref().map(str::to_string));
                    r.exit_code = term.and_then(|t| t.exit_code);
                    r.restart_count = Some(run);
                    if term.is_none() {
                        r.inferred = true;
                        r.message =
                            Some("ended while the recorder was not watching; time unknown".into());
                    }
                });
            }
            self.push(TransitionKind::ContainerRestarted, at, |r| {
                r.seq = container_seq(&c.name, run + 1);
                r.container = Some(c.name.to_string());
                r.restart_count = Some(run + 1);
                r.reason = term.and_then(|t| t.reason.as_deref().map(str::to_string));
                r.exit_code = term.and_then(|t| t.exit_code);
                if term.is_none() {
                    r.inferred = true;
                }
            });
        }
        // The current run has ended.
        if let Some(term) = &c.terminated {
            let seen =
                old.is_some_and(|o| o.terminated.is_some() && o.restart_count == c.restart_count);
            if !seen {
                self.push(
                    TransitionKind::ContainerTerminated,
                    term.finished_at_ms,
                    |r| {
                        r.seq = container_seq(&c.name, c.restart_count);
                        r.container = Some(c.name.to_string());
                        r.reason = term.reason.as_deref().map(str::to_string);
                        r.exit_code = term.exit_code;
                        r.restart_count = Some(c.restart_count);
                    },
                );
            }
        }
    }
}

/// Describes a resource change for the `resized` row's message: "cpu request 250m -> 500m".
fn describe_resize(old: &crate::model::Effective, new: &crate::model::Effective) -> String {
    let mut parts = Vec::new();
    let mut diff = |what: &str, a: Resources, b: Resources| {
        if a.cpu_millis != b.cpu_millis {
            parts.push(format!(
                "cpu {what} {} -> {}",
                format_cpu_millis(a.cpu_millis),
                format_cpu_millis(b.cpu_millis)
            ));
        }
        if a.memory_bytes != b.memory_bytes {
            parts.push(format!(
                "memory {what} {} -> {}",
                format_memory_bytes(a.memory_bytes),
                format_memory_bytes(b.memory_bytes)
            ));
        }
    };
    diff("request", old.requests, new.requests);
    diff("limit", old.limits, new.limits);
    parts.join(", ")
}

fn quad_effective(q: ResourceQuad) -> crate::model::Effective {
    crate::model::Effective {
        requests: Resources::new(q[0], q[1]),
        limits: Resources::new(q[2], q[3]),
    }
}

impl PodRows<'_> {
    /// In-place resize. Per container (even where an init container's larger request hides the
    /// change from the pod's effective requests): `resize_requested` when its spec resources
    /// change, with the PodResizePending reason (Deferred, Infeasible) once the kubelet gives
    /// one, and `resized` when the resources the kubelet reports as applied change. A pod whose
    /// kubelet reports no applied resources keeps the pod-level rule: `resized` when its
    /// effective requests or limits change.
    fn resizes(&mut self, old: &PodState) {
        let (new, at_ms) = (self.new, self.obs.at_ms);
        // Observed-time rows: seq is the observation, with room for one row per container.
        let seq = |index: usize| (at_ms << 16) | (index as i64 & 0xffff);
        let reported = new
            .resize
            .as_ref()
            .is_some_and(|r| r.containers.iter().any(|c| c.reported));
        if let (Some(was), Some(now)) = (old.resize.as_deref(), new.resize.as_deref()) {
            let pending = now.pending_reason.as_deref().map(str::to_string);
            let mut requested = false;
            for (index, c) in now.containers.iter().enumerate() {
                let Some(before) = was.containers.iter().find(|b| b.name == c.name) else {
                    continue;
                };
                let describe = |a: ResourceQuad, b: ResourceQuad| {
                    let change = describe_resize(&quad_effective(a), &quad_effective(b));
                    Some(format!("container {}: {change}", c.name))
                };
                if before.desired != c.desired {
                    requested = true;
                    self.push(TransitionKind::ResizeRequested, None, |r| {
                        r.seq = seq(index + 1);
                        r.container = Some(c.name.to_string());
                        r.reason = pending.clone();
                        r.message = describe(before.desired, c.desired);
                    });
                }
                if let (Some(a), Some(b)) = (before.actuated(), c.actuated())
                    && a != b
                {
                    self.push(TransitionKind::Resized, None, |r| {
                        r.seq = seq(index + 1);
                        r.container = Some(c.name.to_string());
                        r.message = describe(a, b);
                    });
                }
            }
            // The kubelet's answer to a request seen earlier: Deferred or Infeasible.
            if !requested && pending.is_some() && now.pending_reason != was.pending_reason {
                self.push(TransitionKind::ResizeRequested, None, |r| {
                    r.seq = seq(0);
                    r.reason = pending.clone();
                    r.message = now.pending_message.as_deref().map(str::to_string);
                });
            }
        }
        if !reported && old.resources != new.resources {
            self.push(TransitionKind::Resized, None, |r| {
                r.seq = at_ms;
                r.message = Some(describe_resize(&old.resources, &new.resources));
            });
        }
    }
}

/// The transitions between two states of one pod (`old` is None for a pod seen for the first
/// time), ordered by `at`.
pub fn pod_transitions(
    old: Option<&PodState>,
    new: &PodState,
    obs: Observation,
) -> Vec<TransitionRow> {
    let mut out = PodRows {
        old,
        new,
        obs,
        rows: Vec::new(),
    };
    let created = (new.created_at_ms != 0).then_some(new.created_at_ms);
    if old.is_none() {
        out.push(TransitionKind::Created, created, |_| {});
    }
    if new.node.is_some() && old.is_none_or(|o| o.node.is_none()) {
        // The node is the pod's (pods.node): repeating it here would cost every row 30 bytes.
        out.push(TransitionKind::Scheduled, new.scheduled_at_ms, |_| {});
    }
    if new.has_started() && !old.is_some_and(|o| o.has_started()) {
        out.push(TransitionKind::Started, new.started_at_ms(), |_| {});
    }
    let was_ready = old.is_some_and(|o| o.ready);
    if new.ready != was_ready {
        let kind = if new.ready {
            TransitionKind::Ready
        } else {
            TransitionKind::Unready
        };
        let at = new.ready_changed_at_ms.unwrap_or(obs.at_ms);
        out.push(kind, Some(at), |r| r.seq = at);
    } else if let Some(old) = old
        && flipped_back(old.ready_changed_at_ms, new.ready_changed_at_ms)
    {
        // Same readiness, but the condition changed since: it flipped and flipped back while we
        // were not looking. The second flip's time is known; the first is only bounded by it.
        let at = new.ready_changed_at_ms.unwrap_or(obs.at_ms);
        let (first, second) = if new.ready {
            (TransitionKind::Unready, TransitionKind::Ready)
        } else {
            (TransitionKind::Ready, TransitionKind::Unready)
        };
        out.push(first, Some(at), |r| {
            r.seq = at;
            r.inferred = true;
            r.message = Some(FLIP_UNKNOWN_TIME.into());
        });
        out.push(second, Some(at), |r| r.seq = at);
    }
    for c in &new.containers {
        out.container(c);
    }
    if new.phase.is_terminal() && old.is_none_or(|o| o.phase != new.phase) {
        let kind = if new.phase == Phase::Succeeded {
            TransitionKind::Succeeded
        } else {
            TransitionKind::Failed
        };
        out.push(kind, new.last_finished_at_ms(), |r| {
            r.reason = new.reason.as_deref().map(str::to_string);
            r.message = new.message.as_deref().map(str::to_string);
        });
    }
    if let Some(deletion_at) = new.deletion_at_ms
        && old.is_none_or(|o| o.deletion_at_ms.is_none())
    {
        let requested_at = deletion_at - new.deletion_grace_secs.unwrap_or(0) * 1000;
        out.push(TransitionKind::Terminating, Some(requested_at), |r| {
            r.message = new
                .deletion_grace_secs
                .map(|g| format!("grace period {g}s"));
        });
    }
    if let Some(old) = old {
        out.resizes(old);
    }
    let mut rows = out.rows;
    rows.sort_by_key(|r| r.at_ms);
    rows
}

/// The `deleted` row of a pod. `at_ms` is the observation time, except for a deletion found
/// while recovering (a relist, or a watch catching up after an outage), where a terminating
/// pod's deletionTimestamp (when its grace period ended) is the better estimate. Live, our clock
/// is better: a pod stuck terminating is removed long after its deletionTimestamp.
pub fn pod_deleted(last: &PodState, obs: Observation) -> TransitionRow {
    let at_ms = match last.deletion_at_ms {
        Some(deadline) if obs.inferred => deadline.min(obs.at_ms),
        _ => obs.at_ms,
    };
    let mut row = TransitionRow::new(
        SubjectUid::Pod(last.uid.to_string()),
        TransitionKind::Deleted,
        at_ms,
        obs.at_ms,
    );
    row.phase_before = Some(last.phase);
    row.phase_after = Some(last.phase);
    row.resource_version = last.resource_version;
    row.inferred = obs.inferred;
    if obs.inferred {
        row.message = Some(
            "gone from the API server's list; deleted while the recorder was not watching".into(),
        );
    }
    row
}

/// The transitions between two states of one node, ordered by `at`.
pub fn node_transitions(
    old: Option<&NodeState>,
    new: &NodeState,
    obs: Observation,
) -> Vec<TransitionRow> {
    let mut rows = Vec::new();
    let mut push = |kind: TransitionKind,
                    at_ms: Option<i64>,
                    seq: i64,
                    message: Option<String>,
                    inferred: bool| {
        let mut row = TransitionRow::new(
            SubjectUid::Node(new.uid.to_string()),
            kind,
            at_ms.unwrap_or(obs.at_ms),
            obs.at_ms,
        );
        row.seq = seq;
        row.message = message;
        row.resource_version = new.resource_version;
        row.inferred = obs.inferred || inferred;
        rows.push(row);
    };
    if old.is_none() {
        let created = (new.created_at_ms != 0).then_some(new.created_at_ms);
        push(TransitionKind::NodeAdded, created, 0, None, false);
    }
    let was_ready = old.is_some_and(|o| o.ready);
    if new.ready != was_ready {
        let kind = if new.ready {
            TransitionKind::NodeReady
        } else {
            TransitionKind::NodeNotReady
        };
        let at = new.ready_changed_at_ms.unwrap_or(obs.at_ms);
        push(kind, Some(at), at, None, false);
    } else if let Some(old) = old
        && flipped_back(old.ready_changed_at_ms, new.ready_changed_at_ms)
    {
        let at = new.ready_changed_at_ms.unwrap_or(obs.at_ms);
        let (first, second) = if new.ready {
            (TransitionKind::NodeNotReady, TransitionKind::NodeReady)
        } else {
            (TransitionKind::NodeReady, TransitionKind::NodeNotReady)
        };
        push(first, Some(at), at, Some(FLIP_UNKNOWN_TIME.into()), true);
        push(second, Some(at), at, None, false);
    }
    let was_cordoned = old.is_some_and(|o| o.unschedulable);
    if new.unschedulable != was_cordoned {
        let kind = if new.unschedulable {
            TransitionKind::Cordoned
        } else {
            TransitionKind::Uncordoned
        };
        push(kind, None, obs.at_ms, None, false);
    }
    if let Some(old) = old
        && (old.capacity != new.capacity || old.allocatable != new.allocatable)
    {
        let message = format!(
            "allocatable cpu {} -> {}, memory {} -> {}, pods {} -> {}",
            format_cpu_millis(old.allocatable.cpu_millis),
            format_cpu_millis(new.allocatable.cpu_millis),
            format_memory_bytes(old.allocatable.memory_bytes),
            format_memory_bytes(new.allocatable.memory_bytes),
            old.allocatable.pods,
            new.allocatable.pods
        );
        push(
            TransitionKind::CapacityChanged,
            None,
            obs.at_ms,
            Some(message),
            false,
        );
    }
    rows.sort_by_key(|r| r.at_ms);
    rows
}

pub fn node_deleted(last: &NodeState, obs: Observation) -> TransitionRow {
    let mut row = TransitionRow::new(
        SubjectUid::Node(last.uid.to_string()),
        TransitionKind::NodeDeleted,
        obs.at_ms,
        obs.at_ms,
    );
    row.resource_version = last.resource_version;
    row.inferred = obs.inferred;
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Effective;
    use crate::store::NodeResources;
    use TransitionKind::*;

    /// Test fixtures built with small builders, not hand-written JSON.
    fn pod() -> PodState {
        PodState {
            uid: "u1".into(),
            namespace: "ns".into(),
            name: "p".into(),
            created_at_ms: 1_000,
            phase: Phase::Pending,
            resource_version: Some(1),
            ..Default::default()
        }
    }

    trait PodBuilder {
        fn scheduled(self, at: i64) -> Self;
        fn running(self, at: i64) -> Self;
        fn ready(self, at: i64) -> Self;
        fn unready(self, at: i64) -> Self;
        fn restarted(self, name: &str, count: i64, finished: i64, reason: &str, code: i64) -> Self;
        fn finished(self, phase: Phase, at: i64, reason: &str) -> Self;
    }

    impl PodBuilder for PodState {
        fn scheduled(mut self, at: i64) -> Self {
            self.node = Some("n1".into());
            self.scheduled_at_ms = Some(at);
            self
        }
        fn running(mut self, at: i64) -> Self {
            self.phase = Phase::Running;
            self.start_time_ms = Some(at);
            self.containers = vec![ContainerState {
                name: "app".into(),
                started_at_ms: Some(at),
                ..Default::default()
            }];
            self
        }
        fn ready(mut self, at: i64) -> Self {
            self.ready = true;
            self.ready_changed_at_ms = Some(at);
            self
        }
        fn unready(mut self, at: i64) -> Self {
            self.ready = false;
            self.ready_changed_at_ms = Some(at);
            self
        }
        fn restarted(
            mut self,
            name: &str,
            count: i64,
            finished: i64,
            reason: &str,
            code: i64,
        ) -> Self {
            let c = self
                .containers
                .iter_mut()
                .find(|c| &*c.name == name)
                .unwrap();
            c.restart_count = count;
            c.terminated = None;
            c.started_at_ms = Some(finished + 1);
            c.last_terminated = Some(Box::new(Termination {
                finished_at_ms: Some(finished),
                exit_code: Some(code),
                reason: Some(reason.into()),
            }));
            self
        }
        fn finished(mut self, phase: Phase, at: i64, reason: &str) -> Self {
            self.phase = phase;
            for c in &mut self.containers {
                c.terminated = Some(Box::new(Termination {
                    finished_at_ms: Some(at),
                    exit_code: Some(if phase == Phase::Succeeded { 0 } else { 1 }),
                    reason: Some(reason.into()),
                }));
            }
            self
        }
    }

    fn kinds_and_times(rows: &[TransitionRow]) -> Vec<(TransitionKind, i64)> {
        rows.iter().map(|r| (r.kind, r.at_ms)).collect()
    }

    const NOW: i64 = 99_000;

    /// (name, old state, new state, expected kinds and times).
    type Case<S> = (&'static str, Option<S>, S, Vec<(TransitionKind, i64)>);

    #[test]
    fn pod_transitions_table() {
        let running = pod().scheduled(2_000).running(3_000).ready(4_000);
        let cases: Vec<Case<PodState>> = vec![
            (
                "a new pending pod is created",
                None,
                pod(),
                vec![(Created, 1_000)],
            ),
            (
                "binding to a node schedules it",
                Some(pod()),
                pod().scheduled(2_000),
                vec![(Scheduled, 2_000)],
            ),
            (
                "start and ready in one update give both rows",
                Some(pod().scheduled(2_000)),
                running.clone(),
                vec![(Started, 3_000), (Ready, 4_000)],
            ),
            (
                "a pod first seen running gets its whole past from status timestamps",
                None,
                running.clone(),
                vec![
                    (Created, 1_000),
                    (Scheduled, 2_000),
                    (Started, 3_000),
                    (Ready, 4_000),
                ],
            ),
            (
                "an unchanged pod (a replayed event) gives nothing",
                Some(running.clone()),
                running.clone(),
                vec![],
            ),
            (
                "an OOMKill and restart give terminated then restarted at finishedAt",
                Some(running.clone()),
                running.clone().restarted("app", 1, 5_000, "OOMKilled", 137),
                vec![(ContainerTerminated, 5_000), (ContainerRestarted, 5_000)],
            ),
            (
                "readiness lost",
                Some(running.clone()),
                running.clone().unready(6_000),
                vec![(Unready, 6_000)],
            ),
            (
                "success ends the containers and the pod at the last finishedAt",
                Some(running.clone()),
                running
                    .clone()
                    .unready(7_000)
                    .finished(Phase::Succeeded, 7_000, "Completed"),
                vec![
                    (Unready, 7_000),
                    (ContainerTerminated, 7_000),
                    (Succeeded, 7_000),
                ],
            ),
            (
                "pending then (gap) succeeded: the skipped start is reconstructed",
                Some(pod().scheduled(2_000)),
                pod().scheduled(2_000).running(3_000).finished(
                    Phase::Succeeded,
                    8_000,
                    "Completed",
                ),
                vec![
                    (Started, 3_000),
                    (ContainerTerminated, 8_000),
                    (Succeeded, 8_000),
                ],
            ),
        ];
        for (name, old, new, want) in cases {
            let rows = pod_transitions(old.as_ref(), &new, Observation::live(NOW));
            assert_eq!(kinds_and_times(&rows), want, "{name}");
            assert!(
                rows.iter()
                    .all(|r| r.subject == SubjectUid::Pod("u1".into())),
                "{name}"
            );
        }
    }

    #[test]
    fn a_readiness_flip_and_flip_back_inside_a_gap_is_recovered_from_the_condition_time() {
        let ready = pod().scheduled(2_000).running(3_000).ready(4_000);
        let ready_again = pod().scheduled(2_000).running(3_000).ready(9_000);
        let rows = pod_transitions(Some(&ready), &ready_again, Observation::recovered(NOW));
        assert_eq!(
            kinds_and_times(&rows),
            vec![(Unready, 9_000), (Ready, 9_000)]
        );
        assert!(rows.iter().all(|r| r.inferred));
        assert_ne!((rows[0].kind, rows[0].seq), (rows[1].kind, rows[1].seq));
    }

    #[test]
    fn recovered_rows_are_marked_inferred_and_live_rows_are_not() {
        let running = pod().scheduled(2_000).running(3_000);
        let rows = pod_transitions(None, &running, Observation::recovered(NOW));
        assert!(rows.iter().all(|r| r.inferred));
        assert_eq!(rows[0].observed_at_ms, NOW);
        let rows = pod_transitions(None, &running, Observation::live(NOW));
        assert!(rows.iter().all(|r| !r.inferred));
    }

    #[test]
    fn container_rows_carry_reason_exit_code_and_phase_change() {
        let running = pod().scheduled(2_000).running(3_000);
        let rows = pod_transitions(
            Some(&running),
            &running.clone().restarted("app", 1, 5_000, "OOMKilled", 137),
            Observation::live(NOW),
        );
        let term = &rows[0];
        assert_eq!(term.container.as_deref(), Some("app"));
        assert_eq!(term.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(term.exit_code, Some(137));
        assert_eq!(
            (term.phase_before, term.phase_after),
            (Some(Phase::Running), Some(Phase::Running))
        );
        assert_eq!(rows[1].restart_count, Some(1));
    }

    #[test]
    fn a_termination_seen_live_is_not_repeated_when_the_restart_follows() {
        let running = pod().scheduled(2_000).running(3_000);
        let mut ended = running.clone();
        ended.containers[0].terminated = Some(Box::new(Termination {
            finished_at_ms: Some(5_000),
            exit_code: Some(1),
            reason: Some("Error".into()),
        }));
        let rows = pod_transitions(Some(&running), &ended, Observation::live(NOW));
        assert_eq!(kinds_and_times(&rows), vec![(ContainerTerminated, 5_000)]);
        let restarted = running.clone().restarted("app", 1, 5_000, "Error", 1);
        let rows2 = pod_transitions(Some(&ended), &restarted, Observation::live(NOW));
        assert_eq!(kinds_and_times(&rows2), vec![(ContainerRestarted, 5_000)]);
        // Had both been detected at once (a gap), the termination would share the same key.
        let rows3 = pod_transitions(Some(&running), &restarted, Observation::recovered(NOW));
        assert_eq!(rows3[0].seq, rows[0].seq);
        assert_eq!(rows3[1].seq, rows2[0].seq);
    }

    #[test]
    fn two_restarts_inside_a_gap_are_both_recorded() {
        let running = pod().scheduled(2_000).running(3_000);
        let rows = pod_transitions(
            Some(&running),
            &running.clone().restarted("app", 2, 9_000, "Error", 1),
            Observation::recovered(NOW),
        );
        let kinds: Vec<_> = rows.iter().map(|r| (r.kind, r.restart_count)).collect();
        assert!(kinds.contains(&(ContainerRestarted, Some(1))));
        assert!(kinds.contains(&(ContainerRestarted, Some(2))));
        let seqs: std::collections::HashSet<_> = rows.iter().map(|r| (r.kind, r.seq)).collect();
        assert_eq!(seqs.len(), rows.len(), "distinct idempotency keys");
    }

    #[test]
    fn terminating_uses_the_deletion_request_time_and_deleted_the_observation() {
        let running = pod().scheduled(2_000).running(3_000);
        let mut deleting = running.clone();
        deleting.deletion_at_ms = Some(40_000);
        deleting.deletion_grace_secs = Some(30);
        let rows = pod_transitions(Some(&running), &deleting, Observation::live(NOW));
        assert_eq!(kinds_and_times(&rows), vec![(Terminating, 10_000)]);
        assert_eq!(pod_deleted(&deleting, Observation::live(NOW)).at_ms, NOW);
        // Found missing on a relist: the grace period's end is the best estimate.
        let inferred = pod_deleted(&deleting, Observation::recovered(NOW));
        assert_eq!((inferred.at_ms, inferred.inferred), (40_000, true));
    }

    #[test]
    fn evictions_keep_their_reason() {
        let running = pod().scheduled(2_000).running(3_000);
        let mut evicted = running.clone().finished(Phase::Failed, 6_000, "Error");
        evicted.reason = Some("Evicted".into());
        let rows = pod_transitions(Some(&running), &evicted, Observation::live(NOW));
        let failed = rows.iter().find(|r| r.kind == Failed).unwrap();
        assert_eq!(failed.reason.as_deref(), Some("Evicted"));
    }

    #[test]
    fn a_resource_change_is_a_resize() {
        let running = pod().scheduled(2_000).running(3_000);
        let mut bigger = running.clone();
        bigger.resources = Effective {
            requests: Resources::new(500, 0),
            limits: Resources::default(),
        };
        let rows = pod_transitions(Some(&running), &bigger, Observation::live(NOW));
        assert_eq!(kinds_and_times(&rows), vec![(Resized, NOW)]);
        assert_eq!(rows[0].message.as_deref(), Some("cpu request 0 -> 500m"));
    }

    /// A pod with one plain init container and one app container, each with declared
    /// resources; `app_actuated` is what the kubelet reports for the app container.
    fn resizable(app: ResourceQuad, app_actuated: Option<ResourceQuad>) -> PodState {
        use super::super::state::{ContainerResize, PodResize};
        let mut p = pod().scheduled(2_000).running(3_000);
        p.resize = Some(Box::new(PodResize {
            containers: vec![
                ContainerResize {
                    name: "init".into(),
                    desired: [2_000, 1 << 30, 0, 0],
                    ..Default::default()
                },
                ContainerResize {
                    name: "app".into(),
                    desired: app,
                    reported: app_actuated.is_some(),
                    actuated_other: app_actuated.filter(|a| *a != app).map(Box::new),
                },
            ],
            ..Default::default()
        }));
        p
    }

    fn pending(mut p: PodState, reason: &str) -> PodState {
        let rz = p.resize.as_mut().unwrap();
        rz.pending_reason = Some(reason.into());
        rz.pending_message = Some("Node didn't have enough capacity: cpu".into());
        p
    }

    const SMALL: ResourceQuad = [250, 1 << 28, 500, 1 << 29];
    const BIG: ResourceQuad = [500, 1 << 28, 1_000, 1 << 29];

    /// (name, old, new, expected (kind, container, reason, message)).
    type ResizeCase = (
        &'static str,
        PodState,
        PodState,
        Vec<(
            TransitionKind,
            Option<&'static str>,
            Option<&'static str>,
            &'static str,
        )>,
    );

    #[test]
    fn in_place_resize_table() {
        let cases: Vec<ResizeCase> = vec![
            (
                "unchanged: nothing",
                resizable(SMALL, Some(SMALL)),
                resizable(SMALL, Some(SMALL)),
                vec![],
            ),
            (
                "a spec change is resize_requested, naming the container and its values",
                resizable(SMALL, Some(SMALL)),
                resizable(BIG, Some(SMALL)),
                vec![(
                    ResizeRequested,
                    Some("app"),
                    None,
                    "container app: cpu request 250m -> 500m, cpu limit 500m -> 1",
                )],
            ),
            (
                "the kubelet's Deferred answer is a resize_requested with that reason",
                resizable(BIG, Some(SMALL)),
                pending(resizable(BIG, Some(SMALL)), "Deferred"),
                vec![(
                    ResizeRequested,
                    None,
                    Some("Deferred"),
                    "Node didn't have enough capacity: cpu",
                )],
            ),
            (
                "Deferred turning Infeasible is recorded again",
                pending(resizable(BIG, Some(SMALL)), "Deferred"),
                pending(resizable(BIG, Some(SMALL)), "Infeasible"),
                vec![(
                    ResizeRequested,
                    None,
                    Some("Infeasible"),
                    "Node didn't have enough capacity: cpu",
                )],
            ),
            (
                "a request that arrives already pending carries the reason on the container row",
                resizable(SMALL, Some(SMALL)),
                pending(resizable(BIG, Some(SMALL)), "Infeasible"),
                vec![(
                    ResizeRequested,
                    Some("app"),
                    Some("Infeasible"),
                    "container app: cpu request 250m -> 500m, cpu limit 500m -> 1",
                )],
            ),
            (
                "the kubelet applying it is resized",
                pending(resizable(BIG, Some(SMALL)), "Deferred"),
                resizable(BIG, Some(BIG)),
                vec![(
                    Resized,
                    Some("app"),
                    None,
                    "container app: cpu request 250m -> 500m, cpu limit 500m -> 1",
                )],
            ),
            (
                "asked and applied in one update: both rows",
                resizable(SMALL, Some(SMALL)),
                resizable(BIG, Some(BIG)),
                vec![
                    (
                        ResizeRequested,
                        Some("app"),
                        None,
                        "container app: cpu request 250m -> 500m, cpu limit 500m -> 1",
                    ),
                    (
                        Resized,
                        Some("app"),
                        None,
                        "container app: cpu request 250m -> 500m, cpu limit 500m -> 1",
                    ),
                ],
            ),
            (
                "a resize hidden by the init container's larger request is still recorded",
                resizable(SMALL, None),
                resizable(BIG, None),
                vec![(
                    ResizeRequested,
                    Some("app"),
                    None,
                    "container app: cpu request 250m -> 500m, cpu limit 500m -> 1",
                )],
            ),
        ];
        for (name, old, new, want) in cases {
            let rows = pod_transitions(Some(&old), &new, Observation::live(NOW));
            let got: Vec<_> = rows
                .iter()
                .map(|r| {
                    (
                        r.kind,
                        r.container.as_deref(),
                        r.reason.as_deref(),
                        r.message.as_deref().unwrap_or_default(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{name}");
            assert!(rows.iter().all(|r| r.at_ms == NOW), "{name}");
            let keys: std::collections::HashSet<_> = rows.iter().map(|r| (r.kind, r.seq)).collect();
            assert_eq!(keys.len(), rows.len(), "{name}: distinct idempotency keys");
        }
    }

    #[test]
    fn a_pod_whose_kubelet_reports_resources_is_not_resized_by_its_effective_requests_alone() {
        // The effective requests follow the scheduler's max(desired, actuated) and so grow as
        // soon as a resize is asked for; that is resize_requested, not yet resized.
        let old = resizable(SMALL, Some(SMALL));
        let mut new = resizable(BIG, Some(SMALL));
        new.resources.requests.cpu_millis = 2_000;
        let kinds: Vec<_> = pod_transitions(Some(&old), &new, Observation::live(NOW))
            .iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, vec![ResizeRequested]);
    }

    fn node() -> NodeState {
        NodeState {
            uid: "nu".into(),
            name: "n1".into(),
            created_at_ms: 500,
            ready: true,
            ready_changed_at_ms: Some(600),
            allocatable: NodeResources {
                cpu_millis: 4000,
                memory_bytes: 1 << 34,
                pods: 110,
            },
            ..Default::default()
        }
    }

    #[test]
    fn node_transitions_table() {
        let mut not_ready = node();
        not_ready.ready = false;
        not_ready.ready_changed_at_ms = Some(700);
        let mut cordoned = node();
        cordoned.unschedulable = true;
        let mut smaller = node();
        smaller.allocatable.cpu_millis = 3000;
        let cases: Vec<Case<NodeState>> = vec![
            (
                "a new ready node",
                None,
                node(),
                vec![(NodeAdded, 500), (NodeReady, 600)],
            ),
            ("unchanged", Some(node()), node(), vec![]),
            (
                "goes not ready",
                Some(node()),
                not_ready.clone(),
                vec![(NodeNotReady, 700)],
            ),
            (
                "comes back",
                Some(not_ready),
                node(),
                vec![(NodeReady, 600)],
            ),
            (
                "cordoned",
                Some(node()),
                cordoned.clone(),
                vec![(Cordoned, NOW)],
            ),
            (
                "uncordoned",
                Some(cordoned),
                node(),
                vec![(Uncordoned, NOW)],
            ),
            (
                "allocatable shrinks",
                Some(node()),
                smaller,
                vec![(CapacityChanged, NOW)],
            ),
        ];
        for (name, old, new, want) in cases {
            let rows = node_transitions(old.as_ref(), &new, Observation::live(NOW));
            assert_eq!(kinds_and_times(&rows), want, "{name}");
        }
    }
}
