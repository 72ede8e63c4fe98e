//! Recorder benchmark: `kubetrail record` against `kubetrail simulate`, two processes over real
//! HTTP, as a user runs them. Measures, per run:
//! - the initial list: time from start until the rows of N pods and M nodes are committed;
//! - the CPU seconds the recorder spent by then (user + system; steadier than the wall-clock
//!   time on a machine shared with other work);
//! - resident memory with the pods cached (VmRSS after the list, the peak VmHWM, and VmRSS at
//!   the end, once the side watches' lists are done);
//! - bytes on disk per transition (database + WAL size / transition rows);
//! - the sustained rate: watch events per second through to committed rows while the
//!   simulator churns as fast as it can, and the write lag at the end.
//!
//! ```sh
//! cargo build --release --bin kubetrail --example bench_record
//! $CARGO_TARGET_DIR/release/examples/bench_record [PODS] [NODES] [RUNS] [CHURN_SECS]
//! ```
//! Defaults: 100000 pods, 5000 nodes, 3 runs, 20 s of churn. Prints each run and the medians.
//! `KUBETRAIL_BIN=/path/to/kubetrail` benchmarks another build (to compare two in one session);
//! `KUBETRAIL_SIM_BIN` takes the simulator from a build of its own, so that two recorders are
//! compared against the same simulated cluster (the default is the recorder's own build).
//! `KUBETRAIL_BENCH_STORE=postgres` records into a PostgreSQL server started for the benchmark
//! (Debian's binaries, default durability: every commit flushed), a fresh database per run;
//! bytes per transition are then the database's tables and indexes.
//! `KUBETRAIL_PG_SETTINGS="-c shared_preload_libraries=pg_stat_statements"` adds server
//! settings; with that one the benchmark ends by printing where the server's time went.
//! `KUBETRAIL_RECORD_ARGS="--no-events"` passes more flags to `record` (space-separated), to
//! compare a recorder with and without Kubernetes Events against one simulator build. Each run
//! also reports the Event rows committed per second, the events dropped, and (SQLite) the bytes
//! each event takes on disk: the events tables and their indexes, from `dbstat`, over the rows.
//! `KUBETRAIL_BENCH_CHURN=10` has the simulator create that many pods a second instead of 5000
//! (flat out), `KUBETRAIL_BENCH_PACE=1` runs the pods' lifecycles at their normal pace instead
//! of twenty times faster (0.05), and `KUBETRAIL_SIM_ARGS="--event-flood 10000"` passes more
//! flags to `simulate`: together they measure whether an Events flood delays the pods'
//! transitions. For that each run also samples the write lag of the pods' rows (the age of the
//! oldest rows waiting for a commit, `kubetrail_write_lag_seconds`) four times a second over
//! the churn, and reports its median and its maximum. `KUBETRAIL_BENCH_SETTLE=1` starts the
//! churn only once the Events and owners lists are committed (the steady state).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn kubetrail_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("KUBETRAIL_BIN") {
        return PathBuf::from(bin);
    }
    // target/release/examples/bench_record -> target/release/kubetrail
    let exe = std::env::current_exe().expect("own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("kubetrail")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(addr: &str, method: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The sum of a metric's samples over all its label sets.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter(|rest| rest.starts_with([' ', '{']))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process has spent so far, from /proc/PID/stat: on a
/// machine shared with other work this moves far less than the wall-clock times.
fn cpu_secs(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // utime and stime are the 12th and 13th fields after the parenthesised command name.
    let fields: Vec<&str> = text
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The first line of the log that holds every one of `needles`.
fn wait_for(path: &Path, needles: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {needles:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

struct Run {
    list_committed_s: f64,
    /// CPU seconds the recorder spent up to two seconds after the list was committed.
    list_cpu_s: f64,
    rss_mb: f64,
    peak_mb: f64,
    /// VmRSS at the end of the churn, with the side watches' lists (Events, owners) done.
    end_rss_mb: f64,
    bytes_per_transition: f64,
    events_per_s: f64,
    transitions_per_s: f64,
    lag_ms: f64,
    /// The write lag sampled over the churn: median and maximum.
    lag_p50_ms: f64,
    lag_max_ms: f64,
    event_rows_per_s: f64,
    events_dropped: f64,
    bytes_per_event: f64,
}

/// Where a run records: a SQLite file, or a fresh database on the benchmark's server.
enum Store {
    Sqlite(PathBuf),
    Postgres { conninfo: String, url: String },
}

impl Store {
    fn args(&self) -> Vec<String> {
        match self {
            Store::Sqlite(path) => vec!["--db".into(), path.display().to_string()],
            Store::Postgres { url, .. } => {
                vec![
                    "--db".into(),
                    url.clone(),
                    "--cluster".into(),
                    "bench".into(),
                ]
            }
        }
    }

    /// Page bytes of the events tables and their indexes per event row (SQLite's `dbstat`);
    /// NaN without events or for PostgreSQL.
    fn bytes_per_event(&self) -> f64 {
        let Store::Sqlite(db) = self else {
            return f64::NAN;
        };
        let conn = rusqlite::Connection::open(db).unwrap();
        let events: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap_or(0);
        let bytes: i64 = conn
            .query_row(
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN
                     (SELECT name FROM sqlite_master WHERE tbl_name IN ('events', 'event_occurrences'))",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        if events == 0 {
            f64::NAN
        } else {
            bytes as f64 / events as f64
        }
    }

    /// (transition rows, bytes the history takes).
    fn measure(&self) -> (f64, f64) {
        match self {
            Store::Sqlite(db) => {
                let conn = rusqlite::Connection::open(db).unwrap();
                let rows: i64 = conn
                    .query_row("SELECT count(*) FROM transitions", [], |r| r.get(0))
                    .unwrap();
                drop(conn);
                let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64;
                let wal = PathBuf::from(format!("{}-wal", db.display()));
                (rows as f64, size(db) + size(&wal))
            }
            Store::Postgres { conninfo, .. } => {
                let mut c = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
                let rows: i64 = c
                    .query_one("SELECT count(*) FROM transitions", &[])
                    .unwrap()
                    .get(0);
                // Every table and partition with its indexes and TOAST.
                let bytes: i64 = c
                    .query_one(
                        "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = 'public' AND c.relkind = 'r'",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                (rows as f64, bytes as f64)
            }
        }
    }
}

fn one_run(
    pods: usize,
    nodes: usize,
    churn_secs: u64,
    dir: &Path,
    server: Option<&kubetrail_pgtest::PgServer>,
) -> Run {
    let bin = kubetrail_binary();
    let sim_bin = std::env::var_os("KUBETRAIL_SIM_BIN").map_or_else(|| bin.clone(), PathBuf::from);
    let kubeconfig = dir.join("kubeconfig");
    let store = match server {
        Some(server) => {
            let conninfo = server.fresh_database();
            let url = server.url(&conninfo);
            Store::Postgres { conninfo, url }
        }
        None => Store::Sqlite(dir.join("bench.db")),
    };
    let sim_log = dir.join("sim.log");
    let mut sim = Command::new(&sim_bin)
        .args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--paused",
            "--seed",
            "7",
        ])
        .args([
            "--pods",
            &pods.to_string(),
            "--nodes",
            &nodes.to_string(),
            "--churn",
            &std::env::var("KUBETRAIL_BENCH_CHURN").unwrap_or_else(|_| "5000".into()),
            "--pace",
            &std::env::var("KUBETRAIL_BENCH_PACE").unwrap_or_else(|_| "0.05".into()),
        ])
        .args(
            std::env::var("KUBETRAIL_SIM_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&sim_log).unwrap())
        .spawn()
        .expect("start the simulator");
    let stdout = sim.stdout.take().unwrap();
    let sim = Killed(sim);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let sim_addr = line
        .trim()
        .trim_start_matches("serving on http://")
        .to_string();

    let rec_log = dir.join("record.log");
    let metrics_port = 20000 + (std::process::id() % 20000) as u16;
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let rec = Command::new(&bin)
        .args([
            "record",
            "--status-interval",
            "5s",
            "--metrics-addr",
            &metrics_addr,
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(store.args())
        .args(
            std::env::var("KUBETRAIL_RECORD_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&rec_log).unwrap())
        .spawn()
        .expect("start the recorder");
    let pid = rec.id();
    let rec = Killed(rec);
    let committed = wait_for(
        &rec_log,
        &["initial list committed"],
        Duration::from_secs(300),
    );
    let list_committed_s = field(&committed, "elapsed_ms") / 1000.0;
    std::thread::sleep(Duration::from_secs(2));
    let rss_mb = status_kb(pid, "VmRSS:") as f64 / 1024.0;
    let peak_mb = status_kb(pid, "VmHWM:") as f64 / 1024.0;
    let list_cpu_s = cpu_secs(pid);

    if std::env::var_os("KUBETRAIL_BENCH_SETTLE").is_some() {
        settle(&rec_log, &metrics_addr);
    }

    // Sustained rate: the simulator churns flat out; count events the recorder received and
    // transitions it committed over the window.
    let before = http(&metrics_addr, "GET", "/metrics");
    http(&sim_addr, "POST", "/_sim/resume");
    let started = Instant::now();
    let mut lags = Vec::new();
    while started.elapsed() < Duration::from_secs(churn_secs) {
        std::thread::sleep(Duration::from_millis(250));
        let now = http(&metrics_addr, "GET", "/metrics");
        lags.push(metric(&now, "kubetrail_write_lag_seconds") * 1000.0);
    }
    let lag_max_ms = lags.iter().copied().fold(0.0, f64::max);
    let lag_p50_ms = median(lags);
    let after = http(&metrics_addr, "GET", "/metrics");
    let secs = started.elapsed().as_secs_f64();
    let end_rss_mb = status_kb(pid, "VmRSS:") as f64 / 1024.0;
    http(&sim_addr, "POST", "/_sim/pause");
    let events = |t: &str| metric(t, "kubetrail_watch_events_total");
    let events_per_s = (events(&after) - events(&before)) / secs;
    let transitions = |t: &str| metric(t, "kubetrail_transitions_written_total");
    let transitions_per_s = (transitions(&after) - transitions(&before)) / secs;
    let lag_ms = metric(&after, "kubetrail_write_lag_seconds") * 1000.0;
    let written = |t: &str| metric(t, "kubetrail_events_written_total");
    let event_rows_per_s = (written(&after) - written(&before)) / secs;
    let events_dropped = metric(&after, "kubetrail_events_dropped_total");

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    drop(rec);
    drop(sim);
    let (rows, bytes) = store.measure();
    let bytes_per_transition = bytes / rows;
    let bytes_per_event = store.bytes_per_event();
    Run {
        list_committed_s,
        list_cpu_s,
        rss_mb,
        peak_mb,
        end_rss_mb,
        bytes_per_transition,
        events_per_s,
        transitions_per_s,
        lag_ms,
        lag_p50_ms,
        lag_max_ms,
        event_rows_per_s,
        events_dropped,
        bytes_per_event,
    }
}

/// With `KUBETRAIL_BENCH_SETTLE=1`: waits, the simulator still paused, until the side
/// watches (Events, owners) have listed and the writer has committed what they handed on, so
/// that the churn measures the steady state and not the lists' tail.
fn settle(rec_log: &Path, metrics_addr: &str) {
    let flags = std::env::var("KUBETRAIL_RECORD_ARGS").unwrap_or_default();
    let long = Duration::from_secs(300);
    if !flags.contains("--no-events") {
        wait_for(rec_log, &["event list done"], long);
    }
    if !flags.contains("--no-owners") {
        for kind in ["ReplicaSet", "Job"] {
            wait_for(rec_log, &["owner list done", kind], long);
        }
    }
    let written = || {
        let t = http(metrics_addr, "GET", "/metrics");
        metric(&t, "kubetrail_events_written_total") + metric(&t, "kubetrail_rows_written_total")
    };
    let deadline = Instant::now() + long;
    let mut last = written();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = written();
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (pods, nodes, runs, churn_secs) = (
        arg(1, 100_000) as usize,
        arg(2, 5_000) as usize,
        arg(3, 3),
        arg(4, 20),
    );
    let postgres = std::env::var("KUBETRAIL_BENCH_STORE").as_deref() == Ok("postgres");
    let server =
        postgres.then(|| kubetrail_pgtest::PgServer::durable().expect("a PostgreSQL server"));
    println!(
        "recorder benchmark: {pods} pods, {nodes} nodes, {runs} runs, {churn_secs}s of churn, into {}",
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
    let mut results = Vec::new();
    for i in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let r = one_run(pods, nodes, churn_secs, dir.path(), server.as_ref());
        println!(
            "run {}: initial list committed {:.2}s ({:.2} CPU s), RSS {:.0} MB (peak {:.0} MB, {:.0} MB at the end), \
             {:.0} bytes/transition, {:.0} events/s, {:.0} transitions/s, lag {:.0} ms (over the churn: median {:.0}, max {:.0}); \
             {:.0} Event rows/s, {} dropped, {:.0} bytes/event",
            i + 1,
            r.list_committed_s,
            r.list_cpu_s,
            r.rss_mb,
            r.peak_mb,
            r.end_rss_mb,
            r.bytes_per_transition,
            r.events_per_s,
            r.transitions_per_s,
            r.lag_ms,
            r.lag_p50_ms,
            r.lag_max_ms,
            r.event_rows_per_s,
            r.events_dropped,
            r.bytes_per_event
        );
        results.push(r);
    }
    if let Some(server) = &server {
        print_top_statements(server);
    }
    let m = |f: fn(&Run) -> f64| median(results.iter().map(f).collect());
    println!(
        "median: initial list committed {:.2}s ({:.2} CPU s), RSS {:.0} MB (peak {:.0} MB, {:.0} MB at the end), \
         {:.0} bytes/transition, {:.0} events/s, {:.0} transitions/s, lag {:.0} ms (over the churn: median {:.0}, max {:.0}); \
         {:.0} Event rows/s, {:.0} dropped, {:.0} bytes/event",
        m(|r| r.list_committed_s),
        m(|r| r.list_cpu_s),
        m(|r| r.rss_mb),
        m(|r| r.peak_mb),
        m(|r| r.end_rss_mb),
        m(|r| r.bytes_per_transition),
        m(|r| r.events_per_s),
        m(|r| r.transitions_per_s),
        m(|r| r.lag_ms),
        m(|r| r.lag_p50_ms),
        m(|r| r.lag_max_ms),
        m(|r| r.event_rows_per_s),
        m(|r| r.events_dropped),
        m(|r| r.bytes_per_event)
    );
}

/// With `KUBETRAIL_PG_SETTINGS="-c shared_preload_libraries=pg_stat_statements"`: where the
/// server's time went over all runs, the ten statements that took most of it.
fn print_top_statements(server: &kubetrail_pgtest::PgServer) {
    let mut c = postgres::Client::connect(&server.conninfo("postgres"), postgres::NoTls).unwrap();
    if c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .is_err()
    {
        return;
    }
    let Ok(rows) = c.query(
        "SELECT total_exec_time, calls, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
         FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10",
        &[],
    ) else {
        return;
    };
    println!("server time by statement (pg_stat_statements, all runs):");
    for r in rows {
        let (ms, calls, n, sql): (f64, i64, i64, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        println!("  {:>9.0} ms {calls:>7} calls {n:>9} rows  {sql}", ms);
    }
}
