//! `kubetrail report`: one self-contained HTML file with pictures of the recorded history (the
//! cluster over the window, every node's requests and limits against allocatable, a timeline
//! per workload and pod, the top tables, the recorded time). The file needs no network and no
//! server: mail it, open it anywhere. The model and the page are `kubetrail::report`'s.
//!
//! Flags are checked before the store is opened, and `--out` before anything is read; the file
//! is written beside its final name and renamed into place once complete.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use super::query::{DbArgs, cli_error, namespace_name, open_pool};
use kubetrail::model::time::{Window, format_duration_ms, now_ms, parse_duration_ms};
use kubetrail::query::nodes::WORKERS;
use kubetrail::report::html::{self, Data};
use kubetrail::report::{OwnerRef, Report, ReportRequest};
use kubetrail::store::HistoryReader;
use kubetrail::usage;

/// Flags of `kubetrail report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Start of the window: a duration before now (2h, 7d) or an RFC 3339 time. The report
    /// draws only the recorded part of it.
    #[arg(long, value_name = "TIME", default_value = "7d")]
    pub since: String,
    /// End of the window (exclusive), in the same forms. Default: now.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only pods in this namespace (nodes are drawn whole).
    #[arg(short = 'n', long, value_name = "NAMESPACE", value_parser = namespace_name)]
    pub namespace: Option<String>,
    /// Only pods with this direct owner as recorded, e.g. ReplicaSet/web-5d8f9c7b4 or
    /// StatefulSet/db.
    #[arg(long, value_name = "KIND/NAME", value_parser = OwnerRef::parse)]
    pub owner: Option<OwnerRef>,
    /// Only this node and the pods bound to it.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Bucket size of the charts. Default: the smallest of 1s ... 1d that gives at most 240
    /// buckets (7 days: 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub step: Option<i64>,
    /// The HTML file to write (replaced once complete).
    #[arg(long, value_name = "FILE", default_value = "kubetrail-report.html")]
    pub out: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

/// What was written, for the closing line.
pub struct Written {
    pub bytes: usize,
    pub pods: usize,
    pub nodes: usize,
    pub notes: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // The store's calls block; keep them off the async workers.
    tokio::task::spawn_blocking(move || run_blocking(args))
        .await
        .context("report task failed")?
}

fn run_blocking(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let now = now_ms();
    let window =
        Window::parse(Some(&args.since), args.until.as_deref(), now).map_err(|e| usage!("{e}"))?;
    check_out(&args.out, &args.db.db)?;
    let request = ReportRequest {
        window,
        namespace: args.namespace,
        owner: args.owner,
        node: args.node,
        step_ms: args.step,
        ..Default::default()
    };
    let source = args.db.location()?.to_string();
    let reader = open_pool(&args.db, WORKERS as u32 + 1)?;
    let written = write_report(&*reader, &request, &source, &args.out, now)?;
    for note in &written.notes {
        eprintln!("note: {note}");
    }
    eprintln!(
        "wrote {}: {} pods, {} nodes, {:.1} MB in {}",
        args.out.display(),
        written.pods,
        written.nodes,
        written.bytes as f64 / 1e6,
        format_duration_ms(started.elapsed().as_millis() as i64)
    );
    println!("{}", args.out.display());
    Ok(())
}

/// Builds the report and writes it to `out` (through a temporary file beside it).
pub fn write_report(
    reader: &dyn HistoryReader,
    request: &ReportRequest,
    source: &str,
    out: &Path,
    now: i64,
) -> anyhow::Result<Written> {
    let report: Report =
        kubetrail::report::build(reader, request, now, source).map_err(cli_error)?;
    if let Some(owner) = &request.owner
        && report.pods.is_empty()
    {
        eprintln!(
            "note: no pod owned by {owner} in the window; pods record their direct owner (a \
             Deployment's pods are owned by its ReplicaSets: see `kubetrail query pods -o json`)"
        );
    }
    let page = html::render(Data::Embedded(&report))?;
    write_atomically(out, page.as_bytes())?;
    Ok(Written {
        bytes: page.len(),
        pods: report.pods.len(),
        nodes: report.nodes.names.len(),
        notes: report.notes,
    })
}

/// Refuses an `--out` that cannot take the report, before anything is read.
fn check_out(out: &Path, db: &str) -> anyhow::Result<()> {
    if out.is_dir() {
        return Err(usage!(
            "--out {} is a directory; give a file name such as {}",
            out.display(),
            out.join("report.html").display()
        ));
    }
    if out.file_name().is_none() {
        return Err(usage!("--out {} is not a file name", out.display()));
    }
    let parent = parent_of(out);
    if !parent.is_dir() {
        return Err(usage!(
            "--out {}: directory {} does not exist",
            out.display(),
            parent.display()
        ));
    }
    // Writing the page over the database would destroy the history.
    if let (Ok(a), Ok(b)) = (out.canonicalize(), Path::new(db).canonicalize())
        && a == b
    {
        return Err(usage!(
            "--out {} is the database itself; choose another file",
            out.display()
        ));
    }
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place, so that a
/// reader never sees half a report; the temporary file is removed on failure.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = parent_of(path).join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        // Mode 0600, as the database: the report holds the same history.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("cannot write --out {}", path.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", temp.display()))?;
        std::fs::rename(&temp, path)
            .with_context(|| format!("cannot move {} to {}", temp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
