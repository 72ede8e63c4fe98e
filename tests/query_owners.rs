//! `kubetrail query workloads`, `export workloads`, `query pods|events --owner` and
//! `query history KIND/NAME` run as a user would, against the fixture scenario (see
//! `common/fixture.rs`; its figures are worked out by hand below) and a small rollout written
//! through the real writer; and an unknown owner kind is a usage error that lists the known ones.

#[path = "common/fixture.rs"]
mod fixture;

use fixture::{
    FixtureDb, HOUR, MIN, SEC, T0, kubetrail, parse_csv, parse_json, pod, rfc3339, scenario,
};
use kubetrail::model::event::{EventType, RegardingKind};
use kubetrail::model::owner::OwnerKind;
use kubetrail::store::{Batch, EventRow, OwnerRow};
use serde_json::Value;

fn rs(uid: &str, name: &str, revision: i64, image: &str, spec: i64, at_ms: i64) -> OwnerRow {
    OwnerRow {
        uid: uid.into(),
        kind: OwnerKind::ReplicaSet,
        namespace: "shop".into(),
        name: name.into(),
        controller_kind: Some("Deployment".into()),
        controller_name: Some("frontend".into()),
        revision: Some(revision),
        template_hash: Some(name.trim_start_matches("frontend-").into()),
        images: image.into(),
        created_at_ms: T0 + (revision - 1) * HOUR,
        deleted_at_ms: None,
        spec_replicas: Some(spec),
        status_replicas: Some(spec),
        observed_at_ms: at_ms,
    }
}

/// `shop/frontend`: revision 1 (`frontend-aaa`, nginx:1.27) runs `frontend-aaa-1` from T0; at
/// 1h revision 2 (`frontend-bbb`, nginx:1.28) scales up to 1 and runs `frontend-bbb-1`, and
/// `frontend-aaa` scales down to 0; `frontend-aaa-1` is deleted at 1h+30s. Events: Pulled
/// about `frontend-bbb-1` at 1h+5s, BackOff about the bare pod `frontend` at 2h.
fn rollout() -> FixtureDb {
    let db = FixtureDb::new();
    db.write(&Batch {
        owners: vec![rs("u1", "frontend-aaa", 1, "nginx:1.27", 1, T0)],
        pods: vec![
            pod("p1", "shop", "frontend-aaa-1", T0)
                .owner("ReplicaSet", "frontend-aaa")
                .started(T0 + 5 * SEC)
                .build(),
            pod("bare", "shop", "frontend", T0).build(),
        ],
        ..Batch::default()
    });
    db.write(&Batch {
        owners: vec![
            rs("u2", "frontend-bbb", 2, "nginx:1.28", 1, T0 + HOUR),
            rs(
                "u1",
                "frontend-aaa",
                1,
                "nginx:1.27",
                0,
                T0 + HOUR + 20 * SEC,
            ),
        ],
        pods: vec![
            pod("p2", "shop", "frontend-bbb-1", T0 + HOUR)
                .owner("ReplicaSet", "frontend-bbb")
                .started(T0 + HOUR + 10 * SEC)
                .build(),
            pod("p1", "shop", "frontend-aaa-1", T0)
                .owner("ReplicaSet", "frontend-aaa")
                .started(T0 + 5 * SEC)
                .deleted(T0 + HOUR + 30 * SEC)
                .build(),
        ],
        events: vec![
            event("e1", "p2", "frontend-bbb-1", "Pulled", T0 + HOUR + 5 * SEC),
            event("e2", "bare", "frontend", "BackOff", T0 + 2 * HOUR),
        ],
        ..Batch::default()
    });
    db
}

fn event(uid: &str, pod_uid: &str, pod: &str, reason: &str, at_ms: i64) -> EventRow {
    EventRow {
        uid: uid.into(),
        regarding_kind: RegardingKind::Pod,
        regarding_uid: Some(pod_uid.into()),
        namespace: Some("shop".into()),
        name: pod.into(),
        container: None,
        reason: Some(reason.into()),
        event_type: Some(EventType::Normal),
        note: None,
        reporting_controller: Some("kubelet".into()),
        count: 1,
        first_seen_ms: at_ms,
        last_seen_ms: at_ms,
    }
}

fn json(args: &[&str], db: &FixtureDb) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json", "--db", db.path_str()]);
    parse_json(kubetrail(&all).ok())
}

fn names(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|r| r["name"].as_str().unwrap()).collect()
}

#[test]
fn workloads_count_pods_restarts_oomkills_failures_evictions_and_pending_time() {
    let db = scenario();
    let rows = json(&["query", "workloads"], &db);
    let line = |ns: &str, kind: &str, name: &str| -> Vec<i64> {
        let w = rows
            .iter()
            .find(|w| w["namespace"] == ns && w["kind"] == kind && w["name"] == name)
            .unwrap_or_else(|| panic!("no {ns} {kind}/{name} in {rows:?}"));
        [
            "pods",
            "restarts",
            "oom_kills",
            "failures",
            "evictions",
            "pending_ms",
        ]
        .iter()
        .map(|f| w[*f].as_i64().unwrap())
        .collect()
    };
    assert_eq!(rows.len(), 4, "{rows:?}");
    // web-0-a: pending 10s, OOMKilled and failed; web-0-b: pending 10s, restarted twice.
    assert_eq!(
        line("shop", "StatefulSet", "web"),
        [2, 2, 1, 1, 0, 20 * SEC]
    );
    assert_eq!(line("batch", "Job", "job"), [1, 0, 0, 0, 0, MIN]);
    // A pod without an owner is its own workload.
    assert_eq!(line("shop", "Pod", "cache-1"), [1, 0, 0, 0, 1, MIN]);
    assert_eq!(line("other", "Pod", "web-0"), [1, 0, 0, 0, 0, HOUR]);

    // Over a window: only what happened inside it (from 1h30m: web-0-b's two restarts, and
    // other/web-0 pending its whole hour).
    let since = rfc3339(T0 + HOUR + 30 * MIN);
    let rows = json(&["query", "workloads", "--since", &since], &db);
    let got: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|w| {
            (
                format!(
                    "{}/{}",
                    w["kind"].as_str().unwrap(),
                    w["name"].as_str().unwrap()
                ),
                w["restarts"].as_i64().unwrap(),
                w["pending_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Pod/web-0".to_string(), 0, HOUR),
            ("StatefulSet/web".to_string(), 2, 0)
        ]
    );

    // export workloads: the same rows as CSV, in machine units.
    let out = kubetrail(&["export", "workloads", "-n", "shop", "--db", db.path_str()]);
    let (header, records) = parse_csv(out.ok());
    assert_eq!(
        header,
        [
            "namespace",
            "kind",
            "name",
            "pods",
            "restarts",
            "oom_kills",
            "failures",
            "evictions",
            "pending_ms"
        ]
    );
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1],
        [
            "shop",
            "StatefulSet",
            "web",
            "2",
            "2",
            "1",
            "1",
            "0",
            "20000"
        ]
    );
}

#[test]
fn pods_and_events_by_owner_follow_the_chain_from_deployment_to_replicasets() {
    let db = rollout();
    let pods = json(&["query", "pods", "--owner", "deployment/frontend"], &db);
    assert_eq!(names(&pods), ["frontend-aaa-1", "frontend-bbb-1"]);
    let pods = json(&["query", "pods", "--owner", "rs/frontend-bbb"], &db);
    assert_eq!(names(&pods), ["frontend-bbb-1"]);
    let pods = json(&["query", "pods", "--owner", "pod/frontend"], &db);
    assert_eq!(names(&pods), ["frontend"], "the bare pod of that name");
    let pods = json(
        &[
            "query",
            "pods",
            "--owner",
            "deployment/frontend",
            "-n",
            "other",
        ],
        &db,
    );
    assert!(pods.is_empty());
    let out = kubetrail(&[
        "export",
        "pods",
        "--owner",
        "deploy/frontend",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(parse_csv(out.ok()).1.len(), 2);
    let events = json(&["query", "events", "--owner", "deployment/frontend"], &db);
    let reasons: Vec<&str> = events
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["Pulled"]);
    let events = json(&["query", "events", "--owner", "pod/frontend"], &db);
    assert_eq!(names(&events), ["frontend"]);
    // Workloads resolve ReplicaSets to their Deployment.
    let rows = json(&["query", "workloads"], &db);
    let kinds: Vec<String> = rows
        .iter()
        .map(|w| {
            format!(
                "{}/{}={}",
                w["kind"].as_str().unwrap(),
                w["name"].as_str().unwrap(),
                w["pods"]
            )
        })
        .collect();
    assert_eq!(kinds, ["Deployment/frontend=2", "Pod/frontend=1"]);
}

#[test]
fn history_of_a_deployment_shows_its_rollout_and_its_pods_in_time_order() {
    let db = rollout();
    let lines = json(&["query", "history", "deployment/frontend"], &db);
    let got: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{} {} {} rev={} img={} spec={}",
                (l["at_ms"].as_i64().unwrap() - T0) / SEC,
                l["name"].as_str().unwrap(),
                l["change"].as_str().unwrap(),
                l["revision"],
                l["images"].as_str().unwrap_or("-"),
                l["spec_replicas"],
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "0 frontend-aaa created rev=1 img=nginx:1.27 spec=null",
            "0 frontend-aaa replicas rev=1 img=nginx:1.27 spec=1",
            "0 frontend-aaa-1 created rev=null img=- spec=null",
            "5 frontend-aaa-1 started rev=null img=- spec=null",
            "3600 frontend-bbb created rev=2 img=nginx:1.28 spec=null",
            "3600 frontend-bbb replicas rev=2 img=nginx:1.28 spec=1",
            "3600 frontend-bbb-1 created rev=null img=- spec=null",
            "3610 frontend-bbb-1 started rev=null img=- spec=null",
            "3620 frontend-aaa scaled_down rev=1 img=nginx:1.27 spec=0",
            "3630 frontend-aaa-1 deleted rev=null img=- spec=null",
        ]
    );
    let table = kubetrail(&["query", "history", "deploy/frontend", "--db", db.path_str()]);
    let text = table.ok();
    assert!(text.contains("replicaset/frontend-bbb"), "{text}");
    assert!(
        text.contains("revision=2 hash=bbb images=nginx:1.28"),
        "{text}"
    );
    let missing = kubetrail(&[
        "query",
        "history",
        "deployment/nothing",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("deployment/nothing"),
        "{}",
        missing.stderr
    );
}

#[test]
fn an_unknown_owner_kind_is_a_usage_error_that_lists_the_known_ones() {
    let db = rollout();
    for args in [
        vec!["query", "pods", "--owner", "rollout/frontend"],
        vec!["query", "events", "--owner", "rollout/frontend"],
        vec!["export", "pods", "--owner", "rollout/frontend"],
        vec!["query", "history", "rollout/frontend"],
    ] {
        let mut all = args.clone();
        all.extend(["--db", db.path_str()]);
        let run = kubetrail(&all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("\"rollout\""),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("deployment, replicaset, statefulset, daemonset, cronjob, job, pod"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let run = kubetrail(&[
        "query",
        "pods",
        "--owner",
        "frontend",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("KIND/NAME"), "{}", run.stderr);
}
