//! The simulated API server answers bad input like a real kube-apiserver: a Status body with
//! the right code and reason, never a panic; lists are consistent across pages; watches from a
//! compacted resourceVersion get ERROR 410 in a 200 stream.

#[path = "common/sim.rs"]
mod sim;

use serde_json::Value;
use sim::SimProcess;

fn status(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(v["kind"], "Status", "{body}");
    assert_eq!(v["apiVersion"], "v1", "{body}");
    assert_eq!(v["status"], "Failure", "{body}");
    v
}

fn assert_status(sim: &SimProcess, path: &str, code: u16, reason: &str, mention: &str) {
    let (got, body) = sim.get(path);
    assert_eq!(got, code, "{path}: {body}");
    let v = status(&body);
    assert_eq!(v["code"], code, "{body}");
    assert_eq!(v["reason"], reason, "{body}");
    assert!(
        v["message"].as_str().unwrap_or("").contains(mention),
        "{path}: message should mention {mention:?}: {body}"
    );
}

#[test]
fn bad_input_gets_a_status_body() {
    let sim = SimProcess::spawn(&["--pods", "20", "--churn", "2"]);
    assert_status(&sim, "/api/v1/pods?limit=abc", 400, "BadRequest", "abc");
    assert_status(&sim, "/api/v1/pods?limit=-3", 400, "BadRequest", "-3");
    assert_status(
        &sim,
        "/api/v1/pods?watch=true&timeoutSeconds=soon",
        400,
        "BadRequest",
        "soon",
    );
    assert_status(
        &sim,
        "/api/v1/pods?resourceVersion=yesterday",
        400,
        "BadRequest",
        "yesterday",
    );
    assert_status(
        &sim,
        "/api/v1/pods?labelSelector=app%20in%20web",
        400,
        "BadRequest",
        "app in web",
    );
    assert_status(
        &sim,
        "/api/v1/pods?labelSelector=%3Dx",
        400,
        "BadRequest",
        "labelSelector",
    );
    assert_status(
        &sim,
        "/api/v1/pods?fieldSelector=spec.bogus%3D1",
        400,
        "BadRequest",
        "spec.bogus",
    );
    assert_status(
        &sim,
        "/api/v1/pods?continue=zz",
        400,
        "BadRequest",
        "continue",
    );
    assert_status(&sim, "/api/v1/widgets", 404, "NotFound", "could not find");
    // apps/v1 serves Deployments and ReplicaSets (the pods' owners), nothing else.
    assert_status(
        &sim,
        "/apis/apps/v1/statefulsets",
        404,
        "NotFound",
        "could not find",
    );
    assert_status(
        &sim,
        "/api/v1/namespaces/default/pods/no-such-pod",
        404,
        "NotFound",
        "pods \"no-such-pod\" not found",
    );
    assert_status(
        &sim,
        "/api/v1/nodes/no-such-node",
        404,
        "NotFound",
        "nodes \"no-such-node\" not found",
    );
    let (code, body) = sim.delete("/api/v1/namespaces/default/pods/no-such-pod");
    assert_eq!(code, 404, "{body}");
    status(&body);
    let (code, body) = sim.post("/api/v1/namespaces/default/pods", "{}");
    assert_eq!(code, 405, "{body}");
    status(&body);
    let (code, body) = sim.post("/_sim/faults", "{\"cut_watchez\":true}");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("cut_watchez"), "{body}");
    for (request, mention) in [
        ("{\"secs\":0}", "more than 0"),
        ("{\"secs\":100000}", "at most 86400"),
        ("{\"hours\":1}", "hours"),
    ] {
        let (code, body) = sim.post("/_sim/advance", request);
        assert_eq!(code, 400, "{request}: {body}");
        assert!(body.contains(mention), "{request}: {body}");
    }
    // The server is still fine.
    assert_eq!(sim.get("/api/v1/pods").0, 200);
}

#[test]
fn discovery_lists_resources_with_short_names() {
    let sim = SimProcess::spawn(&["--pods", "5"]);
    let (code, body) = sim.get("/api/v1");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let pods = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"][0], "po");
    assert_eq!(pods["namespaced"], true);
    assert!(sim.get("/version").1.contains("gitVersion"));
    assert!(sim.get("/apis").1.contains("APIGroupList"));
    // kube-rs sends `?&`: empty pairs are ignored.
    assert_eq!(sim.get("/api/v1/nodes?&limit=1").0, 200);
}

#[test]
fn pages_come_from_one_snapshot_and_expired_tokens_get_410() {
    let sim = SimProcess::spawn(&["--pods", "60", "--churn", "50", "--pace", "0.2"]);
    let (code, body) = sim.get("/api/v1/pods?limit=7");
    assert_eq!(code, 200, "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    let rv: u64 = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut token = first["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();
    let mut names: Vec<String> = Vec::new();
    let mut collect = |page: &Value| {
        for item in page["items"].as_array().unwrap() {
            let item_rv: u64 = item["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(item_rv <= rv, "item at rv {item_rv} in a list at rv {rv}");
            names.push(format!(
                "{}/{}",
                item["metadata"]["namespace"].as_str().unwrap(),
                item["metadata"]["name"].as_str().unwrap()
            ));
        }
    };
    collect(&first);
    // Let the cluster change before reading the rest.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sim.stats()["resource_version"].as_u64().unwrap() < rv + 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster did not change"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut pages = 1;
    while !token.is_empty() {
        let (code, body) = sim.get(&format!("/api/v1/pods?limit=7&continue={token}"));
        assert_eq!(code, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            page["metadata"]["resourceVersion"].as_str().unwrap(),
            rv.to_string()
        );
        collect(&page);
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or("")
            .to_string();
        pages += 1;
    }
    assert!(pages > 3);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        names.len(),
        "no object appears twice across pages"
    );

    // A well-formed token for a snapshot that was never kept.
    let stale = "7b227276223a312c226e73223a22222c226e616d65223a22227d"; // {"rv":1,"ns":"","name":""}
    assert_status(
        &sim,
        &format!("/api/v1/pods?limit=5&continue={stale}"),
        410,
        "Expired",
        "continue",
    );
}

#[test]
fn watch_from_a_compacted_rv_gets_error_410_in_a_200_stream() {
    let sim = SimProcess::spawn(&["--pods", "10", "--churn", "5"]);
    sim.fault(r#"{"compact":true}"#);
    let (code, body) = sim.get("/api/v1/pods?&watch=true&resourceVersion=2&timeoutSeconds=5");
    assert_eq!(code, 200, "{body}");
    let first: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ERROR");
    assert_eq!(first["object"]["code"], 410);
    assert_eq!(first["object"]["reason"], "Expired");
}

#[test]
fn selectors_filter_lists() {
    let sim = SimProcess::spawn(&["--pods", "40", "--churn", "0", "--paused"]);
    let (_, body) = sim.get("/api/v1/pods");
    let all: Value = serde_json::from_str(&body).unwrap();
    let all = all["items"].as_array().unwrap();
    let node = all
        .iter()
        .find_map(|p| p["spec"]["nodeName"].as_str())
        .unwrap()
        .to_string();
    let on_node = all
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node.as_str())
        .count();
    let (_, body) = sim.get(&format!(
        "/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
    ));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), on_node);
    let (_, body) = sim.get("/api/v1/pods?labelSelector=job-name");
    let jobs: Value = serde_json::from_str(&body).unwrap();
    let (_, body) = sim.get("/api/v1/pods?labelSelector=!job-name");
    let not_jobs: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        jobs["items"].as_array().unwrap().len() + not_jobs["items"].as_array().unwrap().len(),
        all.len()
    );
    let (_, body) = sim.get("/api/v1/namespaces/batch/pods?fieldSelector=status.phase!%3DRunning");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["metadata"]["namespace"] == "batch" && p["status"]["phase"] != "Running")
    );
}

/// A delete of a pod with a finalizer answers with the object (deletionTimestamp set, the
/// finalizer still there); after the grace period the kubelet stops the pod but the object
/// stays, and it goes only when the finalizer is removed.
#[test]
fn a_deleted_pod_with_a_finalizer_stays_until_the_finalizer_goes() {
    // No churn: nothing but us deletes pods. Paused until the delete is in, so the pod cannot
    // crash between the list and the delete.
    let sim = SimProcess::spawn(&["--pods", "60", "--churn", "0", "--seed", "5", "--paused"]);
    let (code, body) = sim.get("/api/v1/pods");
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let pod = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["status"]["phase"] == "Running"
                && p["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|c| c.iter().all(|c| c["state"]["running"].is_object()))
                && p["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
        })
        .expect("seed 5 has a running pod with a finalizer");
    let (namespace, name, uid) = (
        pod["metadata"]["namespace"].as_str().unwrap(),
        pod["metadata"]["name"].as_str().unwrap(),
        pod["metadata"]["uid"].as_str().unwrap(),
    );
    let (code, body) = sim.delete(&format!("/api/v1/namespaces/{namespace}/pods/{name}"));
    assert_eq!(code, 200, "{body}");
    let deleting: Value = serde_json::from_str(&body).unwrap();
    assert!(
        deleting["metadata"]["deletionTimestamp"].is_string(),
        "{body}"
    );
    assert_eq!(
        deleting["metadata"]["finalizers"],
        pod["metadata"]["finalizers"]
    );
    sim.resume();

    let truth = sim.wait_for_truth(std::time::Duration::from_secs(60), |lines| {
        lines.iter().any(|l| l.uid == uid && l.kind == "deleted")
    });
    let kinds: Vec<&str> = truth
        .iter()
        .filter(|l| l.uid == uid)
        .map(|l| l.kind.as_str())
        .collect();
    let terminating = kinds.iter().position(|k| *k == "terminating").unwrap();
    let terminal = kinds
        .iter()
        .position(|k| *k == "succeeded" || *k == "failed")
        .unwrap_or_else(|| panic!("the kubelet gives a held pod a terminal phase: {kinds:?}"));
    assert!(terminating < terminal, "{kinds:?}");
    assert!(
        kinds[terminating..terminal].contains(&"container_terminated"),
        "its containers end after the delete: {kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"deleted"), "{kinds:?}");
}

/// `POST /_sim/advance` runs that much virtual time at once, paused or not, and answers when it
/// has: the scenario's clock and tick have moved by it, and so has the cluster.
#[test]
fn an_advance_runs_virtual_time_at_once() {
    let sim = SimProcess::spawn(&["--pods", "5", "--churn", "1", "--paused"]);
    let clock = |sim: &SimProcess| {
        let stats = sim.stats();
        let at = stats["virtual_time"].as_str().unwrap();
        (
            kubetrail::model::time::parse_rfc3339_ms(at).unwrap(),
            stats["tick"].as_i64().unwrap(),
        )
    };
    let rv = |body: &str| -> i64 {
        let v: Value = serde_json::from_str(body).unwrap();
        let rv = &v["resource_version"];
        rv.as_i64()
            .or_else(|| rv.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("no resource_version in {body}"))
    };
    let (code, paused) = sim.post("/_sim/pause", "");
    assert_eq!(code, 200, "{paused}");
    let (at, tick) = clock(&sim);
    let (code, body) = sim.post("/_sim/advance", "{\"secs\": 600}");
    assert_eq!(code, 200, "{body}");
    let (at_after, tick_after) = clock(&sim);
    assert_eq!((at_after - at, tick_after - tick), (600_000, 60_000));
    // A new pod a second for ten minutes: hundreds of writes, at least two per pod.
    assert!(rv(&body) - rv(&paused) >= 1_000, "{paused} -> {body}");
}
