//! Kubernetes Events from a real control plane (kube-apiserver v1.35, the real kube-scheduler,
//! kwok kubelets): a pod no node can hold gets the scheduler's FailedScheduling, a pod that
//! fits its Scheduled, a crash-looping pod the kubelet's BackOff (kwok's stage, a series that
//! grows), and what `kubetrail query events` recorded about them must equal what the API
//! server returns for them (listed here with kubectl, not fixed strings).
//!
//! `#[ignore]`d like the other e2e tests: scripts/test runs it once the control plane is built
//! (KUBETRAIL_E2E_BIN).

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "common/recorder.rs"]
mod recorder;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cluster::Cluster;
use e2e::{serial, wait_until};
use recorder::RecorderProcess;
use serde_json::Value;

const PODS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: ev}
---
apiVersion: v1
kind: Pod
metadata: {name: fits, namespace: ev}
spec:
  containers:
  - {name: app, image: nginx:1.27, resources: {requests: {cpu: 100m, memory: 64Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: too-big, namespace: ev}
spec:
  containers:
  - {name: app, image: nginx:1.27, resources: {requests: {cpu: '64', memory: 64Mi}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: crashes
  namespace: ev
  annotations:
    kubetrail.dev/exit-after: 1s
    kubetrail.dev/exit-code: '1'
    kubetrail.dev/max-restarts: '2'
spec:
  restartPolicy: Always
  containers:
  - {name: app, image: nginx:1.27, resources: {requests: {cpu: 100m, memory: 64Mi}}}
";

/// (reason, type, pod, count) of each event by uid.
type Events = BTreeMap<String, (String, String, String, i64)>;

/// The API server's events in namespace `ev` about pods, from events.k8s.io.
fn served(c: &Cluster) -> Events {
    let list: Value = serde_json::from_str(&c.kubectl(&[
        "get",
        "events.events.k8s.io",
        "-n",
        "ev",
        "-o",
        "json",
    ]))
    .unwrap();
    let mut out = Events::new();
    for e in list["items"].as_array().unwrap() {
        if e["regarding"]["kind"] != "Pod" {
            continue;
        }
        let count = e["series"]["count"]
            .as_i64()
            .or(e["deprecatedCount"].as_i64())
            .unwrap_or(1);
        out.insert(
            e["metadata"]["uid"].as_str().unwrap().to_string(),
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["type"].as_str().unwrap_or_default().to_string(),
                e["regarding"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                count,
            ),
        );
    }
    out
}

fn recorded(db: &Path) -> Events {
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["query", "events", "-n", "ev", "-o", "json", "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "Pod")
        .map(|e| {
            (
                e["uid"].as_str().unwrap().to_string(),
                (
                    e["reason"].as_str().unwrap_or_default().to_string(),
                    e["type"].as_str().unwrap_or_default().to_string(),
                    e["name"].as_str().unwrap().to_string(),
                    e["count"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn failed_scheduling_scheduled_and_back_off_from_the_real_cluster_are_recorded_as_served() {
    let _one_at_a_time = serial();
    let Some(c) = Cluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trail.db");
    let log = dir.path().join("record.log");
    let rec = RecorderProcess::spawn(&c.cp.kubeconfig, &db, &log, &["--watch-timeout", "3s"]);
    rec.wait_for_log("event list done", Duration::from_secs(60));
    c.apply("e2e/kwok/nodes.yaml");
    let manifest = dir.path().join("pods.yaml");
    std::fs::write(&manifest, PODS).unwrap();
    c.kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    let step = Duration::from_secs(120);
    wait_until(
        "FailedScheduling, Scheduled and a repeated BackOff are served",
        step,
        || {
            let events = served(&c);
            let reasons: Vec<&str> = events.values().map(|v| v.0.as_str()).collect();
            // The crash loop backs off after each of its three runs: wait for the series to
            // have grown (or for repeats as events of their own), so a count update is tested.
            let back_offs: i64 = events
                .values()
                .filter(|v| v.0 == "BackOff" && v.2 == "crashes")
                .map(|v| v.3)
                .sum();
            reasons.contains(&"FailedScheduling")
                && reasons.contains(&"Scheduled")
                && back_offs >= 2
        },
    );
    // The recorder follows the watch: it must come to hold exactly what the server serves.
    let mut last = (Events::new(), Events::new());
    let settled = (0..120).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        last = (served(&c), recorded(&db));
        last.0 == last.1
    });
    let log_text = rec.log();
    assert!(rec.stop().success(), "{log_text}");
    assert!(
        settled,
        "served {:?}\nrecorded {:?}\n{log_text}",
        last.0, last.1
    );
    let (served, _) = last;
    let failed: Vec<_> = served
        .values()
        .filter(|v| v.0 == "FailedScheduling")
        .collect();
    assert!(
        failed.iter().all(|v| v.1 == "Warning" && v.2 == "too-big"),
        "{failed:?}"
    );
    assert!(served.values().any(|v| v.0 == "Scheduled" && v.2 == "fits"));
    let back_off: Vec<_> = served.values().filter(|v| v.0 == "BackOff").collect();
    assert!(
        !back_off.is_empty()
            && back_off
                .iter()
                .all(|v| v.1 == "Warning" && v.2 == "crashes"),
        "{back_off:?}"
    );
    // The crash loop's history shows the kubelet's BackOff beside its restarts.
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args([
            "query", "history", "crashes", "-n", "ev", "-o", "json", "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let inc = &history[0];
    assert!(
        inc["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "BackOff"),
        "{inc}"
    );
    assert!(
        inc["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "container_restarted"),
        "{inc}"
    );
}
