//! Workload owners from a real control plane (kube-apiserver v1.35, the real
//! kube-controller-manager's Deployment, ReplicaSet and Job controllers, the real scheduler,
//! kwok kubelets): a Deployment rolled out to a new image and a Job. What kubetrail recorded
//! of their ReplicaSets (names, revisions, template hashes, images, final replicas) and of
//! their pods' owners must equal what the API server returns (read here with kubectl, not fixed
//! strings); and a restarted recorder writes none of it twice.
//!
//! `#[ignore]`d like the other e2e tests: scripts/test runs it once the control plane is built
//! (KUBETRAIL_E2E_BIN).

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/e2e.rs"]
mod e2e;
#[path = "common/recorder.rs"]
mod recorder;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cluster::Cluster;
use e2e::{serial, wait_until};
use recorder::RecorderProcess;
use serde_json::Value;

const WORKLOADS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: own}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: own}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata:
      labels: {app: web}
      annotations: {kubetrail.dev/pull-delay: 500ms}
    spec:
      containers:
      - {name: app, image: nginx:1.27, resources: {requests: {cpu: 100m, memory: 64Mi}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: own}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {kubetrail.dev/exit-after: 2s, kubetrail.dev/pull-delay: 500ms}
    spec:
      restartPolicy: Never
      containers:
      - {name: task, image: busybox:1.36, resources: {requests: {cpu: 100m, memory: 64Mi}}}
";

/// (revision, template hash, images, spec replicas) of each ReplicaSet by name.
type ReplicaSets = BTreeMap<String, (Option<i64>, Option<String>, Vec<String>, Option<i64>)>;

fn kubectl_json(c: &Cluster, args: &[&str]) -> Value {
    serde_json::from_str(&c.kubectl(args)).unwrap()
}

/// The Deployment's ReplicaSets as the API server holds them (by its controller reference).
fn served_replicasets(c: &Cluster) -> ReplicaSets {
    let list = kubectl_json(c, &["get", "rs", "-n", "own", "-o", "json"]);
    let mut out = ReplicaSets::new();
    for rs in list["items"].as_array().unwrap() {
        let m = &rs["metadata"];
        let controlled = m["ownerReferences"].as_array().is_some_and(|refs| {
            refs.iter()
                .any(|r| r["controller"] == true && r["kind"] == "Deployment" && r["name"] == "web")
        });
        if !controlled {
            continue;
        }
        let images = rs["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["image"].as_str().unwrap().to_string())
            .collect();
        out.insert(
            m["name"].as_str().unwrap().to_string(),
            (
                m["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .and_then(|r| r.parse().ok()),
                m["labels"]["pod-template-hash"]
                    .as_str()
                    .map(str::to_string),
                images,
                rs["spec"]["replicas"].as_i64(),
            ),
        );
    }
    out
}

fn kubetrail(db: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(args)
        .args(["-o", "json", "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The ReplicaSets `query history deployment/web` shows, with the last replicas each scaled to.
fn recorded_replicasets(db: &Path) -> ReplicaSets {
    let lines = kubetrail(db, &["query", "history", "deployment/web", "-n", "own"]);
    let mut out = ReplicaSets::new();
    for l in lines.as_array().unwrap() {
        if l["kind"] != "ReplicaSet" {
            continue;
        }
        let name = l["name"].as_str().unwrap().to_string();
        let images = l["images"]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect();
        let entry = out.entry(name).or_insert((None, None, images, None));
        if l["change"] == "created" {
            entry.0 = l["revision"].as_i64();
            entry.1 = l["template_hash"].as_str().map(str::to_string);
        }
        if let Some(spec) = l["spec_replicas"].as_i64() {
            entry.3 = Some(spec);
        }
    }
    out
}

/// (name, owner kind, owner name) of the pods the API server holds now.
fn served_pods(c: &Cluster) -> BTreeSet<(String, String, String)> {
    let list = kubectl_json(c, &["get", "pods", "-n", "own", "-o", "json"]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let owner = p["metadata"]["ownerReferences"]
                .as_array()?
                .iter()
                .find(|r| r["controller"] == true)?;
            Some((
                p["metadata"]["name"].as_str()?.to_string(),
                owner["kind"].as_str()?.to_string(),
                owner["name"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn recorded_pods(db: &Path, owner: &str) -> BTreeSet<(String, String, String)> {
    let rows = kubetrail(db, &["query", "pods", "--owner", owner]);
    rows.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["owner_kind"].as_str().unwrap_or_default().to_string(),
                p["owner_name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn a_rollout_and_a_job_are_recorded_as_the_real_controllers_made_them_and_a_restart_adds_nothing() {
    let _one_at_a_time = serial();
    let Some(c) = Cluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trail.db");
    let log = dir.path().join("record.log");
    let rec = RecorderProcess::spawn(&c.cp.kubeconfig, &db, &log, &["--watch-timeout", "3s"]);
    rec.wait_for_log("owner list done", Duration::from_secs(60));
    c.apply("e2e/kwok/nodes.yaml");
    let manifest = dir.path().join("workloads.yaml");
    std::fs::write(&manifest, WORKLOADS).unwrap();
    c.kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    let step = Duration::from_secs(180);
    let rolled_out = |c: &Cluster| {
        c.kubectl(&[
            "-n",
            "own",
            "rollout",
            "status",
            "deploy/web",
            "--timeout=180s",
        ]);
    };
    rolled_out(&c);
    c.kubectl(&["-n", "own", "set", "image", "deploy/web", "app=nginx:1.28"]);
    rolled_out(&c);
    wait_until("the Job's pod finished", step, || {
        c.jsonpath(&["-n", "own", "get", "job", "once"], "{.status.succeeded}") == "1"
    });
    // The rollout is complete when the old ReplicaSet is scaled to 0 and its pods are gone.
    wait_until("only the new ReplicaSet's pods are served", step, || {
        let rs = served_replicasets(&c);
        let pods = served_pods(&c);
        rs.len() == 2
            && rs.values().filter(|v| v.3 == Some(0)).count() == 1
            && pods.iter().filter(|p| p.1 == "ReplicaSet").count() == 2
    });

    // The recorder follows the watch: it must come to hold what the server serves.
    let served = served_replicasets(&c);
    let mut recorded = ReplicaSets::new();
    let settled = (0..120).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        recorded = recorded_replicasets(&db);
        recorded == served
    });
    assert!(
        settled,
        "served {served:?}\nrecorded {recorded:?}\n{}",
        rec.log()
    );
    let revisions: BTreeSet<Option<i64>> = served.values().map(|v| v.0).collect();
    assert_eq!(revisions, [Some(1), Some(2)].into(), "{served:?}");
    let images: BTreeSet<&str> = served.values().map(|v| v.2[0].as_str()).collect();
    assert_eq!(images, ["nginx:1.27", "nginx:1.28"].into());

    // Every pod the API server holds now is found through its workload, with its real owner;
    // the recorded ones also keep the old ReplicaSet's pods, deleted since.
    let now = served_pods(&c);
    let web = recorded_pods(&db, "deployment/web");
    for p in now.iter().filter(|p| p.1 == "ReplicaSet") {
        assert!(web.contains(p), "{p:?} not in {web:?}");
    }
    assert!(web.iter().all(|p| served.contains_key(&p.2)), "{web:?}");
    assert!(web.len() >= 4, "both ReplicaSets' pods: {web:?}");
    let job: Vec<_> = now.iter().filter(|p| p.1 == "Job").cloned().collect();
    assert_eq!(job.len(), 1, "{now:?}");
    let recorded_job: Vec<_> = recorded_pods(&db, "job/once").into_iter().collect();
    assert_eq!(recorded_job, job);

    // query workloads: one line per workload, its pods counted through the chain.
    let workloads = kubetrail(&db, &["query", "workloads", "-n", "own"]);
    let line = |kind: &str, name: &str| -> Value {
        workloads
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["kind"] == kind && w["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind}/{name} in {workloads}"))
    };
    assert_eq!(line("Deployment", "web")["pods"], web.len() as u64);
    assert_eq!(line("Job", "once")["pods"], 1);
    assert_eq!(workloads.as_array().unwrap().len(), 2, "{workloads}");

    // A restart lists everything again: nothing is written twice.
    let before = kubetrail(&db, &["query", "history", "deployment/web", "-n", "own"]);
    assert!(rec.stop().success());
    let log2 = dir.path().join("record2.log");
    let rec = RecorderProcess::spawn(&c.cp.kubeconfig, &db, &log2, &["--watch-timeout", "3s"]);
    rec.wait_for_log("resuming owners", Duration::from_secs(60));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rec.log().matches("owner list done").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", rec.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log_text = rec.log();
    assert!(rec.stop().success(), "{log_text}");
    let after = kubetrail(&db, &["query", "history", "deployment/web", "-n", "own"]);
    assert_eq!(
        before, after,
        "the restart wrote owner rows again\n{log_text}"
    );
}
