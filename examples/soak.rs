//! Soak benchmark for retention: days of cluster churn written at high speed on a fake clock,
//! with periodic retention passes as `record` runs them, under a small `--max-db-size`.
//!
//! It prints the file size (database + write-ahead log) as simulated time goes by, which must
//! stay flat once the budget is reached, the time retention passes take, and finally node
//! utilisation over the whole span (hourly rollups for the old part, raw rows for the recent
//! part), to show that "how full were the nodes" still answers after the detail is gone.
//!
//! ```text
//! cargo run --release --example soak -- --days 5 --max-db-size 64MiB --raw-usage-age 1d
//! ```
//!
//! Rows go through `store::write_batch`, the recorder's own insert path; passes run on the same
//! connection between batches, as they do on the recorder's writer thread.

#[path = "../tests/common/churn.rs"]
mod churn;
#[path = "../tests/common/utilisation.rs"]
mod utilisation;

use std::time::{Duration, Instant};

use clap::Parser;
use kubetrail::model::time::{format_time_short, parse_duration_ms};
use kubetrail::model::utilisation::{BucketUsage, Grid};
use kubetrail::retention::bytes::{format_size, parse_size};
use kubetrail::retention::{Pass, Policy, Step};
use kubetrail::store::sqlite::file::measure;
use kubetrail::store::sqlite::rollup::{merge, read_rollups};
use kubetrail::store::sqlite::{open_for_writing, write_batch};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

#[derive(Parser)]
struct Args {
    /// Simulated days of churn.
    #[arg(long, default_value_t = 5)]
    days: i64,
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Pods running at any time.
    #[arg(long, default_value_t = 2_000)]
    live_pods: usize,
    /// Pods that end (and start) per simulated hour.
    #[arg(long, default_value_t = 3_000)]
    turnover_per_hour: usize,
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    max_db_size: u64,
    #[arg(long, default_value = "1d", value_parser = ms)]
    raw_usage_age: i64,
    #[arg(long, default_value = "3d", value_parser = ms)]
    max_age: i64,
    /// Simulated time between retention passes.
    #[arg(long, default_value = "1h", value_parser = ms)]
    retention_every: i64,
    /// Simulated time per written batch.
    #[arg(long, default_value = "10m", value_parser = ms)]
    step: i64,
    /// The database file (default: a new temporary file).
    #[arg(long)]
    db: Option<std::path::PathBuf>,
}

fn ms(s: &str) -> Result<i64, String> {
    parse_duration_ms(s).map_err(|e| e.to_string())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let path = args
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("soak.db"));
    let mut handle = open_for_writing(&path)?;
    let policy = Policy {
        max_age_ms: Some(args.max_age),
        raw_usage_age_ms: Some(args.raw_usage_age),
        rollup_age_ms: Some(400 * DAY),
        max_db_bytes: Some(args.max_db_size),
    };
    println!(
        "soak: {} simulated days, {} nodes, {} live pods, {} pods/h turnover; {}",
        args.days,
        args.nodes,
        args.live_pods,
        args.turnover_per_hour,
        policy.describe()
    );

    // Start at a whole day, so that the simulated clock ends about now: `kubetrail stats` and
    // `prune --dry-run` on the result (with --db) then describe it sensibly.
    let start_ms = (kubetrail::model::time::now_ms() / DAY - args.days) * DAY;
    let (mut churn, first) = churn::Churn::new(start_ms, args.nodes, args.live_pods, 1);
    write_batch(&mut handle.conn, &first)?;
    let end_ms = start_ms + args.days * DAY;
    let turnover_per_step = (args.turnover_per_hour as i64 * args.step / HOUR).max(1) as usize;

    let began = Instant::now();
    let (mut rows_written, mut write_time) = (0u64, Duration::ZERO);
    let mut pass_ms: Vec<f64> = Vec::new();
    let mut step_ms: Vec<f64> = Vec::new();
    let mut next_pass = start_ms + args.retention_every;
    let mut previous_used = None;
    let mut sizes: Vec<(i64, u64)> = Vec::new();
    let mut largest = None;
    println!(
        "{:>8} {:>20} {:>12} {:>12} {:>10} {:>12} {:>10} {:>10}",
        "real s",
        "simulated time",
        "on disk",
        "rows used",
        "pods",
        "transitions",
        "raw usage",
        "rollups"
    );
    while churn.now_ms < end_ms {
        let batch = churn.advance(args.step, turnover_per_step);
        let t = Instant::now();
        write_batch(&mut handle.conn, &batch)?;
        write_time += t.elapsed();
        rows_written += batch.len() as u64;
        if churn.now_ms % DAY == 0 {
            write_batch(&mut handle.conn, &churn.replace_node())?;
        }
        if churn.now_ms >= next_pass {
            next_pass += args.retention_every;
            // Step by step, as the recorder's writer thread runs it: rows queued behind a pass
            // wait for one step at most, so the slowest step is the figure that matters.
            let t = Instant::now();
            let mut pass = Pass::new(policy.clone(), churn.now_ms).after_previous(previous_used);
            loop {
                let step_began = Instant::now();
                let more = pass.step(&mut handle.conn)? == Step::More;
                step_ms.push(step_began.elapsed().as_secs_f64() * 1000.0);
                if !more {
                    break;
                }
            }
            pass_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let report = pass.into_report();
            previous_used = Some(report.after.used_bytes());
            for warning in report.warnings() {
                println!("warning: {warning}");
            }
        }
        let size = measure(&handle.conn)?;
        sizes.push((churn.now_ms, size.on_disk()));
        if largest.is_none_or(|(_, l): (i64, kubetrail::store::sqlite::file::FileSize)| {
            size.on_disk() > l.on_disk()
        }) {
            largest = Some((churn.now_ms, size));
        }
        if churn.now_ms % (6 * HOUR) == 0 {
            let count = |table: &str| -> rusqlite::Result<i64> {
                handle
                    .conn
                    .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            };
            println!(
                "{:>8.1} {:>20} {:>12} {:>12} {:>10} {:>12} {:>10} {:>10}",
                began.elapsed().as_secs_f64(),
                format_time_short(churn.now_ms),
                format_size(size.on_disk()),
                format_size(size.used_bytes()),
                count("pods")?,
                count("transitions")?,
                count("node_usage")?,
                count("node_usage_rollup")?
            );
        }
    }
    let elapsed = began.elapsed();

    // Flatness: once the budget was first reached, the largest and smallest size seen.
    let budget = args.max_db_size;
    let reached = sizes.iter().position(|(_, s)| *s >= budget * 9 / 10);
    println!();
    println!(
        "real time {:.1} s for {} simulated days ({:.1} simulated hours per real second)",
        elapsed.as_secs_f64(),
        args.days,
        (args.days * 24) as f64 / elapsed.as_secs_f64()
    );
    println!(
        "rows written {rows_written} at {:.0} rows/s (write_batch time only)",
        rows_written as f64 / write_time.as_secs_f64()
    );
    println!(
        "retention passes: {}, median {:.1} ms, max {:.1} ms",
        pass_ms.len(),
        median(&mut pass_ms.clone()),
        pass_ms.iter().copied().fold(0.0, f64::max)
    );
    let mut sorted = step_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted.get(sorted.len() * 99 / 100).copied().unwrap_or(0.0);
    println!(
        "retention steps (one transaction each): {}, median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        step_ms.len(),
        median(&mut step_ms),
        p99,
        sorted.last().copied().unwrap_or(0.0)
    );
    match reached {
        Some(i) => {
            let after: Vec<u64> = sizes[i..].iter().map(|(_, s)| *s).collect();
            let (min, max) = (
                after.iter().min().copied().unwrap_or(0),
                after.iter().max().copied().unwrap_or(0),
            );
            println!(
                "file size once the budget was reached ({}): min {}, max {} for a budget of {} (max is {:.1} % of it)",
                format_time_short(sizes[i].0),
                format_size(min),
                format_size(max),
                format_size(budget),
                max as f64 * 100.0 / budget as f64
            );
        }
        None => println!(
            "the budget of {} was never reached; raise --days or lower --max-db-size",
            format_size(budget)
        ),
    }
    if let Some((at, size)) = largest {
        println!(
            "largest: {} at {} (database {}, write-ahead log {}, rows {})",
            format_size(size.on_disk()),
            format_time_short(at),
            format_size(size.db_bytes),
            format_size(size.wal_bytes),
            format_size(size.used_bytes())
        );
    }

    // Utilisation over the whole span, one row per node and day, raw and rolled-up hours
    // combined, then averaged over the nodes for one line per day.
    let t = Instant::now();
    let grid = Grid::new(start_ms, end_ms, DAY).map_err(anyhow::Error::msg)?;
    let raw_days: std::collections::BTreeSet<i64> = utilisation::raw_buckets(&handle.conn, grid)
        .keys()
        .map(|(_, start)| *start)
        .collect();
    let per_node = utilisation::combined_buckets(&handle.conn, grid);
    let rolled_rows = read_rollups(&handle.conn, None, start_ms, end_ms)?.len();
    let mut days: Vec<BucketUsage> = Vec::new();
    for bucket in per_node.values() {
        match days.iter_mut().find(|d| d.start_ms == bucket.start_ms) {
            Some(day) => merge(day, bucket),
            None => days.push(bucket.clone()),
        }
    }
    days.sort_by_key(|d| d.start_ms);
    let rolled_days: std::collections::BTreeSet<i64> = days
        .iter()
        .map(|d| d.start_ms)
        .filter(|day| has_rollups(&handle.conn, *day))
        .collect();
    println!();
    println!(
        "node utilisation per day over the whole span ({} rollup rows read, answered in {:.0} ms):",
        rolled_rows,
        t.elapsed().as_secs_f64() * 1000.0
    );
    println!(
        "{:>20} {:>12} {:>16} {:>16} {:>10}",
        "day", "resolution", "node-hours", "cpu req avg/node", "pods peak"
    );
    for d in &days {
        let resolution = match (
            rolled_days.contains(&d.start_ms),
            raw_days.contains(&d.start_ms),
        ) {
            (true, true) => "rollup+raw",
            (true, false) => "hourly rollup",
            _ => "raw",
        };
        println!(
            "{:>20} {:>12} {:>16.1} {:>14.0}m {:>10}",
            format_time_short(d.start_ms),
            resolution,
            d.present_ms as f64 / HOUR as f64,
            d.cpu_requested.avg,
            d.pods.peak
        );
    }
    Ok(())
}

/// Whether any rollup starts in the day starting at `day_ms`.
fn has_rollups(conn: &rusqlite::Connection, day_ms: i64) -> bool {
    read_rollups(conn, None, day_ms, day_ms + DAY).is_ok_and(|rows| !rows.is_empty())
}
