//! `kubetrail record` against a real cluster whose behaviour nobody here wrote: kube-apiserver
//! v1.35 and etcd, the real kube-scheduler and kube-controller-manager, and kwok kubelets that
//! play e2e/kwok/stages.yaml (image pulls that take time and fail, init containers in order,
//! sidecars, crash loops with back-off, OOM kills, flapping readiness, graceful and
//! finalizer-held deletes, a node that goes NotReady and has its pods evicted). Workloads are
//! applied with kubectl from e2e/kwok/workloads.yaml. The truth is the API server's audit log,
//! turned into transitions by e2e/controlplane/cmd/audittruth (Go, from the Kubernetes objects,
//! sharing no code with the recorder).
//!
//! The recorder is killed with -9 and restarted mid-run, and its watches are cut by an API
//! server restart with an etcd compaction in between (a forced 410). Afterwards
//! `kubetrail export transitions` must hold every transition the audit log shows, once, at the
//! object's own time (status-timed kinds) or within 1 s (observed kinds), and nothing else; and
//! each node's requested sum must equal the sum over the pods the scheduler bound there.
//!
//! They are `#[ignore]`d: a plain `cargo test` lists them as ignored, and scripts/test runs them
//! with `--include-ignored` once it has built the control plane; run without KUBETRAIL_E2E_BIN
//! they fail, never pass.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "common/recorder.rs"]
mod recorder;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cluster::{
    Cluster, Comparison, Exported, Gap, NodeRequests, StatusHistory, Truth, compare_with,
    export_transitions, settle,
};
use e2e::{now_ms, serial, wait_until};
use recorder::RecorderProcess;

const LISTED: &str = "initial list of pods and nodes done";
const STEP: Duration = Duration::from_secs(120);

/// A node's requested sums over a window, as `kubetrail query nodes -o json` reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RecordedRequests {
    cpu_avg_millis: i64,
    cpu_peak_millis: i64,
    memory_avg_bytes: i64,
    memory_peak_bytes: i64,
}

/// What one run of the scenario left behind, shared by the tests below.
struct Run {
    /// A second recorder, started with an empty database while a pod is in CrashLoopBackOff.
    late: Vec<Exported>,
    late_gaps: Vec<Gap>,
    /// The audit-log truth read after the late recorder stopped. `truth` was read earlier,
    /// and the cluster is never quite still (a pod's readiness flaps on), so the late
    /// recorder's last rows may be newer than `truth`.
    late_truth: Vec<Truth>,
    /// A third recorder with `-l tier=old`, which the test relabels a pod out of.
    scoped: Vec<Exported>,
    scoped_gaps: Vec<Gap>,
    relabelled_ms: i64,
    truth: Vec<Truth>,
    /// The times pods' status carried, write by write (kwok's replayed stages rewrite them).
    history: StatusHistory,
    exported: Vec<Exported>,
    gaps: Vec<Gap>,
    result: Comparison,
    /// Per node: the truth from audittruth, and what `kubetrail query nodes` says.
    requests: Vec<(NodeRequests, Option<RecordedRequests>)>,
    recorder_log: String,
    cluster_logs: String,
    startup_secs: f64,
    secs: f64,
}

fn run() -> Option<&'static Run> {
    static RUN: OnceLock<Option<Run>> = OnceLock::new();
    RUN.get_or_init(drive).as_ref()
}

fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

fn drive() -> Option<Run> {
    let t0 = Instant::now();
    let mut c = Cluster::start()?;
    eprintln!(
        "e2e_cluster: cluster up in {:.1} s",
        c.startup.as_secs_f64()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("trail.db");
    let log = dir.path().join("record.log");
    let args = ["--watch-timeout", "3s"];

    // The recorder starts first, so it sees every node and pod being created.
    let rec = RecorderProcess::spawn(&c.cp.kubeconfig, &db, &log, &args);
    rec.wait_for_log(LISTED, Duration::from_secs(60));
    let listed = now_ms();
    let db3 = dir.path().join("scoped.db");
    let log3 = dir.path().join("scoped.log");
    let scoped_args = ["--watch-timeout", "3s", "-l", "tier=old"];
    let rec3 = RecorderProcess::spawn(&c.cp.kubeconfig, &db3, &log3, &scoped_args);
    rec3.wait_for_log(LISTED, Duration::from_secs(60));
    let listed3 = now_ms();
    c.apply("e2e/kwok/nodes.yaml");
    c.apply("e2e/kwok/workloads.yaml");
    wait_until("web and db are ready", STEP, || {
        c.jsonpath(
            &["-n", "shop", "get", "deploy", "web"],
            "{.status.readyReplicas}",
        ) == "3"
            && c.jsonpath(
                &["-n", "shop", "get", "sts", "db"],
                "{.status.readyReplicas}",
            ) == "2"
    });

    // A recorder that first sees a pod in CrashLoopBackOff.
    wait_until("crashy is in CrashLoopBackOff", STEP, || {
        c.jsonpath(
            &["-n", "shop", "get", "pods", "-l", "app=crashy"],
            "{.items[*].status.containerStatuses[0].state.waiting.reason}",
        ) == "CrashLoopBackOff"
    });
    let db2 = dir.path().join("late.db");
    let log2 = dir.path().join("late.log");
    let rec2 = RecorderProcess::spawn(&c.cp.kubeconfig, &db2, &log2, &args);
    rec2.wait_for_log(LISTED, Duration::from_secs(60));
    let listed2 = now_ms();

    // 1. kill -9 the recorder; roll web out to a new template and relabel a pod meanwhile.
    let down = now_ms();
    rec.kill_9();
    c.kubectl(&["-n", "shop", "set", "image", "deploy/web", "app=nginx:1.28"]);
    let relabelled_ms = now_ms();
    c.kubectl(&[
        "-n",
        "shop",
        "label",
        "pod",
        "relabel",
        "tier=new",
        "--overwrite",
    ]);
    let rec = RecorderProcess::spawn(&c.cp.kubeconfig, &db, &log, &args);
    wait_until("the restarted recorder listed", STEP, || {
        count(&log, LISTED) >= 2
    });
    let back = now_ms();

    // 2. A watch cut with a forced 410: the API server goes away, etcd is compacted past
    //    every watcher's resourceVersion, and the server comes back.
    //    Each recorder is away until its own relists are done: the pod and the node watch get
    //    their 410 and relist each on its own, in either order.
    let logs = [&log, &log2, &log3];
    let relisted_count = |l: &Path| (count(l, "pod relist done"), count(l, "node relist done"));
    let relists = logs.map(|l| relisted_count(l));
    let down2 = now_ms();
    c.cp.stop_apiserver();
    c.cp.bump_etcd(2);
    c.cp.compact_etcd();
    c.cp.start_apiserver();
    let mut relisted = [None; 3];
    wait_until(
        "every pod and node watch relisted after the 410",
        STEP,
        || {
            for (i, l) in logs.iter().enumerate() {
                let ((pods, nodes), (pods0, nodes0)) = (relisted_count(l), relists[i]);
                if relisted[i].is_none() && pods > pods0 && nodes > nodes0 {
                    relisted[i] = Some(now_ms());
                }
            }
            relisted.iter().all(Option::is_some)
        },
    );
    let [back2, back2_late, back2_scoped] = relisted.map(|b| b.expect("relisted"));

    // 3. A node fails (its kubelet reports NotReady: the node lifecycle controller taints it
    //    and its pods are evicted), another is cordoned, and a finalizer holds a deleted pod.
    c.kubectl(&["label", "node", "kw-c", "kubetrail.dev/node-fail=true"]);
    c.kubectl(&["cordon", "kw-b"]);
    c.kubectl(&["-n", "shop", "delete", "pod", "held", "--wait=false"]);
    wait_until("kw-c is tainted NoExecute", STEP, || {
        c.jsonpath(&["get", "node", "kw-c"], "{.spec.taints[*].effect}")
            .contains("NoExecute")
    });
    // The kubelet finished the graceful delete; only the finalizer keeps the object.
    wait_until("held is stopped and waits for its finalizer", STEP, || {
        c.jsonpath(
            &["-n", "shop", "get", "pod", "held"],
            "{.metadata.deletionGracePeriodSeconds}",
        ) == "0"
    });
    c.kubectl(&[
        "-n",
        "shop",
        "patch",
        "pod",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    wait_until("only DaemonSet pods are left on kw-c", STEP, || {
        let owners = c.jsonpath(
            &[
                "-n",
                "shop",
                "get",
                "pods",
                "--field-selector",
                "spec.nodeName=kw-c",
            ],
            "{.items[*].metadata.ownerReferences[0].kind}",
        );
        owners.split_whitespace().all(|k| k == "DaemonSet")
    });
    c.kubectl(&["label", "node", "kw-c", "kubetrail.dev/node-fail-"]);
    c.kubectl(&["uncordon", "kw-b"]);

    // 4. Wait for every workload's end state, then stop the CronJob so the cluster goes quiet.
    wait_until("the CronJob ran once", STEP, || {
        !c.jsonpath(
            &["-n", "shop", "get", "cronjob", "tick"],
            "{.status.lastSuccessfulTime}",
        )
        .is_empty()
    });
    c.kubectl(&[
        "-n",
        "shop",
        "patch",
        "cronjob",
        "tick",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    wait_until("the cluster reached its end state", STEP, || {
        let web = c.jsonpath(
            &["-n", "shop", "get", "deploy", "web"],
            "{.status.replicas} {.status.updatedReplicas} {.status.readyReplicas}",
        );
        let terminating = c.jsonpath(
            &["-n", "shop", "get", "pods"],
            "{.items[*].metadata.deletionTimestamp}",
        );
        let crashy = c.jsonpath(
            &["-n", "shop", "get", "pods", "-l", "app=crashy"],
            "{.items[*].status.containerStatuses[0].restartCount}/{.items[*].status.containerStatuses[0].state.waiting.reason}",
        );
        let hungry = c.jsonpath(
            &["-n", "shop", "get", "pod", "hungry"],
            "{.status.containerStatuses[0].restartCount}/{.status.containerStatuses[0].state.waiting.reason}",
        );
        let taints = c.jsonpath(&["get", "node", "kw-c"], "{.spec.taints}");
        let ready = c.jsonpath(
            &["get", "node", "kw-c"],
            r#"{.status.conditions[?(@.type=="Ready")].status}"#,
        );
        let jobs = c.jsonpath(
            &["-n", "shop", "get", "job", "report", "broken"],
            r#"{.items[*].status.conditions[?(@.status=="True")].type}"#,
        );
        let active = c.jsonpath(
            &["-n", "shop", "get", "cronjob", "tick"],
            "{.status.active}",
        );
        web == "3 3 3"
            && terminating.is_empty()
            && crashy == "3/CrashLoopBackOff"
            && hungry == "1/CrashLoopBackOff"
            && taints.is_empty()
            && ready == "True"
            && jobs.contains("Complete")
            && jobs.contains("Failed")
            && active.is_empty()
    });

    // 5. The export must now equal the audit-log truth.
    let gaps = vec![
        Gap::new(0, listed, "before the recorder's first list"),
        // Events the killed recorder had received but not yet committed are lost with it (its
        // write lag stays well under a second): the gap starts a second before the kill.
        Gap::new(down - 1000, back, "recorder killed with -9 and restarted"),
        Gap::new(
            down2,
            back2,
            "API server restart with an etcd compaction (410, relist)",
        ),
    ];
    let (result, truth, exported) = settle(&c, &db, &gaps, Duration::from_secs(60));

    // 6. Requested sums at this quiet checkpoint: a window of at least one whole second in
    //    which nothing changes. The recorder stops first, cleanly: its session then covers the
    //    window (a running recorder's covered time ends at its last heartbeat, which may be
    //    older than the window, and a report counts only covered time).
    let quiet_from = now_ms();
    let since_ms = (quiet_from / 1000 + 1) * 1000;
    wait_until("a whole second of quiet", Duration::from_secs(10), || {
        now_ms() >= since_ms + 1000
    });
    let quiet_to = now_ms();
    let status = rec.stop();
    assert!(
        status.success(),
        "recorder exit: {status:?}\n{}",
        rec_log(&log)
    );
    let recorded = recorded_requests(&db, since_ms, quiet_to);
    let requests = c
        .node_requests()
        .into_iter()
        .map(|n| {
            let r = recorded
                .iter()
                .find(|(node, _)| *node == n.node)
                .map(|&(_, r)| r);
            (n, r)
        })
        .collect();
    let late_stopped = now_ms();
    for (r, l) in [(rec2, &log2), (rec3, &log3)] {
        let status = r.stop();
        assert!(
            status.success(),
            "recorder exit: {status:?}\n{}",
            rec_log(l)
        );
    }
    let outage = |back_ms| {
        Gap::new(
            down2,
            back_ms,
            "API server restart with an etcd compaction (410, relist)",
        )
    };
    // Read after both recorders stopped, so every write they saw is in it.
    let late_truth = c.truth();
    let kept = keep_artifacts(
        &c,
        &[
            (&db, "trail.db"),
            (&log, "record.log"),
            (&db2, "late.db"),
            (&log2, "late.log"),
            (&db3, "scoped.db"),
            (&log3, "scoped.log"),
        ],
    );
    eprintln!(
        "e2e_cluster: the audit log, database and logs of this run are in {}",
        kept.display()
    );
    Some(Run {
        truth,
        history: c.status_history(),
        exported,
        gaps,
        result,
        requests,
        late: export_transitions(&db2),
        late_gaps: vec![
            Gap::new(0, listed2, "before this recorder's first list"),
            outage(back2_late),
            // A write just before the stop may not have reached the recorder yet.
            Gap::new(late_stopped - 1000, i64::MAX, "after this recorder stopped"),
        ],
        late_truth,
        scoped: export_transitions(&db3),
        scoped_gaps: vec![
            Gap::new(0, listed3, "before this recorder's first list"),
            outage(back2_scoped),
        ],
        relabelled_ms,
        recorder_log: rec_log(&log),
        cluster_logs: c.logs(),
        startup_secs: c.startup.as_secs_f64(),
        secs: t0.elapsed().as_secs_f64(),
    })
}

/// Copies what a reader of a failure needs (audit log, database, recorder and component logs)
/// to `$CARGO_TARGET_TMPDIR/e2e_cluster`, replacing the previous run's.
fn keep_artifacts(c: &Cluster, recorders: &[(&Path, &str)]) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let components = [
        (c.audit_log.as_path(), "audit.log"),
        (c.kwok_log.as_path(), "kwok.log"),
        (c.kcm_log.as_path(), "kube-controller-manager.log"),
        (c.scheduler_log.as_path(), "kube-scheduler.log"),
    ];
    for &(from, name) in components.iter().chain(recorders) {
        let _ = std::fs::copy(from, dir.join(name));
    }
    dir
}

fn rec_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

fn rfc3339(ms: i64) -> String {
    e2e::rfc3339_secs(ms.div_euclid(1000))
}

/// `kubetrail query nodes -o json` over [from, to]: per node, the requested sums.
fn recorded_requests(db: &Path, from_ms: i64, to_ms: i64) -> Vec<(String, RecordedRequests)> {
    // Whole seconds, inside the quiet window.
    let since = rfc3339(from_ms + 999);
    let until = rfc3339(to_ms);
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args([
            "query", "nodes", "-o", "json", "--step", "1h", "--since", &since, "--until", &until,
            "--db",
        ])
        .arg(db)
        .output()
        .expect("run kubetrail query nodes");
    assert!(
        out.status.success(),
        "kubetrail query nodes: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "query nodes -o json ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let rows = v.as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|r| {
            let int = |k: &str| r[k].as_i64().unwrap_or_else(|| panic!("no {k} in {r}"));
            (
                r["node"].as_str().expect("node").to_string(),
                RecordedRequests {
                    cpu_avg_millis: int("cpu_requested_avg_millis"),
                    cpu_peak_millis: int("cpu_requested_peak_millis"),
                    memory_avg_bytes: int("memory_requested_avg_bytes"),
                    memory_peak_bytes: int("memory_requested_peak_bytes"),
                },
            )
        })
        .collect()
}

#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn the_recorded_history_equals_the_audit_log_of_a_real_cluster() {
    let _one_at_a_time = serial();
    let Some(run) = run() else { return };
    eprintln!(
        "e2e_cluster: {} truth transitions, {} exported rows; cluster up in {:.1} s, scenario {:.1} s\n{}",
        run.truth.len(),
        run.exported.len(),
        run.startup_secs,
        run.secs,
        run.result.report()
    );
    if !run.result.is_exact() {
        panic!(
            "the recorded history differs from the audit-log truth (gaps {:?}):\n{}\n---- recorder log ----\n{}\n{}",
            run.gaps,
            run.result.report_with(&run.exported),
            run.recorder_log,
            run.cluster_logs
        );
    }
}

#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn node_requested_sums_equal_the_pods_the_scheduler_bound() {
    let _one_at_a_time = serial();
    let Some(run) = run() else { return };
    let mut wrong = Vec::new();
    for (truth, recorded) in &run.requests {
        let want = RecordedRequests {
            cpu_avg_millis: truth.cpu_millis,
            cpu_peak_millis: truth.cpu_millis,
            memory_avg_bytes: truth.memory_bytes,
            memory_peak_bytes: truth.memory_bytes,
        };
        if *recorded != Some(want) {
            wrong.push(format!(
                "{}: bound pods {:?} request cpu {}m memory {} B; kubetrail says {:?}",
                truth.node, truth.pods, truth.cpu_millis, truth.memory_bytes, recorded
            ));
        }
    }
    assert!(!run.requests.is_empty(), "audittruth knows no node");
    assert!(
        wrong.is_empty(),
        "node requested sums differ:\n{}",
        wrong.join("\n")
    );
}

/// The comparison is not vacuous: drop every exported row of one kind the truth has and it
/// must report exactly those transitions as missing (outside gaps) on top of whatever it
/// reported before.
#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn a_deliberate_mismatch_is_caught() {
    let _one_at_a_time = serial();
    let Some(run) = run() else { return };
    for kind in ["scheduled", "container_terminated"] {
        let kept: Vec<Exported> = run
            .exported
            .iter()
            .filter(|e| e.kind != kind)
            .cloned()
            .collect();
        assert!(
            kept.len() < run.exported.len(),
            "the export has no {kind} row to drop"
        );
        let cut = compare_with(&run.truth, &kept, &run.gaps, &run.history);
        assert!(!cut.is_exact(), "dropping every {kind} row went unnoticed");
        let new_missing: Vec<&Truth> = cut
            .missing
            .iter()
            .filter(|t| !run.result.missing.contains(t))
            .collect();
        assert!(
            !new_missing.is_empty(),
            "dropping {kind} rows added no missing transition"
        );
        assert!(
            new_missing.iter().all(|t| t.kind == kind),
            "dropping {kind} rows made other kinds missing: {new_missing:#?}"
        );
        let unexpected_of_kind = cut.unexpected.iter().filter(|e| e.kind == kind).count();
        assert_eq!(
            unexpected_of_kind, 0,
            "no {kind} row is left to be unexpected"
        );
    }
}

/// A recorder whose first list finds a pod in CrashLoopBackOff (restartCount k, lastState
/// holding run k's own termination) must record that termination once, at its finishedAt, and
/// everything after it like the others.
#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn a_recorder_that_starts_during_a_crash_loop_records_each_run_once() {
    let _one_at_a_time = serial();
    let Some(run) = run() else { return };
    let result = compare_with(&run.late_truth, &run.late, &run.late_gaps, &run.history);
    assert!(
        result.is_exact(),
        "the recorder started mid crash loop differs from the audit-log truth (gaps {:?}):\n{}",
        run.late_gaps,
        result.report_with(&run.late)
    );
}

/// With `-l tier=old`, relabelling a pod to tier=new takes it out of scope: the API server sends
/// DELETED, but the pod lives on. Every row the scoped recorder wrote must be true (no
/// `deleted`), it must say the pod left the scope, and every transition of the pod while it was
/// in scope must be there.
#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn a_pod_relabelled_out_of_the_selector_is_not_recorded_as_deleted() {
    let _one_at_a_time = serial();
    let Some(run) = run() else { return };
    let uid = run
        .truth
        .iter()
        .find(|t| t.subject == "pod" && t.name == "relabel")
        .map(|t| t.uid.clone())
        .expect("the truth knows the relabel pod");
    let in_scope: Vec<Truth> = run
        .truth
        .iter()
        .filter(|t| t.uid == uid && t.write_ms < run.relabelled_ms)
        .cloned()
        .collect();
    let rows: Vec<Exported> = run
        .scoped
        .iter()
        .filter(|e| e.uid == uid)
        .cloned()
        .collect();
    let left = rows.iter().filter(|e| e.kind == "left_scope").count();
    let without_scope: Vec<Exported> = rows
        .iter()
        .filter(|e| e.kind != "left_scope" && e.kind != "entered_scope")
        .cloned()
        .collect();
    let result = compare_with(&in_scope, &without_scope, &run.scoped_gaps, &run.history);
    assert!(
        result.is_exact() && left == 1,
        "scoped recorder (-l tier=old): {left} left_scope rows for the relabelled pod (want 1);\n{}",
        result.report_with(&without_scope)
    );
}
