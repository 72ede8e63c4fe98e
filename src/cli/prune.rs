//! `kubetrail prune`: applies the retention policy once, now, and reports what went.
//!
//! Safe while `kubetrail record` writes the same file: it opens the database without the
//! recorder's lock (`store::db::open_for_maintenance`) and works in short transactions, so the
//! recorder and queries wait at most one step. `--dry-run` opens the file read-only and only
//! counts.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use kubetrail::model::time::now_ms;
use kubetrail::retention::{Pass, PolicyArgs, plan};
use kubetrail::store::db::{open_for_maintenance, open_read_pool};

/// How `prune` and `stats` print their report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Lines for people.
    Text,
    /// One JSON object, in machine units (bytes, milliseconds).
    Json,
}

/// Flags of `kubetrail prune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kubetrail database to prune (never created).
    #[arg(
        long,
        value_name = "PATH",
        env = "KUBETRAIL_DB",
        default_value = "kubetrail.db"
    )]
    pub db: PathBuf,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Report what would be removed, and change nothing (the file is opened read-only).
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let policy = args.policy.policy()?;
    let now = now_ms();
    let db = args.db.clone();
    if args.dry_run {
        let pool = open_read_pool(&db, 1)?;
        let plan = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let conn = pool.get()?;
            plan(&conn, &policy, now).context("reading the database")
        })
        .await??;
        let mut out = std::io::stdout().lock();
        match args.output {
            ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&plan)?)?,
            ReportFormat::Text => {
                writeln!(
                    out,
                    "dry run, nothing was changed: {} with {}",
                    db.display(),
                    plan.policy
                )?;
                for line in plan.lines() {
                    writeln!(out, "  {line}")?;
                }
            }
        }
        return Ok(());
    }

    let mut conn = open_for_maintenance(&db)?;
    let described = policy.describe();
    let report = tokio::task::spawn_blocking(move || Pass::new(policy, now).run_sharing(&mut conn))
        .await?
        .with_context(|| format!("pruning {}", db.display()))?;
    for warning in report.warnings() {
        eprintln!("warning: {warning}");
    }
    if report.checkpoint_busy {
        eprintln!(
            "note: a reader still used the write-ahead log, so it was not emptied; it shrinks at the \
             next checkpoint"
        );
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        ReportFormat::Text => {
            writeln!(out, "pruned {} with {described}", db.display())?;
            for line in report.summary() {
                writeln!(out, "  {line}")?;
            }
        }
    }
    Ok(())
}
