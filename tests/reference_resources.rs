//! Differential test: kubetrail's quantity parser and effective-resources math against the
//! upstream Go code they reimplement, `resource.ParseQuantity` (k8s.io/apimachinery) and
//! `PodRequests` / `PodLimits` (k8s.io/component-helpers), both at v0.35.4 (Kubernetes v1.35.4).
//!
//! The Go side is the helper that e2e/reference/build.sh builds; `scripts/test` sets
//! `KUBETRAIL_REFERENCE_BIN` to it. The tests are `#[ignore]`d, so a plain `cargo test` lists
//! them as ignored; scripts/test runs them with `--include-ignored`, and then they need it.
//!
//! Thousands of quantity strings (valid and not: suffixes, exponents, decimals, signs, huge
//! values) and pod specs (init containers plain and sidecar, pod-level resources, overhead,
//! missing requests, in-place resize status) are drawn from a seeded ChaCha stream: a failure
//! prints its seed and case, and `KUBETRAIL_REFERENCE_SEED=N` replays it. Pods are generated as
//! the API server stores them, i.e. after its defaulting: a container limit without a request
//! gets the request set to the limit, and pod-level limits always come with pod-level requests.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use kubetrail::model::quantity::{
    format_cpu_millis, parse_cpu_millis, parse_memory_bytes, parse_nanos,
};
use kubetrail::model::{Effective, Resources};
use kubetrail::recorder::objects::Pod;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::{Value, json};

const QUANTITIES: usize = 6000;
const PODS: usize = 4000;

/// The helper's path. The tests are `#[ignore]`d, so they run only when asked for (scripts/test
/// does, once it has built the helper); asked for without the helper, they fail, never pass.
fn reference_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("KUBETRAIL_REFERENCE_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "KUBETRAIL_REFERENCE_BIN is not set, so there is no upstream Go reference to \
                 compare with; run scripts/test (it builds the helper with e2e/reference/build.sh)"
            )
        });
    assert!(
        bin.is_file(),
        "KUBETRAIL_REFERENCE_BIN={} is not a file; build it with e2e/reference/build.sh \
         (the binary is `reference` in the directory it prints last)",
        bin.display()
    );
    Some(bin)
}

/// Sends every request to the helper (one JSON line each) and returns its answers in order.
fn ask(bin: &PathBuf, requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let mut stdin = child.stdin.take().unwrap();
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    // Written from a thread: the helper answers while it reads, and both pipes are bounded.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let answers: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|line| serde_json::from_str(&line.expect("read an answer")).expect("a JSON answer"))
        .collect();
    writer.join().unwrap().expect("write the requests");
    assert!(
        child.wait().unwrap().success(),
        "the reference helper failed"
    );
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a["id"], json!(i), "answers come back in order");
        assert!(
            a.get("error").is_none() || a.get("ok").is_some(),
            "helper error: {a}"
        );
    }
    answers
}

fn seed() -> u64 {
    std::env::var("KUBETRAIL_REFERENCE_SEED")
        .ok()
        .map(|s| s.parse().expect("KUBETRAIL_REFERENCE_SEED is a number"))
        .unwrap_or(20261201)
}

struct Gen(ChaCha8Rng);

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        ((self.0.next_u64() as u128 * n as u128) >> 64) as u64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    /// `min` to `min + extra - 1` random digits.
    fn some_digits(&mut self, min: usize, extra: u64) -> String {
        let n = min + self.below(extra) as usize;
        self.digits(n)
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// Any string a quantity parser might meet, most of them near the grammar's edges.
    fn quantity(&mut self) -> String {
        const SUFFIXES: &[&str] = &[
            "", "", "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi",
            "Ei", "K", "Kb", "mi", "i", "e", "E", "e+", "e-", "ee3", "KiB", "x", " ", "mm", "Gi3",
        ];
        let sign = self.pick(&["", "", "", "", "+", "-"]);
        let int = match self.below(10) {
            0 => String::new(),
            1 => format!(
                "{}{}",
                "0".repeat(1 + self.below(3) as usize),
                self.digits(2)
            ),
            2 => self.some_digits(15, 12),
            3 => self
                .pick(&[
                    "9223372036854775807",
                    "9223372036854775808",
                    "18446744073709551616",
                ])
                .into(),
            _ => self.some_digits(1, 4),
        };
        let frac = match self.below(8) {
            0 => ".".to_string(),
            1 => format!(".{}", self.some_digits(1, 3)),
            2 => format!(".{}", self.some_digits(8, 35)),
            _ => String::new(),
        };
        let suffix = match self.below(6) {
            0 => {
                let e = self.pick(&["e", "E"]);
                let exp_sign = self.pick(&["", "+", "-"]);
                let exp = match self.below(6) {
                    0 => self
                        .pick(&["1000", "4294967296", "4294967299", "99999999999999999999"])
                        .to_string(),
                    _ => self.below(40).to_string(),
                };
                format!("{e}{exp_sign}{exp}")
            }
            _ => self.pick(SUFFIXES).to_string(),
        };
        let mut s = format!("{sign}{int}{frac}{suffix}");
        if self.chance(3) {
            let at = self.below(s.len() as u64 + 1) as usize;
            let junk = self.pick(&[" ", "a", ".", "-", "é", "_", "1"]);
            if s.is_char_boundary(at) {
                s.insert_str(at, junk);
            }
        }
        s
    }

    /// A valid, non-negative cpu amount, sometimes finer than a millicore.
    fn cpu(&mut self) -> String {
        match self.below(9) {
            0 => format!("{}m", 1 + self.below(4000)),
            1 => format!("{}", 1 + self.below(16)),
            2 => format!("0.{}", self.some_digits(1, 3)),
            3 => format!("{}u", 1 + self.below(5000)),
            4 => format!("{}n", 1 + self.below(3_000_000)),
            5 => format!("{}.{}m", self.below(10), 1 + self.below(9)),
            6 => format!("{}e{}", 1 + self.below(9), self.below(3)),
            7 => format!("{}e-{}", 1 + self.below(999), 1 + self.below(5)),
            _ => "0".to_string(),
        }
    }

    /// A valid, non-negative memory amount, sometimes with a fraction of a byte.
    fn memory(&mut self) -> String {
        match self.below(9) {
            0 => format!("{}Mi", 1 + self.below(4096)),
            1 => format!("{}Gi", 1 + self.below(16)),
            2 => format!("{}.{}Gi", self.below(4), 1 + self.below(9)),
            3 => format!("{}M", 1 + self.below(5000)),
            4 => format!("{}", 1 + self.below(1 << 30)),
            5 => format!("{}.{}", self.below(100), 1 + self.below(9)),
            6 => format!("{}m", 1 + self.below(5000)),
            7 => format!("{}e{}", 1 + self.below(999), 3 + self.below(7)),
            _ => format!("{}Ki", 1 + self.below(100_000)),
        }
    }

    /// A resource list: cpu and memory each present or not (`nonzero` avoids explicit zeros).
    fn list(&mut self, percent: u64, nonzero: bool) -> serde_json::Map<String, Value> {
        let mut list = serde_json::Map::new();
        if self.chance(percent) {
            let mut cpu = self.cpu();
            while nonzero && parse_nanos(&cpu) == Ok(0) {
                cpu = self.cpu();
            }
            list.insert("cpu".into(), json!(cpu));
        }
        if self.chance(percent) {
            list.insert("memory".into(), json!(self.memory()));
        }
        list
    }

    /// Container requests and limits as the API server stores them: a limit without a request
    /// has been defaulted into the request.
    fn requirements(&mut self) -> Value {
        let mut requests = self.list(70, false);
        let limits = self.list(40, false);
        for (name, limit) in &limits {
            requests
                .entry(name.clone())
                .or_insert_with(|| limit.clone());
        }
        let mut r = serde_json::Map::new();
        if !requests.is_empty() || self.chance(20) {
            r.insert("requests".into(), Value::Object(requests));
        }
        if !limits.is_empty() {
            r.insert("limits".into(), Value::Object(limits));
        }
        Value::Object(r)
    }

    /// What a kubelet reports for a container being resized: `resources` (actuated), and
    /// `allocatedResources`, each sometimes missing.
    fn container_status(&mut self, name: &str) -> Value {
        let mut status = json!({"name": name, "restartCount": 0, "ready": true,
                                "image": "x", "imageID": "", "state": {}});
        if self.chance(75) {
            let mut res = serde_json::Map::new();
            if self.chance(85) {
                res.insert("requests".into(), Value::Object(self.list(80, false)));
            }
            if self.chance(50) {
                res.insert("limits".into(), Value::Object(self.list(60, false)));
            }
            status["resources"] = Value::Object(res);
        }
        if self.chance(70) {
            status["allocatedResources"] = Value::Object(self.list(80, false));
        }
        status
    }

    fn pod(&mut self) -> Value {
        let mut containers = Vec::new();
        for i in 0..1 + self.below(4) {
            containers.push(json!({"name": format!("app-{i}"), "image": "x",
                                   "resources": self.requirements()}));
        }
        let mut init = Vec::new();
        for i in 0..self.below(4) {
            let mut c = json!({"name": format!("init-{i}"), "image": "x",
                               "resources": self.requirements()});
            if self.chance(50) {
                c["restartPolicy"] = json!("Always");
            }
            init.push(c);
        }
        let mut spec = json!({"containers": containers, "initContainers": init});
        if self.chance(30) {
            // After defaulting, pod-level limits always come with pod-level requests.
            let mut requests = self.list(60, true);
            let limits = self.list(50, true);
            for (name, limit) in &limits {
                requests
                    .entry(name.clone())
                    .or_insert_with(|| limit.clone());
            }
            spec["resources"] = json!({"requests": requests, "limits": limits});
        }
        if self.chance(20) {
            spec["overhead"] = Value::Object(self.list(80, false));
        }
        let mut pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
                             "spec": spec});
        if self.chance(50) {
            let names: Vec<String> = containers_names(&pod["spec"]["containers"]);
            let init_names: Vec<String> = containers_names(&pod["spec"]["initContainers"]);
            let mut statuses = Vec::new();
            for n in &names {
                if self.chance(85) {
                    statuses.push(self.container_status(n));
                }
            }
            let mut init_statuses = Vec::new();
            for n in &init_names {
                if self.chance(70) {
                    init_statuses.push(self.container_status(n));
                }
            }
            let mut conditions = Vec::new();
            if self.chance(40) {
                let reason = self.pick(&["Deferred", "Infeasible", "Infeasible", ""]);
                conditions.push(json!({"type": "PodResizePending", "status": "True",
                                       "reason": reason, "message": "Node didn't have enough capacity"}));
            }
            if self.chance(30) {
                conditions.push(json!({"type": "PodResizeInProgress", "status": "True"}));
            }
            pod["status"] = json!({"phase": "Running", "conditions": conditions,
                                   "containerStatuses": statuses,
                                   "initContainerStatuses": init_statuses});
        }
        pod
    }
}

fn containers_names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn resources(v: &Value) -> Resources {
    Resources::new(
        v["cpu_millis"].as_i64().unwrap(),
        v["memory_bytes"].as_i64().unwrap(),
    )
}

fn effective(answer: &Value, requests: &str, limits: &str) -> Effective {
    Effective {
        requests: resources(&answer[requests]),
        limits: resources(&answer[limits]),
    }
}

fn decoded(pod: &Value) -> Effective {
    serde_json::from_value::<Pod>(pod.clone())
        .expect("kubetrail decodes the pod")
        .state
        .resources
}

/// The answer for one quantity, checked against one of kubetrail's parsers (`exact` is the
/// helper's exact ceil at that parser's scale).
fn check_quantity(
    case: &str,
    answer: &Value,
    exact: &str,
    rust: Result<i64, kubetrail::model::quantity::QuantityError>,
    go_value: &str,
) -> Result<(), String> {
    if answer["ok"] != json!(true) {
        return match rust {
            Err(_) => Ok(()),
            Ok(v) => Err(format!(
                "{case:?}: Go rejects it ({}), kubetrail reads {v}",
                answer["error"]
            )),
        };
    }
    if answer["negative"] == json!(true) {
        // No resource amount the API server accepts is negative; kubetrail refuses them.
        return match rust {
            Err(_) => Ok(()),
            Ok(v) => Err(format!("{case:?}: negative in Go, kubetrail reads {v}")),
        };
    }
    let exact_str = answer[exact].as_str().unwrap();
    match (exact_str.parse::<i64>(), rust) {
        (Ok(want), Ok(got)) if want == got => {
            // When the value fits, Go's own MilliValue()/Value() agree with the exact ceiling.
            assert_eq!(
                answer[go_value].as_i64(),
                Some(want),
                "{case:?}: Go's {go_value}"
            );
            Ok(())
        }
        (Err(_), Err(_)) => Ok(()),
        (want, got) => Err(format!(
            "{case:?}: Go {exact} {exact_str} ({want:?}), kubetrail {got:?}"
        )),
    }
}

#[test]
#[ignore = "needs the Go reference helper (KUBETRAIL_REFERENCE_BIN): run scripts/test"]
fn quantities_parse_and_print_like_apimachinery() {
    let Some(bin) = reference_bin() else { return };
    let seed = seed();
    let mut g = Gen(ChaCha8Rng::seed_from_u64(seed));
    let mut inputs: Vec<String> = [
        "0",
        "-0",
        "+0",
        "",
        "m",
        ".",
        "-",
        "+",
        ".m",
        "1.",
        ".5",
        "1.G",
        "Ki",
        "Ti",
        "Pi",
        "Ei",
        ".Ei",
        "e-10",
        "e3",
        "1e",
        "1E",
        "1e3",
        "1E3",
        "1e-3",
        "1e+3",
        "0.5m",
        "-0.5m",
        "100u",
        "1n",
        "0.1n",
        "1.5Gi",
        "0.5Ki",
        "9Ei",
        "8Ei",
        "7.99Ei",
        "10E",
        "9.3E",
        "9223372036854775807",
        "9223372036854775807m",
        "9223372036854775808",
        "9223372036854775.807",
        "9223372036854776",
        "1e4294967296",
        " 1",
        "1 ",
        "1Kib",
        "1k",
        "1K",
        "0000000000000000000000001",
        "0.000000000000000000000000001",
        "12345678901234567890123456789012345678901234567890",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    while inputs.len() < QUANTITIES {
        inputs.push(g.quantity());
    }
    let requests: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, q)| json!({"id": i, "quantity": q}))
        .collect();
    let answers = ask(&bin, &requests);
    let mut failures = Vec::new();
    let mut millis = vec![
        0, 1, 999, 1000, 1500, 2000, 1_000_000, 1_500_000, 2_000_000, -250,
    ];
    let (mut accepted, mut negative, mut too_large) = (0, 0, 0);
    for (q, a) in inputs.iter().zip(&answers) {
        accepted += usize::from(a["ok"] == json!(true));
        negative += usize::from(a["negative"] == json!(true));
        too_large += usize::from(
            a["ok"] == json!(true) && a["milli_exact"].as_str().unwrap().parse::<i64>().is_err(),
        );
        let cpu = parse_cpu_millis(q);
        failures.extend(check_quantity(q, a, "milli_exact", cpu.clone(), "milli_value").err());
        failures.extend(check_quantity(q, a, "value_exact", parse_memory_bytes(q), "value").err());
        millis.extend(cpu.ok());
    }
    for _ in 0..500 {
        millis.push(g.below(10) as i64 * 10i64.pow(g.below(16) as u32));
    }
    let start = answers.len();
    let requests: Vec<Value> = millis
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": i, "millis": m}))
        .collect();
    for (m, a) in millis.iter().zip(ask(&bin, &requests)) {
        if a["string"].as_str() != Some(format_cpu_millis(*m).as_str()) {
            failures.push(format!(
                "{m} millicores: Go prints {}, kubetrail {}",
                a["string"],
                format_cpu_millis(*m)
            ));
        }
    }
    let _ = start;
    // The generator must keep reaching every class of input, or the comparison proves little.
    let rejected = inputs.len() - accepted;
    eprintln!(
        "seed {seed}: {} quantities ({accepted} accepted, {rejected} rejected, {negative} \
         negative, {too_large} past i64 millicores) and {} cpu amounts printed",
        inputs.len(),
        millis.len()
    );
    assert!(
        accepted > 1000 && rejected > 1000 && negative > 200 && too_large > 200,
        "seed {seed}: too few cases of some class: {accepted} accepted, {rejected} rejected, \
         {negative} negative, {too_large} past i64 millicores"
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {} cases disagree with apimachinery, first 20:\n{}",
        failures.len(),
        inputs.len() * 2 + millis.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

#[test]
#[ignore = "needs the Go reference helper (KUBETRAIL_REFERENCE_BIN): run scripts/test"]
fn effective_resources_match_component_helpers() {
    let Some(bin) = reference_bin() else { return };
    let seed = seed();
    let mut g = Gen(ChaCha8Rng::seed_from_u64(seed));
    let pods: Vec<Value> = (0..PODS).map(|_| g.pod()).collect();
    let requests: Vec<Value> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"id": i, "pod": p}))
        .collect();
    let answers = ask(&bin, &requests);
    let mut failures = Vec::new();
    let mut resizing = 0;
    for (i, (pod, answer)) in pods.iter().zip(&answers).enumerate() {
        resizing += usize::from(answer["requests"] != answer["sched_requests"]);
        // Plain options read the spec only: the same pod without its status.
        let mut spec_only = pod.clone();
        spec_only.as_object_mut().unwrap().remove("status");
        let plain = decoded(&spec_only);
        let want_plain = effective(answer, "requests", "limits");
        if plain != want_plain {
            failures.push(format!(
                "pod {i} (plain options): Go {want_plain:?}, kubetrail {plain:?}\n  {pod}"
            ));
        }
        let sched = decoded(pod);
        let want_sched = effective(answer, "sched_requests", "sched_limits");
        if sched != want_sched {
            failures.push(format!(
                "pod {i} (scheduler options): Go {want_sched:?}, kubetrail {sched:?}\n  {pod}"
            ));
        }
    }
    eprintln!(
        "seed {seed}: {} pods, {resizing} where the scheduler's count differs from the spec's",
        pods.len()
    );
    assert!(
        resizing > 300,
        "seed {seed}: only {resizing} pods where the scheduler's count differs from the spec's"
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {} pods disagree with component-helpers, first 5:\n{}",
        failures.len(),
        pods.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}
