//! The transition detector: old state + new state -> transition rows. Pure functions, no I/O.
//!
//! The same functions serve live watch events and recovery after a gap (a relist, a reconnect,
//! a recorder restart): they compare what was last known with what is known now, and use the
//! timestamps Kubernetes keeps in status (conditions, startTime, container startedAt/finishedAt)
//! for `at`. Rows found while recovering carry `inferred = true`.
//!
//! Idempotency: every row has a `seq` chosen so that the same real-world event always gets the
//! same (subject, kind, seq), whichever way it is detected. Kinds that happen once use 0;
//! container kinds combine a hash of the container name with the run number (the kubelet's own
//! numbering, kept per containerID once seen, so a run seen live, after a gap or after a
//! restart always has one number); `container_waiting` adds the reason; ready/unready and the
//! observed-time kinds use their `at`.

use super::state::{
    ContainerState, NodeState, PodState, ResourceQuad, Termination, quad_effective,
};
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

    pub fn inferred(at_ms: i64) -> Self {
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

/// A small code per waiting reason for the waiting row's seq: the common kubelet reasons get
/// fixed codes, anything else a hash in 64..128.
fn waiting_code(reason: &str) -> i64 {
    const KNOWN: &[&str] = &[
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "InvalidImageName",
        "ErrImageNeverPull",
        "PreStartHookError",
        "PostStartHookError",
        "PreCreateHookError",
        "RegistryUnavailable",
        "SignatureValidationFailed",
        "ContainerStatusUnknown",
    ];
    match KNOWN.iter().position(|k| *k == reason) {
        Some(i) => i as i64 + 1,
        None => 64 + (name_hash(reason) & 63),
    }
}

/// seq of a `container_waiting` row: which container, which run it waits for, which reason.
/// The kubelet alternates ErrImagePull and ImagePullBackOff while a pull keeps failing; each
/// reason is one row per run, not one per retry.
pub fn waiting_seq(name: &str, run: i64, reason: &str) -> i64 {
    container_seq(name, run) | (waiting_code(reason) << 56)
}

/// Gives every termination in `new` the run number its containerID had in `old`, so a run keeps
/// the number it was first recorded under however the kubelet describes it later (a status
/// rebuilt after the runtime lost a container keeps an old lastState under a new restartCount).
pub fn carry_runs(old: Option<&PodState>, new: &mut PodState) {
    let Some(old) = old else { return };
    for c in &mut new.containers {
        let Some(oc) = old
            .containers
            .iter()
            .find(|oc| oc.name == c.name && oc.init == c.init)
        else {
            continue;
        };
        for t in [&mut c.terminated, &mut c.last_terminated]
            .into_iter()
            .flatten()
        {
            if t.id == 0 {
                continue;
            }
            if oc.run_id == t.id {
                t.run = oc.restart_count;
            } else if let Some(known) = oc.terminations().find(|ot| ot.id == t.id) {
                t.run = known.run;
            }
        }
    }
}

/// The newest run known to have ended, if any: every run before restartCount has (the kubelet
/// creates a container only after the previous one ended), and the terminations say the rest.
fn last_ended_run(c: &ContainerState) -> Option<i64> {
    let by_count = (c.restart_count > 0).then(|| c.restart_count - 1);
    c.terminations().map(|t| t.run).chain(by_count).max()
}

/// One container event before its time is settled.
struct Step<'a> {
    kind: TransitionKind,
    run: i64,
    at_ms: Option<i64>,
    /// The termination it is about (terminated) or follows (restarted).
    term: Option<&'a Termination>,
    message: Option<String>,
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
        row.resource_version = self.new.resource_version.get();
        row.inferred = self.obs.inferred;
        fill(&mut row);
        self.rows.push(row);
    }

    /// A container's runs that ended and began since `old`, keyed by run number (see
    /// [`ContainerState::last_terminated`] for how the kubelet numbers them), each recorded once
    /// at its own time. What status no longer describes (several restarts inside one gap) is
    /// dated by the next time status does give, never by our clock, so the rows stay in order.
    fn container(&mut self, c: &ContainerState) {
        let old = self.old.and_then(|o| {
            o.containers
                .iter()
                .find(|oc| oc.name == c.name && oc.init == c.init)
        });
        self.waiting(c, old);
        let find = |run: i64| {
            c.terminations()
                .find(|t| t.run == run)
                .or_else(|| old.and_then(|o| o.terminations().find(|t| t.run == run)))
        };
        let ended = last_ended_run(c).unwrap_or(-1);
        let restarts = c.restart_count;
        // Before the first sight, only what status still describes is known: its terminations
        // and one restart row that carries the count.
        let first_sight = self.old.is_none() || old.is_none();
        let (ended_before, restarts_before) = match old {
            Some(o) => (last_ended_run(o).unwrap_or(-1), o.restart_count),
            None => (-1, 0),
        };
        let mut steps: Vec<Step> = Vec::new();
        for run in 0..=ended.max(restarts) {
            let restarted = if first_sight {
                run == restarts && run > 0
            } else {
                run > restarts_before && run <= restarts
            };
            if restarted {
                let before = find(run - 1);
                let start = if run == c.restart_count && c.has_current_run() {
                    c.started_at_ms
                } else {
                    find(run).and_then(|t| t.started_at_ms)
                };
                let exact = before.and_then(|t| t.finished_at_ms);
                steps.push(Step {
                    kind: TransitionKind::ContainerRestarted,
                    run,
                    at_ms: exact.or(start),
                    term: before,
                    message: match (exact, first_sight && run > 1) {
                        (_, true) => Some(format!(
                            "{run} restarts before the recorder first saw the container; \
                             the earlier ones' times are unknown"
                        )),
                        (Some(_), false) => None,
                        (None, false) => {
                            Some("restarted while the recorder was not watching".into())
                        }
                    },
                });
            }
            let term = find(run);
            let terminated = if first_sight {
                term.is_some() && run <= ended
            } else {
                run > ended_before && run <= ended
            };
            if terminated {
                let at_ms = term.and_then(|t| t.finished_at_ms);
                steps.push(Step {
                    kind: TransitionKind::ContainerTerminated,
                    run,
                    at_ms,
                    term,
                    message: at_ms.is_none().then(|| {
                        "ended while the recorder was not watching; time unknown".to_string()
                    }),
                });
            }
        }
        // An unknown time is bounded by the next known one (the next run's start, its end).
        let mut bound = self.obs.at_ms;
        let mut dated = Vec::with_capacity(steps.len());
        for step in steps.into_iter().rev() {
            let at_ms = step.at_ms.unwrap_or(bound).min(bound);
            bound = at_ms;
            dated.push((at_ms, step));
        }
        for (at_ms, step) in dated.into_iter().rev() {
            let guessed = step.message.is_some();
            self.push(step.kind, Some(at_ms), |r| {
                r.seq = container_seq(&c.name, step.run);
                r.container = Some(c.name.to_string());
                r.reason = step
                    .term
                    .and_then(|t| t.reason.as_deref().map(str::to_string));
                r.exit_code = step.term.and_then(|t| t.exit_code);
                r.restart_count = Some(step.run);
                r.message = step.message;
                r.inferred |= guessed;
            });
        }
    }

    /// A container entering an unusual waiting reason.
    fn waiting(&mut self, c: &ContainerState, old: Option<&ContainerState>) {
        let Some(w) = &c.waiting else { return };
        let run = c.waiting_for_run();
        let seen = old.is_some_and(|o| {
            o.waiting.as_ref().is_some_and(|ow| ow.reason == w.reason) && o.waiting_for_run() == run
        });
        if seen {
            return;
        }
        self.push(TransitionKind::ContainerWaiting, None, |r| {
            r.seq = waiting_seq(&c.name, run, &w.reason);
            r.container = Some(c.name.to_string());
            r.reason = Some(w.reason.to_string());
            r.message = w.message.as_deref().map(str::to_string);
            r.restart_count = Some(c.restart_count);
        });
    }
}

/// The phase a kind leaves the pod in, for kinds that change it.
fn phase_after(kind: TransitionKind) -> Option<Phase> {
    match kind {
        TransitionKind::Created => Some(Phase::Pending),
        TransitionKind::Started => Some(Phase::Running),
        TransitionKind::Succeeded => Some(Phase::Succeeded),
        TransitionKind::Failed => Some(Phase::Failed),
        _ => None,
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
        let (was, now) = (old.resize(), new.resize());
        let reported = now
            .as_ref()
            .is_some_and(|r| r.containers.iter().any(|c| c.reported));
        if let (Some(was), Some(now)) = (was.as_deref(), now.as_deref()) {
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
        // A pod created with spec.nodeName has no PodScheduled condition: bound at creation.
        out.push(
            TransitionKind::Scheduled,
            new.scheduled_at_ms.get().or(created),
            |_| {},
        );
    }
    if new.has_started() && !old.is_some_and(|o| o.has_started()) {
        // Status keeps a container's newest run and the one before it; for a pod first seen
        // after that (in its second back-off or later) the first run's start is gone, and
        // status.startTime (admission) only bounds it from below: say so, and mark it inferred.
        let unknown = new.first_run_started_at_ms().is_none();
        let bound = if new.start_time_ms.is_some() {
            "at is status.startTime, when the kubelet admitted the pod"
        } else {
            "at is the earliest start status still shows"
        };
        out.push(TransitionKind::Started, new.started_at_ms(), |r| {
            if unknown {
                r.inferred = true;
                r.message = Some(format!(
                    "the first run's start is no longer in status (it keeps only the newest \
                     runs); {bound}"
                ));
            }
        });
    }
    let was_ready = old.is_some_and(|o| o.ready);
    if new.ready != was_ready {
        let kind = if new.ready {
            TransitionKind::Ready
        } else {
            TransitionKind::Unready
        };
        let at = new.ready_changed_at_ms.get().unwrap_or(obs.at_ms);
        out.push(kind, Some(at), |r| r.seq = at);
    } else if obs.inferred
        && let Some(old) = old
        && flipped_back(old.ready_changed_at_ms.get(), new.ready_changed_at_ms.get())
    {
        // Same readiness, but the condition changed since: it flipped and flipped back while we
        // were not looking. The second flip's time is known; the first is only bounded by it.
        // A live event follows the one before it with nothing in between (a watch sends every
        // write), so there the same change is a rewrite of the condition (kwok replaying a
        // stage after an API server outage), not a flip that was missed.
        let at = new.ready_changed_at_ms.get().unwrap_or(obs.at_ms);
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
    if let Some(deletion_at) = new.deletion_at_ms.get()
        && old.is_none_or(|o| o.deletion_at_ms.is_none())
    {
        let requested_at = deletion_at - new.deletion_grace_secs.get().unwrap_or(0) * 1000;
        out.push(TransitionKind::Terminating, Some(requested_at), |r| {
            r.message = new
                .deletion_grace_secs
                .get()
                .map(|g| format!("grace period {g}s"));
        });
    }
    if let Some(old) = old {
        out.resizes(old);
    }
    let mut rows = out.rows;
    rows.sort_by_key(|r| r.at_ms);
    // Each row shows the phase at its own moment, not the one the pod has now: a pod first
    // seen running still was Pending when it was created and scheduled.
    let mut phase = old.map(|o| o.phase);
    for row in &mut rows {
        row.phase_before = phase;
        phase = phase_after(row.kind).or(phase).or(Some(new.phase));
        row.phase_after = phase;
    }
    rows
}

/// How the recorder learnt that a pod is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// A watch DELETED event: the server says the object was removed just now (or, in a
    /// inferred events after a reconnect, some time since the stream failed). A pod held by a finalizer
    /// is removed when the finalizer goes, long after its deletionTimestamp.
    Watched,
    /// Absent from a fresh list (a relist, or the first list after a restart): removed at some
    /// unknown time while the recorder was not watching, which began at `followed_until_ms`
    /// (the last event before the stream failed, or a previous run's last commit; 0 when
    /// unknown). Until then the recorder saw no DELETED, so the pod was there.
    Relisted { followed_until_ms: i64 },
}

/// The `deleted` row of a pod. `at_ms` is the observation time, except for a pod found missing
/// from a list, where a terminating pod's deletionTimestamp (when its grace period ended) is
/// the better estimate, but never before the recorder stopped following: the kubelet may
/// confirm a deletion long after the grace period, and one the recorder was still watching
/// had not happened yet.
pub fn pod_deleted(last: &PodState, obs: Observation, how: Gone) -> TransitionRow {
    let at_ms = match (how, last.deletion_at_ms.get()) {
        (Gone::Relisted { followed_until_ms }, Some(deadline)) => {
            deadline.max(followed_until_ms).min(obs.at_ms)
        }
        _ => obs.at_ms,
    };
    let relisted = matches!(how, Gone::Relisted { .. });
    let mut row = TransitionRow::new(
        SubjectUid::Pod(last.uid.to_string()),
        TransitionKind::Deleted,
        at_ms,
        obs.at_ms,
    );
    row.phase_before = Some(last.phase);
    row.phase_after = Some(last.phase);
    row.resource_version = last.resource_version.get();
    row.inferred = obs.inferred || relisted;
    row.message = match how {
        Gone::Relisted { .. } => Some(
            "gone from the API server's list; deleted while the recorder was not watching".into(),
        ),
        Gone::Watched if obs.inferred => Some(
            "deletion replayed after the watch reconnected; at is when the recorder saw it".into(),
        ),
        Gone::Watched => None,
    };
    row
}

/// A `left_scope` (`entered = false`) or `entered_scope` row: with a label selector, the pod's
/// labels stopped (or started) matching it. The pod lives on; the recorder stops (or starts
/// again) following it.
pub fn pod_scope(state: &PodState, entered: bool, obs: Observation) -> TransitionRow {
    let kind = if entered {
        TransitionKind::EnteredScope
    } else {
        TransitionKind::LeftScope
    };
    let mut row = TransitionRow::new(
        SubjectUid::Pod(state.uid.to_string()),
        kind,
        obs.at_ms,
        obs.at_ms,
    );
    row.seq = obs.at_ms;
    row.phase_before = Some(state.phase);
    row.phase_after = Some(state.phase);
    row.resource_version = state.resource_version.get();
    row.inferred = obs.inferred;
    row.message = Some(if entered {
        "its labels match the recorder's selector again".into()
    } else {
        "its labels no longer match the recorder's selector; not followed until they do".into()
    });
    row
}

/// Whether the events of a watch stream that failed and resumed are inferred (replayed from
/// the server's history, so seen late) or live, decided by the data rather than by a clock:
/// when the resumed watch yields its first event, the recorder asks the server for its current
/// resourceVersion (the horizon). Every replayed event was sent before that answer, so it is at
/// or below it; the first event past it is live again, however late it comes. Until the
/// horizon is known, events count as inferred.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Inferring {
    #[default]
    Live,
    /// Failed; the horizon is not known yet.
    AwaitingHorizon,
    /// Events with a resourceVersion up to this one are inferred.
    Until(i64),
}

impl Inferring {
    /// The stream failed: what it yields next may be a replay.
    pub fn failed(&mut self) {
        *self = Inferring::AwaitingHorizon;
    }

    /// The server's resourceVersion, asked after the failure.
    pub fn horizon(&mut self, resource_version: i64) {
        if *self == Inferring::AwaitingHorizon {
            *self = Inferring::Until(resource_version);
        }
    }

    /// A (re)list reconciles everything: nothing is marked inferred after it.
    pub fn reconciled(&mut self) {
        *self = Inferring::Live;
    }

    pub fn awaiting_horizon(&self) -> bool {
        *self == Inferring::AwaitingHorizon
    }

    /// How to treat an event for an object at `resource_version`, arriving at `now_ms`.
    pub fn observe(&mut self, resource_version: Option<i64>, now_ms: i64) -> Observation {
        match *self {
            Inferring::Live => Observation::live(now_ms),
            Inferring::AwaitingHorizon => Observation::inferred(now_ms),
            Inferring::Until(horizon) => match resource_version {
                Some(rv) if rv <= horizon => Observation::inferred(now_ms),
                _ => {
                    *self = Inferring::Live;
                    Observation::live(now_ms)
                }
            },
        }
    }
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
    } else if obs.inferred
        && let Some(old) = old
        && flipped_back(old.ready_changed_at_ms, new.ready_changed_at_ms)
    {
        // Only when recovering, as for pods: live events miss no write.
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
mod tests;
