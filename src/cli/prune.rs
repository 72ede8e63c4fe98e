//! `kubetrail prune`: applies the retention policy once, now, and reports what went.
//!
//! Safe while `kubetrail record` writes the same file: it opens the database without the
//! recorder's lock (`store::WriteMode::Maintenance`) and works in short transactions, so the
//! recorder and queries wait at most one step. `--dry-run` opens the file read-only and only
//! counts.

use std::io::Write;

use anyhow::Context;

use super::query::DbArgs;
use kubetrail::model::time::now_ms;
use kubetrail::retention::{Pass, PolicyArgs};
use kubetrail::store::{ReadOptions, WriteMode, open_reader, open_writer};
use kubetrail::usage;

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
    /// The kubetrail database to prune (never created): a SQLite file, or a PostgreSQL URL
    /// with the one --cluster to prune.
    #[command(flatten)]
    pub db: DbArgs,
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
    let at = args.db.location()?;
    if at.file().is_none() && args.policy.max_db_size.is_some() {
        return Err(usage!(
            "--max-db-size is a budget for a SQLite file; a PostgreSQL database is kept in \
             bounds by the age rules (--max-age, --raw-usage-age, --rollup-age)"
        ));
    }
    let db = at.to_string();
    if args.dry_run {
        let reader = open_reader(&at, ReadOptions::default())?;
        let plan = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut snapshot = reader.snapshot()?;
            snapshot
                .plan(&policy, now)
                .map_err(|e| anyhow::anyhow!(e.detail()))
                .context("reading the database")
        })
        .await??;
        let mut out = std::io::stdout().lock();
        match args.output {
            ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&plan)?)?,
            ReportFormat::Text => {
                writeln!(
                    out,
                    "dry run, nothing was changed: {db} with {}",
                    plan.policy
                )?;
                for line in plan.lines() {
                    writeln!(out, "  {line}")?;
                }
            }
        }
        return Ok(());
    }

    let mut store = open_writer(&at, WriteMode::Maintenance)?;
    let described = policy.describe();
    let report =
        tokio::task::spawn_blocking(move || Pass::new(policy, now).run_sharing(&mut *store))
            .await?
            // The database's own phrase, as before the store seam: the context names the file.
            .map_err(|e| anyhow::anyhow!(e.detail()))
            .with_context(|| format!("pruning {db}"))?;
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
            writeln!(out, "pruned {db} with {described}")?;
            for line in report.summary() {
                writeln!(out, "  {line}")?;
            }
        }
    }
    Ok(())
}
