//! `kubetrail stats`: what the database holds and what retention would do to it: the file and
//! write-ahead log sizes, rows and bytes per table, the time span of the history, open pods and
//! nodes, and what the policy (the defaults, or the flags given) would remove now.
//!
//! Read-only, like `query`: it runs while `record` writes.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use rusqlite::Connection;
use serde::Serialize;

use super::prune::ReportFormat;
use kubetrail::model::time::{format_duration_ms, format_time_short, now_ms};
use kubetrail::retention::bytes::format_size;
use kubetrail::retention::plan::{TableSize, table_sizes};
use kubetrail::retention::rollup::{oldest_rollup_ms, rolled_up_until_ms};
use kubetrail::retention::{Plan, PolicyArgs, plan};
use kubetrail::store::Coverage;
use kubetrail::store::open_read_pool;

/// Flags of `kubetrail stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kubetrail database to describe (never created or modified).
    #[arg(
        long,
        value_name = "PATH",
        env = "KUBETRAIL_DB",
        default_value = "kubetrail.db"
    )]
    pub db: PathBuf,
    /// The policy to evaluate (default: the defaults `record` and `prune` use).
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

/// A time range of one kind of history, in ms since the epoch.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Span {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub db: String,
    pub schema_version: i64,
    pub auto_vacuum: &'static str,
    pub tables: Vec<TableSize>,
    pub transitions: Span,
    pub raw_node_usage: Span,
    pub node_usage_rollups: Span,
    pub open_pods: u64,
    pub ended_pods: u64,
    pub open_nodes: u64,
    pub deleted_nodes: u64,
    /// Rows the recorder's database refused for good (kept in the `quarantine` table).
    pub quarantined_rows: u64,
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

fn coverage(conn: &Connection) -> rusqlite::Result<CoverageStats> {
    let c = Coverage::read(conn)?;
    let (Some(first), Some(end)) = (c.sessions.first(), c.end_ms()) else {
        return Ok(CoverageStats::default());
    };
    let from = first.started_at_ms;
    Ok(CoverageStats {
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
    })
}

fn span(conn: &Connection, sql: &str) -> rusqlite::Result<Span> {
    conn.query_row(sql, [], |r| {
        Ok(Span {
            from_ms: r.get(0)?,
            to_ms: r.get(1)?,
        })
    })
}

fn count(conn: &Connection, sql: &str) -> rusqlite::Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

fn collect(
    conn: &Connection,
    db: String,
    policy: &kubetrail::retention::Policy,
    now: i64,
) -> rusqlite::Result<Stats> {
    let auto_vacuum = match conn.pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0))? {
        2 => "incremental",
        1 => "full",
        _ => "none",
    };
    Ok(Stats {
        db,
        schema_version: conn.pragma_query_value(None, "user_version", |r| r.get(0))?,
        auto_vacuum,
        tables: table_sizes(conn)?,
        // min and max over an index: two seeks each.
        transitions: span(conn, "SELECT min(at_ms), max(at_ms) FROM transitions")?,
        raw_node_usage: span(conn, "SELECT min(at_ms), max(at_ms) FROM node_usage")?,
        node_usage_rollups: Span {
            from_ms: oldest_rollup_ms(conn)?,
            to_ms: rolled_up_until_ms(conn)?,
        },
        open_pods: count(
            conn,
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NULL",
        )?,
        ended_pods: count(
            conn,
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NOT NULL",
        )?,
        open_nodes: count(
            conn,
            "SELECT count(*) FROM nodes WHERE deleted_at_ms IS NULL",
        )?,
        deleted_nodes: count(
            conn,
            "SELECT count(*) FROM nodes WHERE deleted_at_ms IS NOT NULL",
        )?,
        quarantined_rows: count(conn, "SELECT count(*) FROM quarantine")?,
        coverage: coverage(conn)?,
        retention: plan(conn, policy, now)?,
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let policy = args.policy.policy()?;
    let pool = open_read_pool(&args.db, 1)?;
    kubetrail::store::db::check_file(&args.db)?;
    let db = args.db.display().to_string();
    let now = now_ms();
    let stats = tokio::task::spawn_blocking(move || -> anyhow::Result<Stats> {
        let conn = pool.get()?;
        collect(&conn, db, &policy, now).context("reading the database")
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
    let file = &s.retention.file;
    writeln!(
        out,
        "database:    {} (schema version {})",
        s.db, s.schema_version
    )?;
    writeln!(
        out,
        "file:        {} on disk: database {}, write-ahead log {}; {} of free pages ({} auto-vacuum)",
        format_size(file.on_disk()),
        format_size(file.db_bytes),
        format_size(file.wal_bytes),
        format_size(file.free_bytes()),
        s.auto_vacuum
    )?;
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
    writeln!(out, "history:     transitions {}", show(&s.transitions))?;
    writeln!(
        out,
        "             raw node usage {}",
        show(&s.raw_node_usage)
    )?;
    writeln!(
        out,
        "             hourly rollups {}",
        show(&s.node_usage_rollups)
    )?;
    print_coverage(out, &s.coverage)?;
    writeln!(
        out,
        "live:        {} open pods, {} open nodes (never pruned); {} ended pods, {} deleted nodes",
        s.open_pods, s.open_nodes, s.ended_pods, s.deleted_nodes
    )?;
    if s.quarantined_rows > 0 {
        writeln!(
            out,
            "quarantine:  {} rows the database refused while recording (see the quarantine table)",
            s.quarantined_rows
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{:<20} {:>12} {:>12}", "TABLE", "ROWS", "SIZE")?;
    for t in &s.tables {
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
