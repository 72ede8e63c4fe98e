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

/// The status code and body of a GET as the admin, through the API server.
fn get(cp: &ControlPlane, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = e2e::client_for(&cp.kubeconfig).await;
        let request = axum::http::Request::get(path).body(Vec::new()).unwrap();
        match client.request_text(request).await {
            Ok(body) => (200, body),
            Err(kube::Error::Api(status)) => (status.code, status.message),
            Err(other) => panic!("GET {path}: {other}"),
        }
    })
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
    let (code, _) = get(&cp, "/apis/metrics.k8s.io/v1beta1/pods");
    assert_eq!(code, 404);
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
        || get(&cp, "/apis/metrics.k8s.io/v1beta1/pods").0 == 503,
    );
    let (code, body) = get(&cp, "/apis/metrics.k8s.io/v1beta1/nodes");
    assert_eq!((code, body.as_str()), (503, "service unavailable"));
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
    let now = metric(&ep.get("/metrics").1, "kubetrail_usage_checks_total").unwrap();
    let (_, body) = checks_reach(now + 3.0);
    assert_eq!(metric(&body, "kubetrail_usage_available"), Some(0.0));
    assert_eq!(rec.log().matches("registered but unavailable").count(), 1);
    assert_eq!(ep.get("/readyz").0, 200, "usage does not decide readiness");
    assert!(rec.stop().success());
}
