//! kubectl (a client nobody here wrote) works against the simulator: get, get -w, -o json and
//! delete behave as against a real cluster.

#[path = "common/sim.rs"]
mod sim;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sim::SimProcess;

const KUBECTL: &str = "kubectl";

fn have_kubectl() -> bool {
    let found = Command::new(KUBECTL)
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("kubectl is not installed: skipping");
    }
    found
}

fn kubectl(sim: &SimProcess, args: &[&str]) -> Output {
    let output = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .args(["--request-timeout", "20s"])
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        sim.log()
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn kubectl_get_prints_nodes_and_pods() {
    if !have_kubectl() {
        return;
    }
    let sim = SimProcess::spawn(&["--nodes", "3", "--pods", "20", "--churn", "2"]);
    let nodes = stdout(&kubectl(&sim, &["get", "nodes"]));
    let mut lines = nodes.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{nodes}"
    );
    assert_eq!(lines.clone().count(), 3, "{nodes}");
    assert!(
        lines.all(|l| l.contains("Ready") && l.contains("v1.32")),
        "{nodes}"
    );

    let pods = stdout(&kubectl(&sim, &["get", "pods", "-A"]));
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{pods}"
    );
    assert!(pods.lines().count() > 10, "{pods}");
    assert!(pods.contains("Running") && pods.contains("1/1"), "{pods}");

    let wide = stdout(&kubectl(
        &sim,
        &[
            "get",
            "pods",
            "-A",
            "-o",
            "wide",
            "-l",
            "app.kubernetes.io/name",
        ],
    ));
    let header = wide.lines().next().unwrap_or("");
    assert!(header.contains("NODE") && header.contains("IP"), "{wide}");
    assert!(wide.contains(".ec2.internal"), "{wide}");
}

#[test]
fn kubectl_get_watch_shows_live_changes() {
    if !have_kubectl() {
        return;
    }
    let sim = SimProcess::spawn(&["--pods", "15", "--churn", "20", "--pace", "0.3", "--paused"]);
    let (_, body) = sim.get("/api/v1/pods");
    let listed = serde_json::from_str::<Value>(&body).unwrap()["items"]
        .as_array()
        .unwrap()
        .len();
    let mut child = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .args(["get", "pods", "-A", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run kubectl get -w");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut read_until = |want: usize, timeout: Duration| {
        let deadline = Instant::now() + timeout;
        while lines.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => return false,
            }
        }
        true
    };
    // Header plus the current pods, while nothing changes.
    assert!(
        read_until(listed + 1, Duration::from_secs(20)),
        "kubectl -w did not print the list"
    );
    sim.resume();
    let ok = read_until(listed + 1 + 10, Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "no live changes appeared:\n{}", lines.join("\n"));
    let new = &lines[listed + 1..];
    assert!(
        new.iter().any(|l| l.contains("Pending")
            || l.contains("ContainerCreating")
            || l.contains("Running")),
        "{new:?}"
    );
}

#[test]
fn kubectl_get_json_and_delete() {
    if !have_kubectl() {
        return;
    }
    // No churn: nothing but us deletes ReplicaSet pods.
    let sim = SimProcess::spawn(&["--pods", "20", "--churn", "0"]);
    let list: Value =
        serde_json::from_slice(&kubectl(&sim, &["get", "pods", "-A", "-o", "json"]).stdout)
            .unwrap();
    let pod = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["status"]["phase"] == "Running"
                && p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
                && p["spec"]["terminationGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(99)
                    <= 5
        })
        .expect("a running ReplicaSet pod with a short grace period");
    let name = pod["metadata"]["name"].as_str().unwrap();
    let namespace = pod["metadata"]["namespace"].as_str().unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap();

    let one: Value = serde_json::from_slice(
        &kubectl(&sim, &["get", "pod", name, "-n", namespace, "-o", "json"]).stdout,
    )
    .unwrap();
    assert_eq!(one["kind"], "Pod");
    assert_eq!(one["metadata"]["uid"], uid);
    let created = one["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && !created.contains('.'),
        "second precision like a real apiserver: {created}"
    );
    assert!(one["spec"]["containers"][0]["resources"]["requests"]["cpu"].is_string());

    let deleted = stdout(&kubectl(&sim, &["delete", "pod", name, "-n", namespace]));
    assert!(
        deleted.contains(&format!("pod \"{name}\" deleted")),
        "{deleted}"
    );
    let gone = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .args(["get", "pod", name, "-n", namespace])
        .output()
        .unwrap();
    assert!(
        !gone.status.success() && String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{gone:?}"
    );

    let truth = sim.wait_for_truth(Duration::from_secs(10), |lines| {
        lines.iter().any(|l| l.uid == uid && l.kind == "deleted")
    });
    let kinds: Vec<&str> = truth
        .iter()
        .filter(|l| l.uid == uid)
        .map(|l| l.kind.as_str())
        .collect();
    let terminating = kinds
        .iter()
        .position(|k| *k == "terminating")
        .expect("a terminating row");
    assert_eq!(kinds.last(), Some(&"deleted"), "{kinds:?}");
    assert!(terminating < kinds.len() - 1, "{kinds:?}");
}

#[test]
fn kubectl_get_events_in_both_groups() {
    if !have_kubectl() {
        return;
    }
    let sim = SimProcess::spawn(&["--nodes", "3", "--pods", "20", "--churn", "3"]);
    std::thread::sleep(Duration::from_secs(3));
    let table = stdout(&kubectl(&sim, &["get", "events", "-A"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "LAST",
            "SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "MESSAGE"
        ],
        "{table}"
    );
    assert!(
        table.contains("Scheduled") && table.contains("pod/"),
        "{table}"
    );
    // The same events through both groups: the same uids, each group in its own shape.
    let uids = |resource: &str, shape: &str| -> std::collections::BTreeSet<String> {
        let json: Value = serde_json::from_str(&stdout(&kubectl(
            &sim,
            &["get", resource, "-A", "-o", "json"],
        )))
        .unwrap();
        json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert!(e[shape].is_object(), "{resource} without {shape}: {e}");
                e["metadata"]["uid"].as_str().unwrap().to_string()
            })
            .collect()
    };
    sim.pause();
    let core = uids("events", "involvedObject");
    let v1 = uids("events.events.k8s.io", "regarding");
    assert!(core.len() > 10, "{core:?}");
    assert_eq!(core, v1);
}

#[test]
fn kubectl_get_events_shows_probe_failures_as_unhealthy() {
    if !have_kubectl() {
        return;
    }
    let sim = SimProcess::spawn(&["--nodes", "3", "--pods", "60", "--churn", "3"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let json: Value = serde_json::from_str(&stdout(&kubectl(
            &sim,
            &["get", "events.events.k8s.io", "-A", "-o", "json"],
        )))
        .unwrap();
        let unhealthy: Vec<&Value> = json["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["reason"] == "Unhealthy")
            .collect();
        if let Some(e) = unhealthy.first() {
            assert_eq!(e["type"], "Warning", "{e}");
            assert_eq!(e["regarding"]["kind"], "Pod", "{e}");
            assert!(
                e["regarding"]["fieldPath"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("spec.containers{")),
                "{e}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no Unhealthy event in a minute");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn kubectl_get_replicasets_deployments_and_jobs_match_the_pods_owners() {
    if !have_kubectl() {
        return;
    }
    let sim = SimProcess::spawn(&["--nodes", "3", "--pods", "60", "--churn", "3"]);
    std::thread::sleep(Duration::from_secs(2));
    for (resource, header) in [
        (
            "rs",
            vec!["NAMESPACE", "NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ),
        (
            "deploy",
            vec![
                "NAMESPACE",
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
            ],
        ),
        (
            "jobs",
            vec!["NAMESPACE", "NAME", "STATUS", "COMPLETIONS", "AGE"],
        ),
    ] {
        let table = stdout(&kubectl(&sim, &["get", resource, "-A"]));
        let got: Vec<&str> = table
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(got, header, "{resource}:\n{table}");
        assert!(table.lines().count() > 1, "{resource}:\n{table}");
    }
    sim.pause();
    let items = |resource: &str| -> Vec<Value> {
        let json: Value = serde_json::from_str(&stdout(&kubectl(
            &sim,
            &["get", resource, "-A", "-o", "json"],
        )))
        .unwrap();
        json["items"].as_array().unwrap().clone()
    };
    let uids = |objects: &[Value]| -> std::collections::BTreeMap<String, Value> {
        objects
            .iter()
            .map(|o| {
                (
                    o["metadata"]["uid"].as_str().unwrap().to_string(),
                    o.clone(),
                )
            })
            .collect()
    };
    let (rs, deploy, jobs) = (
        uids(&items("replicasets.apps")),
        uids(&items("deployments.apps")),
        uids(&items("jobs.batch")),
    );
    // Every pod's owner is served, with the pod's namespace and the owner's name; a
    // ReplicaSet's controller is a served Deployment; its template hash is the pod's.
    let mut checked = 0;
    for pod in items("pods") {
        let owner = &pod["metadata"]["ownerReferences"][0];
        let ns = &pod["metadata"]["namespace"];
        let served = match owner["kind"].as_str().unwrap() {
            "ReplicaSet" => &rs,
            "Job" => &jobs,
            _ => continue,
        };
        let uid = owner["uid"].as_str().unwrap();
        let o = served
            .get(uid)
            .unwrap_or_else(|| panic!("{owner} not served"));
        assert_eq!(&o["metadata"]["name"], &owner["name"]);
        assert_eq!(&o["metadata"]["namespace"], ns);
        if owner["kind"] == "ReplicaSet" {
            assert_eq!(
                o["metadata"]["labels"]["pod-template-hash"],
                pod["metadata"]["labels"]["pod-template-hash"]
            );
            let controller = &o["metadata"]["ownerReferences"][0];
            let d = &deploy[controller["uid"].as_str().unwrap()];
            assert_eq!(&d["metadata"]["name"], &controller["name"]);
        }
        checked += 1;
    }
    assert!(checked > 20, "{checked}");
}
