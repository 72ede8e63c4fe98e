//! Table-driven tests of the pure detector: old state + new state gives these rows.

use super::*;
use crate::model::Effective;
use crate::recorder::state::Waiting;
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
        resource_version: Some(1).into(),
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
        self.scheduled_at_ms = Some(at).into();
        self
    }
    fn running(mut self, at: i64) -> Self {
        self.phase = Phase::Running;
        self.start_time_ms = Some(at).into();
        self.containers = Box::new([ContainerState {
            name: "app".into(),
            started_at_ms: Some(at),
            ..Default::default()
        }]);
        self
    }
    fn ready(mut self, at: i64) -> Self {
        self.ready = true;
        self.ready_changed_at_ms = Some(at).into();
        self
    }
    fn unready(mut self, at: i64) -> Self {
        self.ready = false;
        self.ready_changed_at_ms = Some(at).into();
        self
    }
    fn restarted(mut self, name: &str, count: i64, finished: i64, reason: &str, code: i64) -> Self {
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
            run: count - 1,
            ..Default::default()
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
                run: c.restart_count,
                ..Default::default()
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
            pod()
                .scheduled(2_000)
                .running(3_000)
                .finished(Phase::Succeeded, 8_000, "Completed"),
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
    let rows = pod_transitions(Some(&ready), &ready_again, Observation::inferred(NOW));
    assert_eq!(
        kinds_and_times(&rows),
        vec![(Unready, 9_000), (Ready, 9_000)]
    );
    assert!(rows.iter().all(|r| r.inferred));
    assert_ne!((rows[0].kind, rows[0].seq), (rows[1].kind, rows[1].seq));
}

#[test]
fn a_readiness_condition_rewritten_between_two_live_events_is_no_flip() {
    // kwok replayed its start stage after an API server outage: Ready stays True with a new
    // lastTransitionTime. The watch showed both writes and nothing between them.
    let ready = pod().scheduled(2_000).running(3_000).ready(4_000);
    let rewritten = pod().scheduled(2_000).running(3_000).ready(9_000);
    let rows = pod_transitions(Some(&ready), &rewritten, Observation::live(NOW));
    assert_eq!(kinds_and_times(&rows), vec![]);
    let mut node_ready = node();
    node_ready.ready = true;
    node_ready.ready_changed_at_ms = Some(4_000);
    let mut node_rewritten = node_ready.clone();
    node_rewritten.ready_changed_at_ms = Some(9_000);
    let rows = node_transitions(Some(&node_ready), &node_rewritten, Observation::live(NOW));
    assert_eq!(kinds_and_times(&rows), vec![]);
}

#[test]
fn recovered_rows_are_marked_inferred_and_live_rows_are_not() {
    let running = pod().scheduled(2_000).running(3_000);
    let rows = pod_transitions(None, &running, Observation::inferred(NOW));
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
        ..Default::default()
    }));
    let rows = pod_transitions(Some(&running), &ended, Observation::live(NOW));
    assert_eq!(kinds_and_times(&rows), vec![(ContainerTerminated, 5_000)]);
    let restarted = running.clone().restarted("app", 1, 5_000, "Error", 1);
    let rows2 = pod_transitions(Some(&ended), &restarted, Observation::live(NOW));
    assert_eq!(kinds_and_times(&rows2), vec![(ContainerRestarted, 5_000)]);
    // Had both been detected at once (a gap), the termination would share the same key.
    let rows3 = pod_transitions(Some(&running), &restarted, Observation::inferred(NOW));
    assert_eq!(rows3[0].seq, rows[0].seq);
    assert_eq!(rows3[1].seq, rows2[0].seq);
}

#[test]
fn two_restarts_inside_a_gap_are_both_recorded() {
    let running = pod().scheduled(2_000).running(3_000);
    let rows = pod_transitions(
        Some(&running),
        &running.clone().restarted("app", 2, 9_000, "Error", 1),
        Observation::inferred(NOW),
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
    deleting.deletion_at_ms = Some(40_000).into();
    deleting.deletion_grace_secs = Some(30).into();
    let rows = pod_transitions(Some(&running), &deleting, Observation::live(NOW));
    assert_eq!(kinds_and_times(&rows), vec![(Terminating, 10_000)]);
    assert_eq!(
        pod_deleted(&deleting, Observation::live(NOW), Gone::Watched).at_ms,
        NOW
    );
    // Found missing on a relist: the grace period's end is the best estimate.
    let relisted = Gone::Relisted {
        followed_until_ms: 0,
    };
    let inferred = pod_deleted(&deleting, Observation::inferred(NOW), relisted);
    assert_eq!((inferred.at_ms, inferred.inferred), (40_000, true));
}

/// A pod whose grace period ended while the recorder was still watching (the kubelet confirms
/// the deletion when its containers are gone, which may be long after), then missing from the
/// list of a restarted recorder: it was there until the previous run stopped following, so its
/// deletion is not dated at the deletionTimestamp, before the recorder last knew it existed.
#[test]
fn a_pod_missing_from_a_list_was_deleted_after_the_recorder_stopped_following() {
    let mut deleting = pod().scheduled(2_000).running(3_000);
    deleting.deletion_at_ms = Some(40_000).into();
    deleting.deletion_grace_secs = Some(1).into();
    let followed_until_ms = 45_000;
    let row = pod_deleted(
        &deleting,
        Observation::inferred(NOW),
        Gone::Relisted { followed_until_ms },
    );
    assert_eq!((row.at_ms, row.inferred), (followed_until_ms, true));
    // Never later than it was found missing.
    let row = pod_deleted(
        &deleting,
        Observation::inferred(44_000),
        Gone::Relisted { followed_until_ms },
    );
    assert_eq!(row.at_ms, 44_000);
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

/// A container as the kubelet reports it, one builder step per kubelet status.
fn app(restart_count: i64) -> ContainerState {
    ContainerState {
        name: "app".into(),
        restart_count,
        ..Default::default()
    }
}

fn ended(run: i64, started: i64, finished: i64) -> Option<Box<Termination>> {
    Some(Box::new(Termination {
        started_at_ms: Some(started),
        finished_at_ms: Some(finished),
        exit_code: Some(1),
        reason: Some("Error".into()),
        run,
        id: 1000 + run as u32,
    }))
}

/// Run `run` is running (restartCount = run), after run-1 ended at `prev_finished`.
fn running_run(run: i64, started: i64, prev: Option<(i64, i64)>) -> ContainerState {
    ContainerState {
        run_id: 1000 + run as u32,
        started_at_ms: Some(started),
        last_terminated: prev.and_then(|(s, f)| ended(run - 1, s, f)),
        ..app(run)
    }
}

/// Run `run` just ended and the kubelet waits in back-off: restartCount stays `run`, and
/// lastState holds run `run`'s own termination.
fn backoff(run: i64, started: i64, finished: i64) -> ContainerState {
    ContainerState {
        last_terminated: ended(run, started, finished),
        waiting: Some(Box::new(Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some("back-off 10s restarting failed container=app".into()),
        })),
        ..app(run)
    }
}

fn with(c: ContainerState) -> PodState {
    let mut p = pod().scheduled(2_000).running(3_000);
    p.containers = Box::new([c]);
    p
}

/// (kind, seq, at) of every container row.
fn container_rows(rows: &[TransitionRow]) -> Vec<(TransitionKind, i64, i64)> {
    rows.iter()
        .filter(|r| r.container.is_some())
        .map(|r| (r.kind, r.seq, r.at_ms))
        .collect()
}

#[test]
fn a_crash_loop_first_seen_in_back_off_records_each_termination_once_under_its_own_run() {
    // Run 3 ended at 8_000; the kubelet reports restartCount=3 and lastState = run 3.
    let first = with(backoff(3, 7_000, 8_000));
    let rows = pod_transitions(None, &first, Observation::inferred(NOW));
    let then = with(running_run(4, 18_000, Some((7_000, 8_000))));
    let rows2 = pod_transitions(Some(&first), &then, Observation::live(NOW));
    let terminations: Vec<_> = container_rows(&rows)
        .into_iter()
        .chain(container_rows(&rows2))
        .filter(|r| r.0 == ContainerTerminated)
        .collect();
    assert_eq!(
        terminations,
        vec![(ContainerTerminated, container_seq("app", 3), 8_000)]
    );
    let restarts: Vec<_> = container_rows(&rows)
        .into_iter()
        .chain(container_rows(&rows2))
        .filter(|r| r.0 == ContainerRestarted)
        .collect();
    assert_eq!(
        restarts,
        vec![
            // The restart into run 3: its own start bounds it (run 2's end is unknown).
            (ContainerRestarted, container_seq("app", 3), 7_000),
            // The restart into run 4: at the finishedAt of run 3.
            (ContainerRestarted, container_seq("app", 4), 8_000),
        ]
    );
}

#[test]
fn a_crash_loop_followed_live_gives_each_run_one_termination_one_restart_and_one_waiting() {
    let states = [
        running_run(0, 3_000, None),
        ContainerState {
            terminated: ended(0, 3_000, 5_000),
            ..app(0)
        },
        backoff(0, 3_000, 5_000),
        running_run(1, 15_000, Some((3_000, 5_000))),
        backoff(1, 15_000, 16_000),
        running_run(2, 36_000, Some((15_000, 16_000))),
    ];
    let mut rows = Vec::new();
    let mut old: Option<PodState> = None;
    for c in states {
        let new = with(c);
        rows.extend(pod_transitions(old.as_ref(), &new, Observation::live(NOW)));
        old = Some(new);
    }
    let got: Vec<_> = rows
        .iter()
        .filter(|r| r.container.is_some())
        .map(|r| (r.kind, r.restart_count, r.at_ms))
        .collect();
    assert_eq!(
        got,
        vec![
            (ContainerTerminated, Some(0), 5_000),
            (ContainerWaiting, Some(0), NOW),
            (ContainerRestarted, Some(1), 5_000),
            (ContainerTerminated, Some(1), 16_000),
            (ContainerWaiting, Some(1), NOW),
            (ContainerRestarted, Some(2), 16_000),
        ]
    );
    let keys: std::collections::HashSet<_> = rows.iter().map(|r| (r.kind, r.seq)).collect();
    assert_eq!(keys.len(), rows.len(), "distinct idempotency keys");
    let waiting = rows.iter().find(|r| r.kind == ContainerWaiting).unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap()
            .starts_with("back-off 10s")
    );
    assert!(rows.iter().all(|r| !r.inferred), "all seen live");
    // A recorder that first sees the last state (a restart that lost its cache) writes
    // only keys the live recorder wrote too, so the unique index drops them.
    let again = pod_transitions(None, old.as_ref().unwrap(), Observation::inferred(NOW));
    for r in again.iter().filter(|r| r.container.is_some()) {
        assert!(keys.contains(&(r.kind, r.seq)), "{r:?} is a new key");
    }
}

#[test]
fn waiting_reasons_repeat_per_run_and_the_pull_retry_alternation_keeps_one_key_each() {
    let waiting = |reason: &str| {
        with(ContainerState {
            waiting: Some(Box::new(Waiting {
                reason: reason.into(),
                message: None,
            })),
            ..app(0)
        })
    };
    let pulls = ["ErrImagePull", "ImagePullBackOff", "ErrImagePull"].map(waiting);
    let mut seqs = Vec::new();
    let mut old: Option<PodState> = None;
    for new in &pulls {
        for r in pod_transitions(old.as_ref(), new, Observation::live(NOW)) {
            if r.kind == ContainerWaiting {
                seqs.push((r.reason.clone().unwrap(), r.seq));
            }
        }
        old = Some(new.clone());
    }
    assert_eq!(seqs.len(), 3);
    assert_ne!(seqs[0].1, seqs[1].1);
    assert_eq!(seqs[0].1, seqs[2].1, "same reason, same run: one row");
    assert_ne!(
        waiting_seq("app", 1, "CrashLoopBackOff"),
        waiting_seq("app", 2, "CrashLoopBackOff"),
        "entering the same reason after another run is a new row"
    );
}

#[test]
fn restarts_inside_a_gap_are_bounded_by_status_times_and_stay_in_order() {
    let old = with(running_run(0, 3_000, None));
    // Two restarts later: run 2 runs since 9_500; lastState is run 1 (7_000 .. 9_000).
    let new = with(running_run(2, 9_500, Some((7_000, 9_000))));
    let rows = pod_transitions(Some(&old), &new, Observation::inferred(NOW));
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.kind, r.restart_count, r.at_ms))
        .collect();
    assert_eq!(
        got,
        vec![
            // Run 0's end is unknown: no later than run 1's start.
            (ContainerTerminated, Some(0), 7_000),
            (ContainerRestarted, Some(1), 7_000),
            (ContainerTerminated, Some(1), 9_000),
            (ContainerRestarted, Some(2), 9_000),
        ]
    );
    assert!(rows.iter().all(|r| r.at_ms < NOW), "never dated now");
}

#[test]
fn restarts_before_the_first_list_are_one_row_that_carries_the_count() {
    let new = with(running_run(5, 9_500, Some((7_000, 9_000))));
    let rows = pod_transitions(None, &new, Observation::inferred(NOW));
    let got: Vec<_> = container_rows(&rows);
    assert_eq!(
        got,
        vec![
            (ContainerTerminated, container_seq("app", 4), 9_000),
            (ContainerRestarted, container_seq("app", 5), 9_000),
        ]
    );
    let restart = rows.iter().find(|r| r.kind == ContainerRestarted).unwrap();
    assert_eq!(restart.restart_count, Some(5));
}

#[test]
fn a_run_keeps_its_number_by_container_id_when_the_kubelet_renumbers_last_state() {
    // The runtime lost run 2's container: the kubelet keeps the old lastState (run 1) and
    // restartCount, and reports the default waiting state; the projection would number
    // lastState as run 1 here, but a status could as well put it under another count.
    let old = with(running_run(2, 9_500, Some((7_000, 9_000))));
    let mut new = with(ContainerState {
        last_terminated: ended(7, 7_000, 9_000).map(|mut t| {
            t.id = 1001;
            t
        }),
        ..app(2)
    });
    carry_runs(Some(&old), &mut new);
    assert_eq!(new.containers[0].last_terminated.as_ref().unwrap().run, 1);
    let rows = pod_transitions(Some(&old), &new, Observation::live(NOW));
    assert!(
        rows.iter().all(|r| r.kind != ContainerTerminated),
        "{rows:?}"
    );
}

#[test]
fn a_pod_bound_at_creation_is_scheduled_at_its_creation() {
    let mut bound = pod().running(3_000);
    bound.node = Some("n1".into());
    let rows = pod_transitions(None, &bound, Observation::inferred(NOW));
    assert_eq!(
        kinds_and_times(&rows),
        vec![(Created, 1_000), (Scheduled, 1_000), (Started, 3_000)]
    );
}

#[test]
fn started_is_the_first_app_container_start_not_the_admission_time() {
    let mut p = pod().scheduled(2_000).running(6_000);
    p.start_time_ms = Some(2_500).into(); // admitted; images pulled and init containers ran since
    let rows = pod_transitions(Some(&pod().scheduled(2_000)), &p, Observation::live(NOW));
    assert_eq!(kinds_and_times(&rows), vec![(Started, 6_000)]);
    // A pod first seen after its container restarted: run 0's start is gone, startTime
    // is the fallback.
    let restarted = p.clone().restarted("app", 2, 8_000, "Error", 1);
    assert_eq!(restarted.started_at_ms(), Some(2_500));
}

#[test]
fn a_pod_first_seen_in_its_second_back_off_is_started_at_admission_marked_inferred() {
    // Run 1 ended at 8_000 and the kubelet waits: lastState is run 1, run 0's start is gone.
    let mut second = with(backoff(1, 7_000, 8_000));
    second.start_time_ms = Some(2_500).into();
    // Bounded, not known, whether a list or a watch event (a pod entering the scope mid crash
    // loop) shows it first.
    for obs in [Observation::inferred(NOW), Observation::live(NOW)] {
        let rows = pod_transitions(None, &second, obs);
        let started = rows.iter().find(|r| r.kind == Started).unwrap();
        assert_eq!(started.at_ms, 2_500);
        assert!(started.inferred, "{started:?}");
        assert!(
            started
                .message
                .as_deref()
                .is_some_and(|m| m.contains("first run's start") && m.contains("startTime")),
            "{started:?}"
        );
    }
    // In its first back-off, lastState still is run 0, with its start: known.
    let mut first = with(backoff(0, 3_000, 5_000));
    first.start_time_ms = Some(2_500).into();
    let rows = pod_transitions(None, &first, Observation::live(NOW));
    let started = rows.iter().find(|r| r.kind == Started).unwrap();
    assert_eq!(
        (started.at_ms, started.inferred, started.message.as_deref()),
        (3_000, false, None)
    );
}

#[test]
fn inferred_rows_show_the_phase_at_their_moment() {
    let running = pod().scheduled(2_000).running(3_000).ready(4_000);
    let rows = pod_transitions(None, &running, Observation::inferred(NOW));
    let phases: Vec<_> = rows
        .iter()
        .map(|r| (r.kind, r.phase_before, r.phase_after))
        .collect();
    use Phase::*;
    assert_eq!(
        phases,
        vec![
            (Created, None, Some(Pending)),
            (Scheduled, Some(Pending), Some(Pending)),
            (Started, Some(Pending), Some(Running)),
            (Ready, Some(Running), Some(Running)),
        ]
    );
}

#[test]
fn a_watched_deletion_is_live_and_not_back_dated_to_the_deletion_timestamp() {
    let mut held = pod().scheduled(2_000).running(3_000);
    held.deletion_at_ms = Some(40_000).into(); // a finalizer held it long past this
    held.deletion_grace_secs = Some(30).into();
    let row = pod_deleted(&held, Observation::live(NOW), Gone::Watched);
    assert_eq!((row.at_ms, row.inferred, row.message), (NOW, false, None));
    // Even replayed after a reconnect it is when we saw it, not "not watching".
    let row = pod_deleted(&held, Observation::inferred(NOW), Gone::Watched);
    assert_eq!((row.at_ms, row.inferred), (NOW, true));
    assert!(!row.message.unwrap().contains("not watching"));
}

#[test]
fn catch_up_after_a_reconnect_is_decided_by_resource_version_not_by_the_clock() {
    let mut c = Inferring::default();
    assert!(!c.observe(Some(5), NOW).inferred);
    c.failed();
    assert!(c.observe(Some(6), NOW).inferred, "horizon not known yet");
    c.horizon(10);
    assert!(
        c.observe(Some(9), NOW).inferred,
        "replayed: before the horizon"
    );
    assert!(c.observe(Some(10), NOW).inferred);
    assert!(!c.observe(Some(11), NOW).inferred, "past the horizon: live");
    // However late the next event comes, it is live: the inferred events are over.
    assert!(!c.observe(Some(12), NOW + 3_600_000).inferred);
    c.failed();
    c.reconciled();
    assert!(!c.observe(Some(13), NOW).inferred, "a relist reconciles");
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

/// A pod with one plain init container and one app container, each with declared
/// resources; `app_actuated` is what the kubelet reports for the app container.
fn resizable(app: ResourceQuad, app_actuated: Option<ResourceQuad>) -> PodState {
    use super::super::state::{ContainerResize, PodResize};
    let mut p = pod().scheduled(2_000).running(3_000);
    p.resize_kept = Some(std::sync::Arc::new(PodResize {
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
    let rz = std::sync::Arc::make_mut(p.resize_kept.as_mut().unwrap());
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

/// A running pod with one app container and nothing else, its state built the way the
/// projection builds it: `set_resize` keeps the resize state only when it must.
fn plain(app: ResourceQuad, actuated: ResourceQuad) -> PodState {
    use super::super::state::{ContainerResize, PodResize};
    let mut p = pod().scheduled(2_000).running(3_000);
    // The scheduler's view: per resource the larger of desired and actuated.
    let most: Vec<i64> = app.iter().zip(&actuated).map(|(a, b)| *a.max(b)).collect();
    p.resources = crate::model::Effective {
        requests: Resources::new(most[0], most[1]),
        limits: Resources::new(most[2], most[3]),
    };
    p.set_resize(Some(std::sync::Arc::new(PodResize {
        containers: vec![ContainerResize {
            name: "app".into(),
            desired: app,
            reported: true,
            actuated_other: (actuated != app).then(|| Box::new(actuated)),
        }],
        ..Default::default()
    })));
    p
}

#[test]
fn a_plain_pod_keeps_no_resize_state_and_its_resizes_are_still_recorded() {
    let settled = plain(SMALL, SMALL);
    assert!(settled.resize_kept.is_none(), "nothing to keep");
    assert_eq!(settled.resize().unwrap().containers[0].desired, SMALL);
    let asked = plain(BIG, SMALL);
    assert!(
        asked.resize_kept.is_some(),
        "desired and actuated differ: kept"
    );
    let applied = plain(BIG, BIG);
    assert!(applied.resize_kept.is_none());
    let rows = |old: &PodState, new: &PodState| -> Vec<_> {
        pod_transitions(Some(old), new, Observation::live(NOW))
            .into_iter()
            .map(|r| (r.kind, r.container, r.message.unwrap_or_default()))
            .collect()
    };
    let change = "container app: cpu request 250m -> 500m, cpu limit 500m -> 1".to_string();
    let app = Some("app".to_string());
    assert_eq!(
        rows(&settled, &asked),
        vec![(ResizeRequested, app.clone(), change.clone())]
    );
    assert_eq!(
        rows(&asked, &applied),
        vec![(Resized, app.clone(), change.clone())]
    );
    // Both ends plain (a relist after a gap): both rows, from the effective requests.
    assert_eq!(
        rows(&settled, &applied),
        vec![
            (ResizeRequested, app.clone(), change.clone()),
            (Resized, app, change)
        ]
    );
}
