//! `kubetrail stats`: what the database holds and what retention would do to it: the file and
//! write-ahead log sizes, rows and bytes per table, the time span of the history, open pods and
//! nodes, and what the policy (the defaults, or the flags given) would remove now.
//!
//! Read-only, like `query`: it runs while `record` writes.

use std::io::Write;

use anyhow::Context;
use serde::Serialize;

use super::prune::ReportFormat;
use super::query::DbArgs;
use kubetrail::model::time::{format_duration_ms, format_time_short, now_ms};
use kubetrail::retention::bytes::format_size;
use kubetrail::retention::{Plan, PolicyArgs};
use kubetrail::store::{
    Coverage, ReadOptions, Session, Snapshot, Span, StoreError, StoreStats, check, open_reader,
};

/// Flags of `kubetrail stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kubetrail database to describe (never created or modified).
    #[command(flatten)]
    pub db: DbArgs,
    /// The policy to evaluate (default: the defaults `record` and `prune` use).
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub db: String,
    /// What the store holds (schema, tables, spans, counts); its keys sit beside `db`.
    #[serde(flatten)]
    pub store: StoreStats,
    pub coverage: CoverageStats,
    pub retention: Plan,
}

/// The recorded time: sessions of `kubetrail record`, their gaps and scopes.
#[derive(Debug, Default, Serialize)]
pub struct CoverageStats {
    pub sessions: u64,
    /// From the first session's start to the last one's end.
    pub span: Span,
    pub covered_ms: i64,
    /// The stretches between sessions, in time order (`[from_ms, to_ms)`).
    pub gaps: Vec<Span>,
    /// The last session has no clean stop: still recording, or it crashed at `span.to_ms`.
    pub last_open: bool,
    /// Scopes of sessions that recorded only some pods (`-n ns -l sel`).
    pub partial_scopes: Vec<String>,
    /// Some history predates sessions (migration 0006): its gaps are unknown.
    pub inferred: bool,
}

fn coverage(sessions: Vec<Session>) -> CoverageStats {
    let c = Coverage::from_sessions(sessions);
    let (Some(first), Some(end)) = (c.sessions.first(), c.end_ms()) else {
        return CoverageStats::default();
    };
    let from = first.started_at_ms;
    CoverageStats {
        sessions: c.sessions.len() as u64,
        span: Span {
            from_ms: Some(from),
            to_ms: Some(end),
        },
        covered_ms: c.covered_ms(from, end),
        gaps: c
            .gaps(from, end)
            .into_iter()
            .map(|(a, b)| Span {
                from_ms: Some(a),
                to_ms: Some(b),
            })
            .collect(),
        last_open: c.sessions.last().is_some_and(|s| s.stopped_at_ms.is_none()),
        partial_scopes: c.partial_scopes(from, end),
        inferred: c.sessions.iter().any(|s| s.inferred),
    }
}

/// Everything `stats` shows, from one snapshot.
fn collect(
    read: &mut dyn Snapshot,
    db: String,
    policy: &kubetrail::retention::Policy,
    now: i64,
) -> Result<Stats, StoreError> {
    Ok(Stats {
        db,
        store: read.stats()?,
        coverage: coverage(read.sessions()?),
        retention: read.plan(policy, now)?,
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let policy = args.policy.policy()?;
    let at = args.db.location()?;
    let reader = open_reader(&at, ReadOptions::default())?;
    check(&at)?;
    let db = at.to_string();
    let now = now_ms();
    let stats = tokio::task::spawn_blocking(move || -> anyhow::Result<Stats> {
        let mut snapshot = reader.snapshot()?;
        collect(&mut *snapshot, db, &policy, now)
            // The database's own phrase, as before the store seam.
            .map_err(|e| anyhow::anyhow!(e.detail()))
            .context("reading the database")
    })
    .await??;
    let mut out = std::io::stdout().lock();
    match args.output {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?,
        ReportFormat::Text => print_text(&mut out, &stats)?,
    }
    Ok(())
}

fn print_coverage(out: &mut impl Write, c: &CoverageStats) -> std::io::Result<()> {
    let (Some(from), Some(to)) = (c.span.from_ms, c.span.to_ms) else {
        return writeln!(
            out,
            "coverage:    unknown (no recording sessions stored; everything counts as recorded)"
        );
    };
    let end = if c.last_open {
        "last commit"
    } else {
        "stopped"
    };
    writeln!(
        out,
        "coverage:    {} recorded of {} .. {} ({end}), in {} session(s), {} gap(s)",
        format_duration_ms(c.covered_ms),
        format_time_short(from),
        format_time_short(to),
        c.sessions,
        c.gaps.len()
    )?;
    for gap in c.gaps.iter().take(10) {
        if let (Some(a), Some(b)) = (gap.from_ms, gap.to_ms) {
            writeln!(
                out,
                "             gap {} .. {} ({})",
                format_time_short(a),
                format_time_short(b),
                format_duration_ms(b - a)
            )?;
        }
    }
    if c.gaps.len() > 10 {
        writeln!(out, "             and {} more gaps", c.gaps.len() - 10)?;
    }
    if !c.partial_scopes.is_empty() {
        writeln!(
            out,
            "             partial node sums: recorded with {}",
            c.partial_scopes.join("; ")
        )?;
    }
    if c.inferred {
        writeln!(
            out,
            "             history from before sessions were stored (schema 6) counts as one session; its gaps are unknown"
        )?;
    }
    Ok(())
}

fn print_text(out: &mut impl Write, s: &Stats) -> std::io::Result<()> {
    writeln!(
        out,
        "database:    {} (schema version {})",
        s.db, s.store.schema_version
    )?;
    // A server's database has no file of its own to describe.
    if let Some(file) = &s.retention.file {
        writeln!(
            out,
            "file:        {} on disk: database {}, write-ahead log {}; {} of free pages ({} auto-vacuum)",
            format_size(file.on_disk()),
            format_size(file.db_bytes),
            format_size(file.wal_bytes),
            format_size(file.free_bytes()),
            s.store.auto_vacuum.unwrap_or("no")
        )?;
    }
    let show = |span: &Span| match (span.from_ms, span.to_ms) {
        (Some(from), Some(to)) => {
            format!(
                "{} .. {} ({})",
                format_time_short(from),
                format_time_short(to),
                format_duration_ms(to - from)
            )
        }
        _ => "none".to_string(),
    };
    writeln!(
        out,
        "history:     transitions {}",
        show(&s.store.transitions)
    )?;
    writeln!(
        out,
        "             raw node usage {}",
        show(&s.store.raw_node_usage)
    )?;
    writeln!(
        out,
        "             hourly rollups {}",
        show(&s.store.node_usage_rollups)
    )?;
    writeln!(
        out,
        "             events ({}) last seen {}",
        s.store.event_count,
        show(&s.store.events)
    )?;
    print_coverage(out, &s.coverage)?;
    writeln!(
        out,
        "live:        {} open pods, {} open nodes (never pruned); {} ended pods, {} deleted nodes",
        s.store.open_pods, s.store.open_nodes, s.store.ended_pods, s.store.deleted_nodes
    )?;
    if s.store.quarantined_rows > 0 {
        writeln!(
            out,
            "quarantine:  {} rows the database refused while recording (see the quarantine table)",
            s.store.quarantined_rows
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{:<20} {:>12} {:>12}", "TABLE", "ROWS", "SIZE")?;
    for t in &s.store.tables {
        let size = t.bytes.map_or_else(|| "-".to_string(), format_size);
        writeln!(out, "{:<20} {:>12} {:>12}", t.table, t.rows, size)?;
    }
    writeln!(out)?;
    writeln!(out, "retention now, with {}:", s.retention.policy)?;
    for line in s.retention.lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}
