//! The comparison that tests/e2e_cluster.rs makes between the recorder's export and the
//! audit-log truth, tested on its own (no cluster needed): the cases where matching rows to
//! truth lines is subtle, each from a real failing run, with the rows it must still reject.
//! A comparison that accepted anything would make the cluster test pass without meaning.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/e2e.rs"]
mod e2e;

use cluster::{Exported, Gap, StatusHistory, Truth, compare, compare_with};

const POD: &str = "crashy";

/// A truth line of pod POD; container kinds are about container `app`.
fn said(kind: &str, at_ms: i64, write_ms: i64) -> Truth {
    let container = kind.starts_with("container_");
    let (reason, exit_code) = match kind {
        "container_terminated" => ("Error", Some(1)),
        "container_waiting" => ("CrashLoopBackOff", None),
        _ => ("", None),
    };
    Truth {
        subject: "pod".into(),
        uid: POD.into(),
        namespace: "shop".into(),
        name: POD.into(),
        node: "kw-b".into(),
        kind: kind.into(),
        container: if container {
            "app".into()
        } else {
            String::new()
        },
        reason: reason.into(),
        exit_code,
        at_ms,
        timing: if kind == "container_waiting" {
            "observed"
        } else {
            "status"
        }
        .into(),
        write_ms,
    }
}

/// The exported row that would match `t`, at `at_ms`.
fn row_for(t: &Truth, at_ms: i64, inferred: bool) -> Exported {
    Exported {
        subject: t.subject.clone(),
        uid: t.uid.clone(),
        pod: t.name.clone(),
        kind: t.kind.clone(),
        at_ms,
        observed_at_ms: at_ms,
        container: t.container.clone(),
        reason: t.reason.clone(),
        exit_code: t.exit_code,
        inferred,
    }
}

/// The failing run of a_recorder_that_starts_during_a_crash_loop_records_each_run_once: the
/// earlier CrashLoopBackOff waits inside the first-list gap took, oldest first, the row
/// recovered at the list and then the live row of the wait after it, which came out missing.
/// The [`StatusHistory`] of an audit log holding one successful status patch of pod POD per
/// `(stageTimestamp, status)`.
fn history_of(writes: &[(&str, serde_json::Value)]) -> StatusHistory {
    let lines: Vec<String> = writes
        .iter()
        .map(|(write, status)| {
            serde_json::json!({
                "stage": "ResponseComplete", "verb": "patch", "stageTimestamp": write,
                "objectRef": {"resource": "pods", "subresource": "status", "name": POD},
                "responseStatus": {"code": 200},
                "responseObject": {"metadata": {"uid": POD}, "status": status}
            })
            .to_string()
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let audit = dir.path().join("audit.log");
    std::fs::write(&audit, lines.join("\n")).expect("write the audit log");
    StatusHistory::read(&audit)
}

#[test]
fn a_live_row_is_not_taken_by_an_earlier_transition_inside_a_gap() {
    let gaps = [Gap::new(0, 103_748, "before this recorder's first list")];
    let truth: Vec<Truth> = [95_536, 99_069, 103_608, 110_900]
        .map(|at| said("container_waiting", at, at))
        .into();
    let rows = [
        row_for(&truth[2], 103_728, true),
        row_for(&truth[3], 110_910, false),
    ];
    let result = compare(&truth, &rows, &gaps);
    assert!(result.is_exact(), "{}", result.report_with(&rows));
    assert_eq!((result.matched, result.missed_in_gap.len()), (2, 2));
}

/// A pod first listed in its third back-off: status holds run 2 in lastState (started 101_000,
/// ended 103_000) and status.startTime (91_000), nothing of runs 0 and 1.
fn first_listed_mid_crash_loop() -> (Vec<Truth>, Vec<Exported>) {
    let truth = vec![
        said("created", 91_000, 91_171),
        said("scheduled", 91_000, 91_495),
        said("started", 93_000, 93_016),
        said("container_terminated", 95_000, 95_026),
        said("container_restarted", 95_000, 96_548),
        said("container_terminated", 98_000, 98_560),
        said("container_restarted", 98_000, 101_078),
        said("container_terminated", 103_000, 103_094),
    ];
    let rows = vec![
        row_for(&truth[0], 91_000, true),
        row_for(&truth[1], 91_000, true),
        // status.startTime: the first run's start is gone.
        row_for(&truth[2], 91_000, true),
        // run 2's startedAt: run 1's end is gone; the row carries the count.
        row_for(&truth[6], 101_000, true),
        row_for(&truth[7], 103_000, true),
    ];
    (truth, rows)
}

#[test]
fn a_pod_first_seen_mid_crash_loop_may_be_dated_within_what_status_still_proves() {
    let (truth, rows) = first_listed_mid_crash_loop();
    let gaps = [Gap::new(0, 103_748, "before this recorder's first list")];
    let result = compare(&truth, &rows, &gaps);
    assert!(result.is_exact(), "{}", result.report_with(&rows));
    // Runs 0 and 1 ended and restart 1 happened unseen, and status no longer shows them.
    assert_eq!((result.matched, result.missed_in_gap.len()), (5, 3));

    // Only inferred rows, only within the bounds, only for a pod first seen after the gap.
    let with = |index: usize, at_ms: i64, inferred: bool| {
        let mut rows = rows.clone();
        rows[index].at_ms = at_ms;
        rows[index].inferred = inferred;
        rows
    };
    for (why, rows, gaps) in [
        ("a started row not inferred", with(2, 91_000, false), gaps),
        (
            "started before the pod was bound",
            with(2, 90_999, true),
            gaps,
        ),
        (
            "started after the first run started",
            with(2, 93_001, true),
            gaps,
        ),
        ("a restart before any happened", with(3, 94_999, true), gaps),
        (
            "a restart after its run ended",
            with(3, 103_001, true),
            gaps,
        ),
        (
            "a pod the recorder saw created",
            rows.clone(),
            [Gap::new(92_000, 103_748, "a restart of the recorder")],
        ),
    ] {
        let result = compare(&truth, &rows, &gaps);
        assert!(!result.is_exact(), "{why}: accepted\n{}", result.report());
    }
}

/// A Job pod that became ready and failed inside the API server outage: after the relist its
/// Ready condition shows only the flip back (False, 755_000); the recorder dates the flip to
/// ready by it, inferred. A row outside [754_000, 755_000], or one not inferred, is not that.
#[test]
fn a_flip_and_flip_back_inside_one_gap_may_be_dated_by_the_flip_back() {
    let gaps = [Gap::new(749_442, 756_433, "API server restart")];
    let truth = vec![
        said("ready", 754_000, 754_770),
        said("unready", 755_000, 755_789),
    ];
    let rows = |ready_at: i64, inferred: bool| {
        vec![
            row_for(&truth[0], ready_at, inferred),
            row_for(&truth[1], 755_000, true),
        ]
    };
    let result = compare(&truth, &rows(755_000, true), &gaps);
    assert!(result.is_exact(), "{}", result.report());
    for (why, rows) in [
        ("not inferred", rows(755_000, false)),
        ("after the flip back", rows(755_001, true)),
        ("before the flip", rows(753_999, true)),
    ] {
        assert!(!compare(&truth, &rows, &gaps).is_exact(), "{why}: accepted");
    }
}

/// kwok's start stage failed while the API server was down; its retry wrote startedAt and
/// Ready at 17:05:53, and a replay of the stage rewrote both to 17:05:55 (same containerID)
/// before the recorder relisted. The audit truth keeps the first write; the recorder can only
/// know the second, and that is accepted only because the audit log shows the rewrite.
#[test]
fn a_start_rewritten_by_a_replayed_kwok_stage_inside_a_gap_may_carry_the_rewritten_time() {
    let started = |at: &str| {
        serde_json::json!({
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at}],
            "containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"running": {"startedAt": at}}}]})
    };
    let history = history_of(&[
        ("2026-12-01T17:05:54.772Z", started("2026-12-01T17:05:53Z")),
        ("2026-12-01T17:05:55.606Z", started("2026-12-01T17:05:55Z")),
    ]);
    let ms = e2e::parse_ms;
    let (first, rewritten) = (ms("2026-12-01T17:05:53Z"), ms("2026-12-01T17:05:55Z"));
    let written = ms("2026-12-01T17:05:54.772Z");
    let truth = vec![
        said("started", first, written),
        said("ready", first, written),
    ];
    let rows: Vec<Exported> = truth.iter().map(|t| row_for(t, rewritten, true)).collect();
    let gaps = [Gap::new(
        written - 5_000,
        written + 1_000,
        "API server restart",
    )];
    let result = compare_with(&truth, &rows, &gaps, &history);
    assert!(result.is_exact(), "{}", result.report());
    assert!(
        !compare(&truth, &rows, &gaps).is_exact(),
        "without the audit log"
    );
    // The rewrite came after the gap: the recorder saw the first time, and must have kept it.
    let before = [Gap::new(
        written - 5_000,
        written + 500,
        "API server restart",
    )];
    assert!(!compare_with(&truth, &rows, &before, &history).is_exact());
}

/// A CronJob pod completed while the API server restarted: kwok wrote Succeeded with the
/// container's finishedAt 17:10:06, then a replay of its stage rewrote finishedAt to 17:10:09
/// (same containerID) before the recorder relisted (a real run under `stress-ng --cpu 2`). The
/// recorder can only know 17:10:09, for the termination and for `succeeded`; that is accepted
/// because the audit log shows the rewrite, and only for the container it names.
#[test]
fn a_completion_rewritten_by_a_replayed_kwok_stage_inside_a_gap_may_carry_the_rewritten_time() {
    let completed = |finished: &str| {
        serde_json::json!({
            "phase": "Succeeded",
            "containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                    "containerID": "containerd://8a", "finishedAt": finished}}}]})
    };
    let history = history_of(&[
        (
            "2026-12-03T17:10:08.477Z",
            completed("2026-12-03T17:10:06Z"),
        ),
        (
            "2026-12-03T17:10:09.342Z",
            completed("2026-12-03T17:10:09Z"),
        ),
    ]);
    let ms = e2e::parse_ms;
    let (first, rewritten) = (ms("2026-12-03T17:10:06Z"), ms("2026-12-03T17:10:09Z"));
    let written = ms("2026-12-03T17:10:08.477Z");
    let mut terminated = said("container_terminated", first, written);
    (terminated.reason, terminated.exit_code) = ("Completed".into(), Some(0));
    let truth = vec![terminated, said("succeeded", first, written)];
    let rows: Vec<Exported> = truth.iter().map(|t| row_for(t, rewritten, true)).collect();
    let gaps = [Gap::new(
        written - 6_000,
        written + 2_000,
        "API server restart",
    )];
    let result = compare_with(&truth, &rows, &gaps, &history);
    assert!(result.is_exact(), "{}", result.report());
    assert!(
        !compare(&truth, &rows, &gaps).is_exact(),
        "without the audit log"
    );
    // Another container's termination at the rewritten time is not this one's.
    let mut other = rows.clone();
    other[0].container = "sidecar".into();
    let mut other_truth = truth.clone();
    other_truth[0].container = "sidecar".into();
    assert!(
        !compare_with(&other_truth, &other, &gaps, &history).is_exact(),
        "a rewrite of container app accepted for container sidecar"
    );
    // The rewrite came after the gap: the recorder saw the first time, and must have kept it.
    let before = [Gap::new(
        written - 6_000,
        written + 500,
        "API server restart",
    )];
    assert!(!compare_with(&truth, &rows, &before, &history).is_exact());
}
