//! `kubetrail report` and `kubetrail serve` in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, through WebDriver): the page's script must run without errors, draw its
//! charts, timelines and tables from the recorded history, show a marker's row on hover, make
//! no network request for a report file, and, served live beside a running recorder, search
//! and pick time ranges with shareable URLs.
//!
//! Every expectation is read back from the same database with `kubetrail query ... -o json`, so
//! a page that drew the wrong pod, count or time fails.

#[path = "common/browser.rs"]
mod browser;
#[path = "common/recorded.rs"]
mod recorded;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use browser::Browser;
use recorded::{RecorderProcess, SimProcess, kubetrail, page_time, query_json, recorded};
use serde_json::Value;

/// True once the page drew its report; the page's own message if it could not load it.
const READY: &str = "const r = document.body.dataset.ready;
    return r === '1' ? true : r === 'error' ? document.getElementById('kt-status').textContent : false";
const LOAD: Duration = Duration::from_secs(120);

fn wait_ready(browser: &Browser) {
    let state = browser.wait_until(READY, LOAD);
    assert_eq!(state, Value::Bool(true), "the page did not load its report");
}

fn int(browser: &Browser, script: &str) -> i64 {
    let v = browser.eval(script);
    v.as_i64().unwrap_or_else(|| panic!("{script}: {v}"))
}

fn text(browser: &Browser, script: &str) -> String {
    browser
        .eval(script)
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Pixels of a canvas that are neither transparent nor (near) white or the empty grey:
/// something was drawn.
const DRAWN_PIXELS: &str = "
    const c = document.querySelector(arguments[0] || '#kt-heatmap');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
        const [r, g, b, a] = [d[i], d[i+1], d[i+2], d[i+3]];
        if (a > 0 && !(r > 215 && g > 215 && b > 215)) n++;
    }
    return n;";

fn drawn_pixels(browser: &Browser, css: &str) -> i64 {
    let script = DRAWN_PIXELS.replace("arguments[0]", &format!("{css:?}"));
    int(browser, &script)
}

#[test]
fn a_report_file_draws_the_recorded_history_offline_and_without_errors() {
    let fixture = recorded("report_browser");
    let out = fixture.dir.join("report.html");
    let run = kubetrail(&[
        "report",
        "--db",
        fixture.db_str(),
        "--since",
        "1h",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.ok().trim(), out.to_str().unwrap(), "{}", run.stderr);

    let pods = query_json(&fixture.db, &["pods"]);
    let browser = Browser::start();
    browser.goto(&format!("file://{}", out.display()));
    wait_ready(&browser);
    let shot = fixture.dir.join("report.png");
    browser.screenshot(&shot);
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    // A report file fetches nothing: no script, style, image or API request.
    let requests = browser.eval("return performance.getEntriesByType('resource').map(e => e.name)");
    assert_eq!(requests, Value::Array(vec![]), "the report made requests");

    // Every recorded pod (all of them overlap the recorded time) is counted.
    let status = text(
        &browser,
        "return document.getElementById('kt-status').textContent",
    );
    assert!(
        status.starts_with(&format!("{} pods in ", pods.len())),
        "{status} (query pods: {})",
        pods.len()
    );
    let since = int(&browser, "return +document.body.dataset.sinceMs");
    let until = int(&browser, "return +document.body.dataset.untilMs");
    assert!(since < until);

    // The cluster chart and the heatmap were drawn; one heatmap row per node.
    assert!(
        drawn_pixels(&browser, "#kt-overview canvas") > 200,
        "overview chart is empty"
    );
    assert!(
        drawn_pixels(&browser, "#kt-heatmap") > 0,
        "heatmap is empty"
    );
    let mut nodes: Vec<String> = query_json(&fixture.db, &["nodes", "--step", "1h"])
        .iter()
        .filter_map(|r| r["node"].as_str().map(str::to_string))
        .chain(
            pods.iter()
                .filter_map(|p| p["node"].as_str().map(str::to_string)),
        )
        .collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(
        int(
            &browser,
            "return +document.getElementById('kt-heatmap').dataset.nodes"
        ),
        nodes.len() as i64
    );
    let mut labels: Vec<String> = browser
        .eval(
            "return [...document.querySelectorAll('#kt-heat-labels div')].map(d => d.textContent)",
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    labels.sort();
    assert_eq!(labels, nodes);
    // The busiest node's detail: a CPU and a memory chart.
    assert_eq!(
        int(
            &browser,
            "return document.querySelectorAll('#kt-node-detail .uplot').length"
        ),
        2
    );

    // The top restarting pod is the one `query pods` says restarted most (oldest first on a tie).
    let top = pods
        .iter()
        .fold(None::<&Value>, |best, p| match best {
            Some(b) if b["restarts"].as_i64() >= p["restarts"].as_i64() => Some(b),
            _ => Some(p),
        })
        .expect("pods");
    let (ns, name) = (
        top["namespace"].as_str().unwrap(),
        top["name"].as_str().unwrap(),
    );
    let first_row = browser.eval(
        "const r = document.querySelector('#kt-top-restarts tr:nth-child(2)');
         return [r.cells[0].textContent, r.cells[2].textContent]",
    );
    assert_eq!(first_row[0], format!("{ns}/{name}"));
    assert_eq!(first_row[1], top["restarts"].as_i64().unwrap().to_string());

    // Its link opens its timeline, with one restart mark per restart recorded in the window.
    browser.click("#kt-top-restarts a.pod-link");
    browser.wait_until(
        &format!("return !!document.querySelector('.pod.target[data-name=\"{name}\"]')"),
        Duration::from_secs(10),
    );
    assert!(text(&browser, "return location.hash").contains("pod="));
    let uid = top["uid"].as_str().unwrap();
    let history = query_json(&fixture.db, &["history", "--uid", uid]);
    let restarts: Vec<&Value> = history[0]["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "container_restarted")
        .filter(|t| (since..until).contains(&t["at_ms"].as_i64().unwrap()))
        .collect();
    assert!(!restarts.is_empty(), "the top pod restarted in the window");
    let pod_index = text(
        &browser,
        &format!("return document.querySelector('.pod.target[data-name=\"{name}\"]').dataset.pod"),
    );
    let row = format!(".pod[data-pod=\"{pod_index}\"]");
    assert_eq!(
        int(
            &browser,
            &format!("return document.querySelectorAll('{row} .mk.restart').length")
        ),
        restarts.len() as i64
    );

    // Hovering the first restart mark shows that transition's row.
    browser.hover(&format!("{row} .mk.restart"));
    let tip = browser.wait_until(
        "const t = document.getElementById('kt-tip'); return !t.hidden && t.textContent",
        Duration::from_secs(10),
    );
    let tip = tip.as_str().unwrap();
    browser.screenshot(&fixture.dir.join("timeline.png"));
    let first = restarts[0];
    assert!(tip.contains("container_restarted"), "{tip}");
    assert!(
        tip.contains(&page_time(first["at_ms"].as_i64().unwrap())),
        "{tip} vs {first}"
    );
    assert!(tip.contains(&format!("{ns}/{name}")), "{tip}");
    if let Some(count) = first["restart_count"].as_i64() {
        assert!(tip.contains(&format!("restart count{count}")), "{tip}");
    }

    // The pod with the most Warning events in the window has one triangle per event (a series
    // is one), each where `query history` says it was last seen.
    let in_window = |e: &Value| {
        let (first, last) = (
            e["first_seen_ms"].as_i64().unwrap(),
            e["last_seen_ms"].as_i64().unwrap(),
        );
        first < until && last >= since
    };
    let warnings = query_json(&fixture.db, &["events", "--type", "Warning"]);
    let mut per_pod: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for e in warnings
        .iter()
        .filter(|e| e["kind"] == "Pod" && in_window(e))
    {
        let key = (
            e["namespace"].as_str().unwrap().to_string(),
            e["name"].as_str().unwrap().to_string(),
        );
        *per_pod.entry(key).or_default() += 1;
    }
    let ((wns, wname), _) = per_pod
        .iter()
        .max_by_key(|(k, n)| (**n, std::cmp::Reverse((*k).clone())))
        .expect("a Warning event about a pod in the window");
    let expected: Vec<Value> = query_json(&fixture.db, &["history", wname, "-n", wns])
        .iter()
        .flat_map(|inc| inc["events"].as_array().unwrap().clone())
        .filter(|e| e["type"] == "Warning" && in_window(e))
        .collect();
    browser.eval(&format!(
        "location.hash = 'pod=' + encodeURIComponent({:?}); return 1",
        format!("{wns}/{wname}")
    ));
    let rows = format!(".pod[data-name=\"{wname}\"]");
    browser.wait_until(
        &format!("return !!document.querySelector('{rows}.target')"),
        Duration::from_secs(10),
    );
    let marks = browser.eval(&format!(
        "return [...document.querySelectorAll('{rows} .mk.warning')].map(m => m.dataset.reason)"
    ));
    let mut drawn: Vec<String> = marks
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = expected
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    drawn.sort();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(drawn, want, "Warning marks of {wns}/{wname}");
    // Hovering one shows its event: reason, last seen, and the count of a series.
    browser.hover(&format!("{rows} .mk.warning"));
    let tip = browser.wait_until(
        "const t = document.getElementById('kt-tip'); return !t.hidden && t.textContent.includes('Warning event') && t.textContent",
        Duration::from_secs(10),
    );
    let tip = tip.as_str().unwrap();
    browser.screenshot(&fixture.dir.join("warning.png"));
    assert!(
        expected.iter().any(|e| tip
            .contains(&format!("Warning event{}", e["reason"].as_str().unwrap()))
            && tip.contains(&page_time(e["last_seen_ms"].as_i64().unwrap()))),
        "{tip} vs {expected:?}"
    );
    // The reasons table counts occurrences as `query events` does.
    let mut occurrences: std::collections::BTreeMap<String, i64> = Default::default();
    for e in warnings.iter().filter(|e| in_window(e)) {
        *occurrences
            .entry(e["reason"].as_str().unwrap_or("").to_string())
            .or_default() += e["count"].as_i64().unwrap().max(1);
    }
    let table = browser.eval(
        "return [...document.querySelectorAll('#kt-warning-reasons tr')].slice(1).map(r => [r.cells[0].textContent, r.cells[1].textContent])",
    );
    let table: std::collections::BTreeMap<String, i64> = table
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(table, occurrences);

    // The OOMKill table lists the OOMKilled terminations of the window, newest first.
    let since_arg = page_time(since);
    let until_arg = page_time(until);
    let ooms = query_json(
        &fixture.db,
        &[
            "transitions",
            "--kind",
            "container_terminated",
            "--reason",
            "OOMKilled",
            "--since",
            &since_arg,
            "--until",
            &until_arg,
        ],
    );
    let listed = int(
        &browser,
        "return document.querySelectorAll('#kt-oom-kills a.pod-link').length",
    );
    assert_eq!(listed, ooms.len().min(25) as i64);
    if let Some(newest) = ooms.last() {
        let cell = text(
            &browser,
            "return document.querySelector('#kt-oom-kills tr:nth-child(2) td').textContent",
        );
        assert_eq!(cell, page_time(newest["at_ms"].as_i64().unwrap()));
    }
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

/// `kubetrail serve` as a child; killed on drop.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(db: &Path) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
            .args(["serve", "--addr", "127.0.0.1:0", "--db"])
            .arg(db)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubetrail serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read");
        let url = line
            .strip_prefix("serving on ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Served { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_live_view_beside_a_recorder_searches_and_picks_time_ranges_with_shareable_urls() {
    let sim = SimProcess::spawn(recorded::SIM_ARGS);
    let db = sim.dir().join("live.db");
    let rec = RecorderProcess::spawn(sim.kubeconfig_path(), &db, &sim.dir().join("rec.log"), &[]);
    rec.wait_for_log(
        "initial list of pods and nodes done",
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(3));
    let served = Served::start(&db);
    let pods = query_json(&db, &["pods"]);
    let pod_before_load = pods[pods.len() / 2]["name"].as_str().unwrap().to_string();

    let browser = Browser::start();
    browser.goto(&format!("{}/", served.url));
    wait_ready(&browser);
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert_eq!(
        text(
            &browser,
            "return document.getElementById('kt-range').hidden ? 'hidden' : 'shown'"
        ),
        "shown",
        "the live page has a time-range picker"
    );
    // It read the API of the server that served it, and nothing else.
    let requests = browser
        .eval("return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)");
    assert_eq!(requests, serde_json::json!(["/api/report"]));
    let first_until = int(&browser, "return +document.body.dataset.untilMs");

    // Search for a pod the recorder had before the page read its report.
    let pod = pod_before_load.clone();
    browser.type_into("#kt-search", &pod);
    browser.wait_until(
        &format!("return location.hash.includes('q={pod}')"),
        Duration::from_secs(10),
    );
    let names = browser.wait_until(
        "const rows = [...document.querySelectorAll('#kt-timelines .pod')].map(r => r.dataset.name);
         return rows.length ? rows : null",
        Duration::from_secs(10),
    );
    for name in names.as_array().unwrap() {
        assert!(
            name.as_str().unwrap().contains(&pod),
            "{name} does not match {pod}"
        );
    }
    // The URL is shareable: a fresh page at it shows the same search.
    let shared = text(&browser, "return location.href");
    browser.goto("about:blank");
    browser.goto(&shared);
    wait_ready(&browser);
    assert_eq!(
        text(
            &browser,
            "return document.getElementById('kt-search').value"
        ),
        pod
    );
    let summary = text(
        &browser,
        "return document.getElementById('kt-tl-summary').textContent",
    );
    assert!(
        summary.contains(&format!("Matching \u{201c}{pod}\u{201d}")),
        "{summary}"
    );

    // A time range: the last 2 s only, read again from the live database.
    std::thread::sleep(Duration::from_secs(1));
    browser.eval("document.getElementById('kt-since').value = '2s'; return 0");
    browser.click("#kt-apply");
    browser.wait_until(
        &format!("return document.body.dataset.ready === '1' && +document.body.dataset.untilMs > {first_until}"),
        LOAD,
    );
    let since = int(&browser, "return +document.body.dataset.sinceMs");
    let until = int(&browser, "return +document.body.dataset.untilMs");
    assert!(until - since <= 2_000, "{since}..{until}");
    assert!(text(&browser, "return location.hash").contains("since=2s"));
    // A pod's full history comes from /api/history.
    browser.eval("document.getElementById('kt-search').value = ''; return 0");
    browser.goto(&format!("{}/#q={pod}", served.url));
    wait_ready(&browser);
    browser.wait_until(
        "return !!document.querySelector('#kt-timelines .pod .pname')",
        Duration::from_secs(10),
    );
    browser.click("#kt-timelines .pod .pname");
    browser.wait_until(
        "return document.querySelectorAll('.history tr').length > 1",
        Duration::from_secs(30),
    );
    let history = query_json(&db, &["history", &pod]);
    let first_kind = history[0]["transitions"][0]["kind"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = text(
        &browser,
        "return document.querySelector('.history tr:nth-child(2) td:nth-child(2)').textContent",
    );
    assert_eq!(shown, first_kind);
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    drop(browser);
    let status = rec.stop();
    assert!(status.success());
}
