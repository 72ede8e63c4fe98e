//! The deployment manifests against a REAL kube-apiserver (e2e/controlplane): they apply with
//! kubectl; their ServiceAccounts may list and watch what the recorder reads and nothing else
//! (`kubectl auth can-i` with the ServiceAccount's own token); and `kubetrail record`, run with
//! that token and the Deployment's own arguments, records the driven history exactly while its
//! probe paths answer, and `kubetrail backup --out -` reads it out while it runs.
//!
//! No kubelet runs here, so the Deployments never start a pod: the recorder runs as a process
//! with the identity and command line the pod would have.
//!
//! They are `#[ignore]`d: a plain `cargo test` lists them as ignored, and scripts/test runs them
//! with `--include-ignored` once it has built the control plane; run without KUBETRAIL_E2E_BIN
//! they fail, never pass.

#[path = "common/compare.rs"]
mod compare;
#[path = "common/e2e.rs"]
mod e2e;
#[allow(clippy::duplicate_mod)]
#[path = "common/prom.rs"]
mod prom;
#[path = "common/recorder.rs"]
mod recorder;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use compare::{before_start, read_recorded, settle};
use e2e::{ControlPlane, Kubelet, PodShape, now_ms, serial};
use prom::Endpoint;
use recorder::RecorderProcess;
use serde_json::Value;

const CLUSTER_WIDE: &str = "deploy/kubernetes/kubetrail.yaml";
const NAMESPACED: &str = "deploy/kubernetes/kubetrail-namespaced.yaml";

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kubectl")
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl(kubeconfig, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A kubeconfig for `namespace/kubetrail`'s ServiceAccount: a token from the TokenRequest
/// API, the same kind a pod gets mounted.
fn service_account_kubeconfig(cp: &ControlPlane, namespace: &str, dir: &Path) -> PathBuf {
    let token = kubectl_ok(
        &cp.kubeconfig,
        &[
            "create",
            "token",
            "kubetrail",
            "-n",
            namespace,
            "--duration=1h",
        ],
    );
    let mut config: Value = serde_json::from_str(&kubectl_ok(
        &cp.kubeconfig,
        &["config", "view", "--raw", "-o", "json"],
    ))
    .expect("kubeconfig as JSON");
    config["users"][0]["user"] = serde_json::json!({ "token": token.trim() });
    let path = dir.join(format!("{namespace}-sa.kubeconfig"));
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// `kubectl auth can-i` as whoever `kubeconfig` authenticates as.
fn can_i(kubeconfig: &Path, verb: &str, resource: &str, scope: &[&str]) -> bool {
    let mut args = vec!["auth", "can-i", verb, resource];
    args.extend_from_slice(scope);
    let out = kubectl(kubeconfig, &args);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match (out.status.code(), answer.as_str()) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        _ => panic!(
            "kubectl auth can-i {verb} {resource} {scope:?}: {answer} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Whether `kubeconfig` may `verb` the metrics API's `resource` (in `namespace`, or in every
/// one), asked with a SelfSubjectAccessReview. `kubectl auth can-i pods.metrics.k8s.io` cannot
/// be used here: kubectl resolves the name through discovery, and a group the server does not
/// serve (no metrics-server in this cluster) is then asked about as a resource named
/// "pods.metrics.k8s.io" in the core group, which RBAC always refuses.
fn can_i_metrics(kubeconfig: &Path, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {
            "group": "metrics.k8s.io",
            "resource": resource,
            "verb": verb,
            "namespace": namespace.unwrap_or(""),
        }},
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), review.to_string()).unwrap();
    let path = file.path().to_str().unwrap();
    // Without --validate=false kubectl first lists CRDs to check the schema, which this
    // ServiceAccount may not.
    let answer = kubectl_ok(
        kubeconfig,
        &[
            "create",
            "--validate=false",
            "-f",
            path,
            "-o",
            "jsonpath={.status.allowed}",
        ],
    );
    match answer.trim() {
        "true" => true,
        "false" | "" => false,
        other => panic!("SelfSubjectAccessReview {verb} {resource}: {other}"),
    }
}

/// Every write, and every read of anything but pods and nodes, is refused.
fn assert_cannot_write_or_read_secrets(kubeconfig: &Path, scope: &[&str]) {
    for resource in ["secrets", "configmaps", "serviceaccounts"] {
        for verb in ["get", "list", "watch"] {
            assert!(
                !can_i(kubeconfig, verb, resource, scope),
                "{verb} {resource} {scope:?}"
            );
        }
    }
    for resource in [
        "pods",
        "pods/status",
        "pods/exec",
        "pods/eviction",
        "nodes",
        "nodes/status",
        "deployments.apps",
        "persistentvolumeclaims",
        "namespaces",
        "roles.rbac.authorization.k8s.io",
        "serviceaccounts/token",
        "events",
        "events.events.k8s.io",
        "replicasets.apps",
        "jobs.batch",
    ] {
        for verb in ["create", "update", "patch", "delete", "deletecollection"] {
            assert!(
                !can_i(kubeconfig, verb, resource, scope),
                "{verb} {resource} {scope:?}"
            );
        }
    }
}

/// The recorder's arguments from the applied Deployment, the way the kubelet would run them:
/// `$(VAR)` expanded from the container's env, the database and the listen address moved into
/// the test's directory and a free port.
fn deployment_args(cp: &ControlPlane, namespace: &str) -> (Vec<String>, Value) {
    let deployment: Value = serde_json::from_str(&kubectl_ok(
        &cp.kubeconfig,
        &[
            "get",
            "deployment",
            "kubetrail",
            "-n",
            namespace,
            "-o",
            "json",
        ],
    ))
    .unwrap();
    let pod_spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod_spec["serviceAccountName"], "kubetrail");
    let container = &pod_spec["containers"][0];
    let mut args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        args.remove(0),
        "record",
        "the container runs `kubetrail record`"
    );
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap();
        let value = if var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
            namespace.to_string()
        } else {
            var["value"].as_str().unwrap_or_default().to_string()
        };
        for a in &mut args {
            *a = a.replace(&format!("$({name})"), &value);
        }
    }
    assert!(
        args.iter().any(|a| a.starts_with("--db=/data/")),
        "the database is on the volume: {args:?}"
    );
    let metrics_port = container["ports"][0]["containerPort"].as_i64().unwrap();
    assert!(
        args.contains(&format!("--metrics-addr=:{metrics_port}")),
        "{args:?}"
    );
    args.retain(|a| !a.starts_with("--db=") && !a.starts_with("--metrics-addr="));
    args.push("--metrics-addr=127.0.0.1:0".into());
    (args, container.clone())
}

/// The probes of the Deployment answer 200 on the running recorder.
fn assert_probes_answer(container: &Value, endpoint: Endpoint) {
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().expect("path");
        assert_eq!(container[probe]["httpGet"]["port"], "metrics");
        endpoint.wait_until(path, Duration::from_secs(30), probe, |c, _| c == 200);
    }
}

#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn the_cluster_wide_manifest_grants_only_reads_of_pods_and_nodes_and_records() {
    let _one_at_a_time = serial();
    let Some(cp) = ControlPlane::start(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let applied = kubectl_ok(&cp.kubeconfig, &["apply", "-f", CLUSTER_WIDE]);
    for object in [
        "namespace/kubetrail created",
        "serviceaccount/kubetrail created",
        "clusterrole.rbac.authorization.k8s.io/kubetrail-reader created",
        "clusterrolebinding.rbac.authorization.k8s.io/kubetrail-reader created",
        "persistentvolumeclaim/kubetrail-data created",
        "deployment.apps/kubetrail created",
    ] {
        assert!(applied.contains(object), "{object}:\n{applied}");
    }
    let sa = service_account_kubeconfig(&cp, "kubetrail", dir.path());

    let everywhere = ["--all-namespaces"];
    for resource in [
        "pods",
        "nodes",
        "events",
        "events.events.k8s.io",
        "replicasets.apps",
        "jobs.batch",
    ] {
        for verb in ["list", "watch"] {
            assert!(can_i(&sa, verb, resource, &everywhere), "{verb} {resource}");
        }
    }
    // Owners are read, never their parents: the chain's names come from ownerReferences.
    for resource in ["deployments.apps", "cronjobs.batch", "statefulsets.apps"] {
        assert!(
            !can_i(&sa, "list", resource, &everywhere),
            "list {resource}"
        );
    }
    for resource in ["pods", "nodes"] {
        for verb in ["get", "list"] {
            assert!(
                can_i_metrics(&sa, verb, resource, None),
                "{verb} {resource}.metrics.k8s.io"
            );
        }
        assert!(
            !can_i_metrics(&sa, "watch", resource, None),
            "watch {resource}.metrics.k8s.io"
        );
    }
    for verb in ["get", "create"] {
        assert!(
            !can_i(&sa, verb, "nodes/proxy", &everywhere),
            "{verb} nodes/proxy"
        );
    }
    assert_cannot_write_or_read_secrets(&sa, &everywhere);
    assert!(
        can_i(&cp.kubeconfig, "get", "secrets", &everywhere),
        "the admin can, so the refusals above are RBAC's and not a broken check"
    );

    // The recorder as the Deployment would run it, with the ServiceAccount's token.
    let (args, container) = deployment_args(&cp, "kubetrail");
    let mut k = Kubelet::connect(&cp);
    k.create_namespace("shop");
    k.create_node("node-a", "4", "8Gi");
    let db = dir.path().join("trail.db");
    let log = dir.path().join("record.log");
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let rec = RecorderProcess::spawn(&sa, &db, &log, &extra);
    rec.wait_for_log(
        "initial list of pods and nodes done",
        Duration::from_secs(60),
    );
    let listed = now_ms();
    let endpoint = Endpoint::from_log(|| rec.log(), Duration::from_secs(10));
    assert_probes_answer(&container, endpoint);

    k.create_pod("shop", "web", PodShape::service("node-a"));
    k.init_started("web");
    k.init_done("web");
    k.run("web");
    k.ready("web");
    k.cordon("node-a");
    k.delete_pod("web", 30);
    k.force_delete("web");
    let result = settle(
        &db,
        &k.truth,
        &[before_start(listed)],
        Duration::from_secs(60),
    );
    assert!(
        !rec.log().contains("forbidden"),
        "no request was refused:\n{}",
        rec.log()
    );
    // Reading it out as the README says (`kubectl exec ... kubetrail backup --out -`), while
    // the recorder still runs.
    let backup = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["backup", "--out", "-"])
        .env("KUBETRAIL_DB", &db)
        .output()
        .unwrap();
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &backup.stdout).unwrap();
    assert!(rec.stop().success());
    result.assert_exact();
    assert!(result.matched >= 10, "{result:?}");
    compare::compare(&k.truth, &read_recorded(&copy), &[before_start(listed)]).assert_exact();
}

#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn the_namespaced_manifest_reads_only_pods_of_its_namespace_and_records_them() {
    let _one_at_a_time = serial();
    let Some(cp) = ControlPlane::start(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut k = Kubelet::connect(&cp);
    k.create_namespace("team-a");
    k.create_namespace("team-b");
    k.create_node("node-a", "4", "8Gi");
    let applied = kubectl_ok(&cp.kubeconfig, &["apply", "-n", "team-a", "-f", NAMESPACED]);
    assert!(applied.contains("rolebinding.rbac.authorization.k8s.io/kubetrail-reader created"));
    let sa = service_account_kubeconfig(&cp, "team-a", dir.path());

    for verb in ["list", "watch"] {
        assert!(can_i(&sa, verb, "pods", &["-n", "team-a"]), "{verb} pods");
        assert!(
            !can_i(&sa, verb, "pods", &["-n", "team-b"]),
            "{verb} team-b"
        );
        assert!(
            !can_i(&sa, verb, "pods", &["--all-namespaces"]),
            "{verb} all"
        );
        assert!(!can_i(&sa, verb, "nodes", &[]), "{verb} nodes");
        if verb == "list" {
            assert!(
                can_i_metrics(&sa, verb, "pods", Some("team-a")),
                "list pods.metrics.k8s.io"
            );
            assert!(
                !can_i_metrics(&sa, verb, "pods", Some("team-b")),
                "list pods.metrics.k8s.io team-b"
            );
            assert!(
                !can_i_metrics(&sa, verb, "nodes", None),
                "list nodes.metrics.k8s.io"
            );
        }
        for events in [
            "events",
            "events.events.k8s.io",
            "replicasets.apps",
            "jobs.batch",
        ] {
            assert!(
                can_i(&sa, verb, events, &["-n", "team-a"]),
                "{verb} {events}"
            );
            assert!(
                !can_i(&sa, verb, events, &["-n", "team-b"]),
                "{verb} {events} team-b"
            );
        }
    }
    assert_cannot_write_or_read_secrets(&sa, &["-n", "team-a"]);

    // Without --no-nodes the same identity is refused nodes, and says how to fix it.
    let (args, container) = deployment_args(&cp, "team-a");
    assert!(args.contains(&"--namespace=team-a".to_string()), "{args:?}");
    let refused_log = dir.path().join("refused.log");
    let without_no_nodes: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--no-nodes")
        .collect();
    let refused = RecorderProcess::spawn(
        &sa,
        &dir.path().join("refused.db"),
        &refused_log,
        &without_no_nodes,
    );
    refused.wait_for_log("run with --no-nodes", Duration::from_secs(30));
    assert!(refused.log().contains("403"), "{}", refused.log());
    drop(refused);

    let db = dir.path().join("trail.db");
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let rec = RecorderProcess::spawn(&sa, &db, &dir.path().join("record.log"), &extra);
    rec.wait_for_log(
        "initial list of pods and nodes done",
        Duration::from_secs(60),
    );
    let listed = now_ms();
    let endpoint = Endpoint::from_log(|| rec.log(), Duration::from_secs(10));
    assert_probes_answer(&container, endpoint);

    k.create_pod("team-a", "mine", PodShape::simple("node-a"));
    k.create_pod("team-b", "theirs", PodShape::simple("node-a"));
    for pod in ["mine", "theirs"] {
        k.run(pod);
        k.ready(pod);
    }
    k.delete_pod("mine", 30);
    k.force_delete("mine");
    // Only team-a's pods are in view.
    let truth: Vec<_> = k
        .truth
        .iter()
        .filter(|t| t.namespace.as_deref() == Some("team-a"))
        .cloned()
        .collect();
    let result = settle(
        &db,
        &truth,
        &[before_start(listed)],
        Duration::from_secs(60),
    );
    assert!(rec.stop().success());
    result.assert_exact();
    assert!(result.matched >= 4, "{result:?}");
    let recorded = read_recorded(&db);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (nodes, other): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM nodes), \
                    (SELECT count(*) FROM pods WHERE namespace <> 'team-a')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((nodes, other), (0, 0), "{recorded:?}");
}
