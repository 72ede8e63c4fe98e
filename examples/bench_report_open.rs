//! How fast a report file opens in a real browser: headless Chromium (Debian's `chromium`,
//! driven by `chromedriver` as in the tests) opens the file several times, and the page's own
//! performance marks say when its report was inflated and parsed, when it was drawn, and when
//! the frame after it was painted, all from navigation start. BENCHMARKS.md has the figures.
//!
//! ```text
//! kubetrail report --db /tmp/big.db --since 7d --out /tmp/big.html
//! cargo run --release --example bench_report_open -- /tmp/big.html 5
//! ```

#[path = "../tests/common/browser.rs"]
mod browser;

use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .expect("usage: bench_report_open REPORT.html [RUNS]");
    let runs: usize = args.next().map_or(5, |r| r.parse().expect("RUNS"));
    let path = std::fs::canonicalize(&file).expect("the report file");
    let bytes = std::fs::metadata(&path).expect("stat").len();
    let browser = browser::Browser::start();
    println!(
        "{} ({:.2} MB), {runs} runs",
        path.display(),
        bytes as f64 / 1e6
    );
    println!("run  loaded_ms  drawn_ms  painted_ms  heap_mb");
    let mut painted = Vec::new();
    for run in 1..=runs {
        browser.goto("about:blank");
        browser.goto(&format!("file://{}", path.display()));
        browser.wait_until(
            "return document.body.dataset.paintedMs || document.body.dataset.ready === 'error'",
            Duration::from_secs(300),
        );
        let t = browser.eval(
            "const d = document.body.dataset;
             return [+d.loadedMs, +d.drawnMs, +d.paintedMs,
                     performance.memory ? performance.memory.usedJSHeapSize / 1e6 : 0]",
        );
        let t: Vec<f64> = t
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        println!(
            "{run:>3}  {:>9.0}  {:>8.0}  {:>10.0}  {:>7.0}",
            t[0], t[1], t[2], t[3]
        );
        painted.push(t[2]);
        let errors = browser.console_errors();
        assert!(errors.is_empty(), "console errors: {errors:?}");
    }
    painted.sort_by(f64::total_cmp);
    println!("median painted: {:.0} ms", painted[painted.len() / 2]);
}
