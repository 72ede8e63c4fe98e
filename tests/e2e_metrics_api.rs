//! The metrics API's two failure answers as the real kube-apiserver (v1.35, with its
//! aggregator) gives them, and the recorder's handling of both: with no APIService for
//! metrics.k8s.io the group is a 404; with one whose backend is missing (metrics-server not
//! running: the APIService is `False (ServiceNotFound)`) the aggregator answers 503 with a
//! plain-text "service unavailable". In both the recorder logs one line, reports
//! `kubetrail_usage_available 0`, keeps asking, and stays ready.
//!
//! `#[ignore]`d like the other e2e tests: scripts/test runs it once the control plane is built
//! (KUBETRAIL_E2E_BIN).

#[path = "common/e2e.rs"]
mod e2e;
#[path = "common/prom.rs"]
mod prom;
#[path = "common/recorder.rs"]
mod recorder;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{ControlPlane, serial};
use prom::Endpoint;
use recorder::RecorderProcess;

const APISERVICE: &str = "
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: 443}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
";

/// The API server's answer to a GET of `path` as the admin, as `kubectl get --raw` reports
/// it: 200, or the HTTP status its error names (NotFound 404, ServiceUnavailable 503). kubectl,
/// not our own client, so the answer is read by upstream code.
fn get(cp: &ControlPlane, path: &str) -> u16 {
    let out = Command::new("kubectl")
        .args(["get", "--raw", path, "--request-timeout=20s"])
        .env("KUBECONFIG", &cp.kubeconfig)
        .output()
        .unwrap();
    if out.status.success() {
        return 200;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("(NotFound)") {
        404
    } else if err.contains("(ServiceUnavailable)") {
        503
    } else {
        panic!("kubectl get --raw {path}: {err}")
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn missing_and_unavailable_metrics_apis_on_the_real_apiserver() {
    let _serial = serial();
    let Some(cp) = ControlPlane::start(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // No APIService: the group is not served.
    assert_eq!(get(&cp, "/apis/metrics.k8s.io/v1beta1/pods"), 404);
    let rec = RecorderProcess::spawn(
        &cp.kubeconfig,
        &dir.path().join("trail.db"),
        &dir.path().join("rec.log"),
        &["--usage-interval", "1s", "--metrics-addr", "127.0.0.1:0"],
    );
    let ep = Endpoint::from_log(|| rec.log(), Duration::from_secs(30));
    ep.wait_until("/readyz", Duration::from_secs(60), "ready", |c, _| c == 200);
    let checks_reach = |n: f64| {
        ep.wait_until("/metrics", Duration::from_secs(60), "checks", |c, body| {
            c == 200 && metric(body, "kubetrail_usage_checks_total").is_some_and(|v| v >= n)
        })
    };
    let (_, body) = checks_reach(3.0);
    assert_eq!(metric(&body, "kubetrail_usage_available"), Some(0.0));
    assert_eq!(
        rec.log().matches("does not serve the metrics API").count(),
        1
    );

    // An APIService whose Service does not exist: registered, unavailable.
    kubectl(&cp.kubeconfig, &["apply", "-f", "-"], Some(APISERVICE));
    e2e::wait_until(
        "the aggregator answers 503",
        Duration::from_secs(60),
        || get(&cp, "/apis/metrics.k8s.io/v1beta1/pods") == 503,
    );
    assert_eq!(get(&cp, "/apis/metrics.k8s.io/v1beta1/nodes"), 503);
    let status = kubectl(
        &cp.kubeconfig,
        &[
            "get",
            "apiservice",
            "v1beta1.metrics.k8s.io",
            "-o",
            "jsonpath={.status.conditions[0].reason}",
        ],
        None,
    );
    assert_eq!(status, "ServiceNotFound");
    rec.wait_for_log("registered but unavailable", Duration::from_secs(30));
    // The aggregator's 503 body is plain text, not a Status: the recorder names what it got.
    assert!(
        rec.log().contains("answer=service unavailable"),
        "{}",
        rec.log()
    );
    let now = metric(&ep.get("/metrics").1, "kubetrail_usage_checks_total").unwrap();
    let (_, body) = checks_reach(now + 3.0);
    assert_eq!(metric(&body, "kubetrail_usage_available"), Some(0.0));
    assert_eq!(rec.log().matches("registered but unavailable").count(), 1);
    assert_eq!(ep.get("/readyz").0, 200, "usage does not decide readiness");
    assert!(rec.stop().success());
}
