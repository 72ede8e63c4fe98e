//! `kubetrail demo`: the one-minute tour. Starts the simulator in-process, records it with churn
//! for `--duration` while showing progress, then runs a few real queries against the database it
//! wrote, printing each command so the reader can run it again, and ends by writing the HTML
//! report of what it recorded (`kubetrail-demo.html`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Cli, Command};
use kubetrail::model::time::{Window, now_ms, parse_duration};
use kubetrail::query::{self, PodFilter};
use kubetrail::recorder::{Recorder, RecorderConfig};
use kubetrail::report::ReportRequest;
use kubetrail::store::{Location, ReadOptions, WriteMode};
use kubetrail::{store, usage};
use kubetrail_sim::{self as sim, SimConfig};

/// The demo's database when --db is not given; a previous demo's copy is replaced.
const DEFAULT_DB: &str = "kubetrail-demo.db";
/// The demo's report beside it, replaced on every run.
const DEFAULT_REPORT: &str = "kubetrail-demo.html";

/// Flags of `kubetrail demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long to record the simulated cluster.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub duration: Duration,
    /// Where to keep the recorded database (must not exist yet). Default: ./kubetrail-demo.db,
    /// replaced on every run.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Seed of the simulated cluster.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(2) {
        return Err(format!(
            "{s:?} is too short to show anything; give at least 2s"
        ));
    }
    Ok(d)
}

/// Removes a database file with its WAL companions.
fn remove_db(path: &std::path::Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(PathBuf::from(p)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = match &args.db {
        Some(path) if path.exists() => {
            return Err(usage!(
                "--db {} already exists; the demo records into a new file (pick another path)",
                path.display()
            ));
        }
        Some(path) => path.clone(),
        None => {
            let path = PathBuf::from(DEFAULT_DB);
            remove_db(&path)?;
            path
        }
    };
    let kubeconfig_dir = tempfile::tempdir()?;
    println!("Starting a simulated cluster (6 nodes, ~60 pods, new pods every second) ...");
    let sim = sim::start(SimConfig {
        kubeconfig_out: Some(kubeconfig_dir.path().join("kubeconfig")),
        seed: args.seed,
        nodes: 6,
        pods: 60,
        churn_per_sec: 6.0,
        pace: 0.4,
        // Samples move every 2 s, so half a minute of recording shows usage.
        metrics_window: Duration::from_secs(2),
        ..Default::default()
    })
    .await?;
    println!(
        "  the simulator serves the Kubernetes API at {} (kubectl works against it)",
        sim.base_url()
    );
    println!(
        "Recording it into {} for {:?} ...",
        db.display(),
        args.duration
    );

    let store = store::open_writer(&Location::Sqlite(db.clone()), WriteMode::Record)?;
    let recorder = Recorder::new(
        sim.kube_client()?,
        store,
        RecorderConfig {
            snapshot_interval: Duration::from_secs(5),
            status_interval: Duration::from_secs(3600), // the progress bar replaces the status line
            usage_interval: Some(Duration::from_secs(2)),
            server: sim.base_url(),
            ..Default::default()
        },
    );
    let stats = recorder.stats();
    let duration = args.duration;
    let progress = ProgressBar::new(duration.as_secs());
    progress.set_style(
        ProgressStyle::with_template("  [{bar:30}] {pos}/{len}s  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let ticker = {
        let stats = stats.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                progress.set_position(started.elapsed().as_secs().min(duration.as_secs()));
                progress.set_message(format!(
                    "{} events, {} transitions written",
                    stats.events_total(),
                    stats.writer.transitions_total()
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let outcome = recorder.run(tokio::time::sleep(duration)).await?;
    ticker.abort();
    progress.finish_and_clear();
    drop(outcome.store);
    sim.shutdown().await?;
    let transitions = outcome.stats.writer.transitions_total();
    println!("Recorded {transitions} transitions.\n");

    let db_arg = db.display().to_string();
    let (pod, namespace) = most_restarted_pod(&db)?;
    let mut commands: Vec<Vec<String>> = vec![
        vec!["query", "pods", "--limit", "8"]
            .into_iter()
            .map(String::from)
            .collect(),
        vec![
            "query",
            "transitions",
            "--kind",
            "container_terminated",
            "--reason",
            "OOMKilled",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec!["query", "nodes", "--step", "10s"]
            .into_iter()
            .map(String::from)
            .collect(),
        vec!["query", "usage", "--by", "owner"]
            .into_iter()
            .map(String::from)
            .collect(),
    ];
    if let Some(pod) = pod {
        commands.insert(
            1,
            vec![
                "query".into(),
                "history".into(),
                pod,
                "-n".into(),
                namespace,
            ],
        );
    }
    for mut command in commands {
        command.extend(["--db".to_string(), db_arg.clone()]);
        println!("$ kubetrail {}", command.join(" "));
        let mut argv = vec!["kubetrail".to_string()];
        argv.extend(command);
        let cli = Cli::try_parse_from(&argv)?;
        if let Command::Query(query) = cli.command {
            super::query::run(query).await?;
        }
        println!();
    }
    println!(
        "The database is {db_arg}; try `kubetrail query --help` or `kubetrail export transitions --db {db_arg}`."
    );
    let html = report_path(args.db.as_deref());
    let reader = store::open_reader(
        &Location::Sqlite(db.clone()),
        ReadOptions {
            connections: query::nodes::WORKERS as u32 + 1,
            streaming: false,
        },
    )?;
    let request = ReportRequest {
        window: Window::default(),
        ..Default::default()
    };
    super::report::write_report(&*reader, &request, &db_arg, &html, now_ms())?;
    println!(
        "The report is {}: open it in a browser (one file, no network needed), or run \
         `kubetrail serve --db {db_arg}` for the live view.",
        html.display()
    );
    Ok(())
}

/// The demo's report: `kubetrail-demo.html`, or the `--db` file's name with `.html`.
fn report_path(db: Option<&std::path::Path>) -> PathBuf {
    match db {
        // A database named x.html keeps its name: the report goes to x.html.report.html.
        Some(db) if db.extension().is_some_and(|e| e == "html") => {
            let mut name = db.as_os_str().to_owned();
            name.push(".report.html");
            PathBuf::from(name)
        }
        Some(db) => db.with_extension("html"),
        None => PathBuf::from(DEFAULT_REPORT),
    }
}

/// The pod with the most container restarts (the most interesting history), if any restarted.
fn most_restarted_pod(db: &std::path::Path) -> anyhow::Result<(Option<String>, String)> {
    let reader = store::open_reader(&Location::Sqlite(db.to_path_buf()), ReadOptions::default())?;
    // The first pod (oldest first) with the most restarts, as `ORDER BY restarts DESC,
    // created_at_ms` picked it; a failed read means no suggestion, not a failed demo.
    let mut found: Option<(i64, String, String)> = None;
    let _ = query::for_each_pod(&*reader, &PodFilter::default(), now_ms(), |pod| {
        if pod.restarts > 0
            && found
                .as_ref()
                .is_none_or(|(most, _, _)| pod.restarts > *most)
        {
            found = Some((pod.restarts, pod.name, pod.namespace));
        }
        Ok(())
    });
    let found = found.map(|(_, name, ns)| (name, ns));
    Ok(match found {
        Some((name, ns)) => (Some(name), ns),
        None => (None, String::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_report_never_takes_the_database_name() {
        assert_eq!(report_path(None), PathBuf::from("kubetrail-demo.html"));
        assert_eq!(
            report_path(Some(Path::new("/t/a.db"))),
            PathBuf::from("/t/a.html")
        );
        assert_eq!(
            report_path(Some(Path::new("/t/a.html"))),
            PathBuf::from("/t/a.html.report.html")
        );
    }
}
