//! `kubetrail export transitions|pods|events|nodes|workloads`: RFC 4180 CSV reports for spreadsheets.
//!
//! An export is the matching `query` with `-o csv`: the same filters, the same row functions
//! and the same columns, so the two never disagree. What export adds is for big outputs: rows
//! stream straight to the file (nothing is collected), `--out` is written to a temporary file
//! and renamed into place only when complete, and a progress line appears on stderr when it is
//! a terminal.
//!
//! `--out` is checked before anything is read (a directory, a missing parent, the database
//! itself). The temporary file is removed on every way out but `kill -9`: an error, a panic
//! (a drop guard), and SIGINT/SIGTERM, which stop the export at the next row.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::query::{
    DbArgs, EventFilterArgs, NodeFilterArgs, PodFilterArgs, TransitionFilterArgs, WindowArgs,
    cli_error, clustered, open_pool, open_with,
};
use kubetrail::output::{Format, Record, Renderer};
use kubetrail::query::{self, QueryError, for_each_node_bucket, for_each_pod, for_each_transition};
use kubetrail::store::{HistoryReader, ReadOptions};
use kubetrail::usage;

/// Subcommands of `kubetrail export`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every transition matching the filters (same flags as `query transitions`).
    Transitions(TransitionsArgs),
    /// One row per pod incarnation (same flags as `query pods`).
    Pods(PodsArgs),
    /// Node utilisation per bucket (same flags as `query nodes`).
    Nodes(NodesArgs),
    /// Kubernetes Events about pods and nodes (same flags as `query events`).
    Events(EventsArgs),
    /// One row per workload: pods, restarts, OOMKills, failures, evictions, time Pending
    /// (same flags as `query workloads`).
    Workloads(WorkloadsArgs),
    /// Requests against measured usage per pod, container or owner (same flags as `query usage`).
    Usage(UsageArgs),
}

#[derive(Debug, clap::Args)]
pub struct WorkloadsArgs {
    #[command(flatten)]
    pub filter: super::owners::WorkloadFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub filter: super::query::UsageFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub filter: EventFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// `--out`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutArgs {
    /// Write the CSV to this file (replaced only once complete) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TransitionsArgs {
    #[command(flatten)]
    pub filter: TransitionFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct PodsArgs {
    #[command(flatten)]
    pub filter: PodFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub filter: NodeFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Set by SIGINT/SIGTERM: the export stops at the next row and removes its temporary file.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub async fn run(command: Command) -> anyhow::Result<()> {
    let mut task = tokio::task::spawn_blocking(move || run_blocking(command));
    tokio::select! {
        done = &mut task => return done.context("export task failed")?,
        () = super::connect::shutdown_signal() => INTERRUPTED.store(true, Ordering::Relaxed),
    }
    task.await.context("export task failed")?
}

impl OutArgs {
    /// Refuses an `--out` that cannot take the report, before any row is read.
    fn check(&self, db: &DbArgs) -> anyhow::Result<()> {
        let Some(path) = &self.out else {
            return Ok(());
        };
        if path.is_dir() {
            return Err(usage!(
                "--out {} is a directory; give a file name such as {}",
                path.display(),
                path.join("export.csv").display()
            ));
        }
        if path.file_name().is_none() {
            return Err(usage!("--out {} is not a file name", path.display()));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            return Err(usage!(
                "--out {}: directory {} does not exist",
                path.display(),
                parent.display()
            ));
        }
        // Overwriting the database with a report would destroy the history.
        if let (Ok(a), Ok(b)) = (path.canonicalize(), Path::new(&db.db).canonicalize())
            && a == b
        {
            return Err(usage!(
                "--out {} is the database itself; choose another file",
                path.display()
            ));
        }
        Ok(())
    }
}

fn run_blocking(command: Command) -> anyhow::Result<()> {
    let now_ms = kubetrail::model::time::now_ms();
    let (out, db) = match &command {
        Command::Transitions(a) => (&a.out, &a.db),
        Command::Pods(a) => (&a.out, &a.db),
        Command::Nodes(a) => (&a.out, &a.db),
        Command::Events(a) => (&a.out, &a.db),
        Command::Workloads(a) => (&a.out, &a.db),
        Command::Usage(a) => (&a.out, &a.db),
    };
    out.check(db)?;
    match command {
        Command::Transitions(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?)?;
            let reader = open_for_export(&args.db)?;
            export::<query::TransitionRecord>(&args.out, clustered(&*reader), |emit| {
                for_each_transition(&*reader, &filter, emit)
            })
        }
        Command::Pods(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?);
            let reader = open_for_export(&args.db)?;
            export::<query::PodSummary>(&args.out, clustered(&*reader), |emit| {
                match &args.filter.owner {
                    Some(owner) => {
                        query::owners::for_each_pod_of(&*reader, &filter, owner, now_ms, emit)
                    }
                    None => for_each_pod(&*reader, &filter, now_ms, emit),
                }
            })
        }
        Command::Workloads(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?);
            let reader = open_for_export(&args.db)?;
            export::<query::workloads::WorkloadRecord>(&args.out, clustered(&*reader), |emit| {
                let rows = query::workloads::workloads(&*reader, &filter, now_ms)?;
                let n = rows.len() as u64;
                for row in rows {
                    emit(row)?;
                }
                Ok(n)
            })
        }
        Command::Events(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?);
            let reader = open_for_export(&args.db)?;
            export::<query::events::EventRecord>(&args.out, clustered(&*reader), |emit| match &args
                .filter
                .owner
            {
                Some(owner) => {
                    query::owners::for_each_event_of(&*reader, &filter, owner, now_ms, emit)
                }
                None => query::events::for_each_event(&*reader, &filter, emit),
            })
        }
        Command::Usage(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?);
            let reader = open_for_export(&args.db)?;
            export::<query::usage::UsageRecord>(&args.out, false, |emit| {
                let rows = query::usage::usage(&*reader, &filter, args.filter.by)?;
                let n = rows.len() as u64;
                for row in rows {
                    emit(row)?;
                }
                Ok(n)
            })
        }
        Command::Nodes(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?);
            let reader = open_pool(&args.db, query::nodes::WORKERS as u32 + 1)?;
            export::<query::NodeUsageRecord>(&args.out, clustered(&*reader), |emit| {
                let report = for_each_node_bucket(&*reader, &filter, now_ms, emit)?;
                for note in &report.notes {
                    eprintln!("{note}");
                }
                Ok(report.rows)
            })
        }
    }
}

/// A reader set up for streaming a whole table (`ReadOptions::streaming`).
fn open_for_export(db: &DbArgs) -> anyhow::Result<Box<dyn HistoryReader>> {
    open_with(
        db,
        ReadOptions {
            connections: 1,
            streaming: true,
        },
    )
}

type Emit<'a, R> = &'a mut dyn FnMut(R) -> Result<(), QueryError>;

/// Runs `produce`, writing each row it emits as CSV to `--out` or stdout.
fn export<R: Record>(
    out: &OutArgs,
    clustered: bool,
    produce: impl FnOnce(Emit<'_, R>) -> Result<u64, QueryError>,
) -> anyhow::Result<()> {
    let progress = progress_bar();
    let result = match &out.out {
        None => {
            let stdout = io::stdout();
            write_csv(
                BufWriter::with_capacity(256 * 1024, stdout.lock()),
                &progress,
                clustered,
                produce,
            )
            .map(drop)
        }
        Some(path) => export_to_file(path, &progress, clustered, produce),
    };
    match &result {
        Ok(()) if !progress.is_hidden() => {
            let rows = progress.position();
            let secs = progress.elapsed().as_secs_f64();
            progress.finish_and_clear();
            let rate = rows as f64 / secs.max(0.001);
            eprintln!("exported {rows} rows in {secs:.1}s ({rate:.0} rows/s)");
        }
        _ => progress.finish_and_clear(),
    }
    result
}

/// The temporary file an export writes; removed on drop unless it was renamed into place, so
/// an error or a panic leaves nothing behind.
struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn export_to_file<R: Record>(
    path: &Path,
    progress: &ProgressBar,
    clustered: bool,
    produce: impl FnOnce(Emit<'_, R>) -> Result<u64, QueryError>,
) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| usage!("--out {} is not a file name", path.display()))?;
    let mut temp = TempFile {
        path: path.with_file_name(format!(
            ".{}.{}.tmp",
            file_name.to_string_lossy(),
            std::process::id()
        )),
        kept: false,
    };
    let file = File::create(&temp.path)
        .with_context(|| format!("cannot create {}", temp.path.display()))?;
    let file = write_csv(
        BufWriter::with_capacity(256 * 1024, file),
        progress,
        clustered,
        produce,
    )?;
    file.sync_all()?;
    std::fs::rename(&temp.path, path)
        .with_context(|| format!("cannot move {} to {}", temp.path.display(), path.display()))?;
    temp.kept = true;
    Ok(())
}

/// Streams the rows into `out` as CSV and returns the inner writer, flushed.
fn write_csv<R: Record, W: Write>(
    out: BufWriter<W>,
    progress: &ProgressBar,
    clustered: bool,
    produce: impl FnOnce(Emit<'_, R>) -> Result<u64, QueryError>,
) -> anyhow::Result<W> {
    let mut renderer = Renderer::with_clusters::<R>(Format::Csv, out, clustered)?;
    produce(&mut |row: R| {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err(QueryError::Interrupted);
        }
        renderer.row(&row)?;
        progress.inc(1);
        Ok(())
    })
    .map_err(cli_error)?;
    let Renderer::Csv(csv) = renderer else {
        unreachable!("created as CSV")
    };
    Ok(csv.into_inner()?.into_inner().map_err(|e| e.into_error())?)
}

/// A spinner with the row count and rate, on stderr, only when stderr is a terminal (never in
/// pipes, logs or CI).
fn progress_bar() -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} exported {human_pos} rows in {elapsed}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_export_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pods.csv");
        INTERRUPTED.store(true, Ordering::Relaxed);
        let result =
            export_to_file::<query::PodSummary>(&out, &ProgressBar::hidden(), false, |emit| {
                emit(sample_pod())?;
                Ok(1)
            });
        INTERRUPTED.store(false, Ordering::Relaxed);
        let err = result.unwrap_err();
        assert!(format!("{err:#}").contains("interrupted"), "{err:#}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    fn sample_pod() -> query::PodSummary {
        query::PodSummary {
            cluster: None,
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            node: None,
            owner_kind: None,
            owner_name: None,
            created: String::new(),
            created_at_ms: 0,
            started: None,
            started_at_ms: None,
            finished: None,
            finished_at_ms: None,
            deleted: None,
            deleted_at_ms: None,
            lifetime_ms: 0,
            open: true,
            phase: "Running",
            reason: None,
            restarts: 0,
            cpu_request_millis: 0,
            memory_request_bytes: 0,
            cpu_limit_millis: 0,
            memory_limit_bytes: 0,
        }
    }
}
