//! Generates a SQLite database of measured usage for `query usage` at scale (BENCHMARKS.md):
//! `--pods` pods (100k) of ReplicaSets of `--replicas` pods (5) in `--namespaces` namespaces,
//! one container each, alive for the whole `--days` (30). Every container has an hourly rollup
//! for each hour but the last, as retention leaves them past `--raw-usage-age`, and raw
//! samples every 5 minutes in the last hour; so the report reads both.
//!
//! The pods and the containers' keys and raw samples go through the store's own writers
//! (`write_batch`, `write_usage`). The rollups are inserted directly into
//! `container_usage_hourly`: rolling up 30 days of 30-second samples of 100k containers (8.6
//! billion rows) is not something a benchmark can wait for. Their values are deterministic
//! and internally consistent (min <= p95 <= max, sum = average * samples).
//!
//! ```text
//! cargo run --release --example gen_usage -- --out /tmp/usage30d.db
//! kubetrail query usage --by owner --db /tmp/usage30d.db --since 30d -o csv > owners.csv
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use kubetrail::model::time::format_time_ms;
use kubetrail::model::usage::{ContainerUsageRow, UsageBatch};
use kubetrail::model::{Effective, Phase, Resources};
use kubetrail::store::sqlite::usage::write_usage;
use kubetrail::store::sqlite::{open_for_writing, write_batch};
use kubetrail::store::{Batch, PodRow};
use rusqlite::params;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const MI: i64 = 1 << 20;

#[derive(Parser)]
#[command(about = "Generate a SQLite database of measured usage rollups for benchmarks")]
struct Args {
    /// The database to create (must not exist).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    pods: u64,
    #[arg(long, default_value_t = 5)]
    replicas: u64,
    #[arg(long, default_value_t = 50)]
    namespaces: u64,
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// The end of the history, in ms since the epoch; default: now, rounded down to the hour.
    #[arg(long)]
    end_ms: Option<i64>,
}

/// A small deterministic generator (any spread will do).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as i64
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        !args.out.exists(),
        "{} exists; remove it first",
        args.out.display()
    );
    let end = args.end_ms.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        now - now % HOUR
    });
    let start = end - args.days * DAY;
    let last_hour = end - HOUR;
    let started = Instant::now();
    let mut handle = open_for_writing(&args.out)?;
    let mut rng = Lcg(1);

    // The pods, and each container's base usage (millicores, MiB).
    let mut bases = Vec::with_capacity(args.pods as usize);
    let mut batch = Batch::default();
    for i in 0..args.pods {
        let (cpu, mem) = (50 + rng.next(450), 100 + rng.next(500));
        bases.push((cpu, mem));
        let owner = i / args.replicas;
        batch.pods.push(PodRow {
            uid: format!("00000000-0000-4000-8000-{i:012}"),
            namespace: format!("ns-{}", owner % args.namespaces),
            name: format!("app-{owner}-{}", i % args.replicas),
            node: Some(format!("node-{}", i % 1000)),
            owner_kind: Some("ReplicaSet".into()),
            owner_name: Some(format!("app-{owner}")),
            labels_json: None,
            created_at_ms: start,
            started_at_ms: Some(start + 1_000),
            finished_at_ms: None,
            deleted_at_ms: None,
            phase: Phase::Running,
            reason: None,
            restarts: 0,
            resources: Effective {
                requests: Resources {
                    cpu_millis: cpu * 2,
                    memory_bytes: mem * 2 * MI,
                },
                limits: Resources {
                    cpu_millis: 0,
                    memory_bytes: mem * 3 * MI,
                },
            },
            state: b"{}".to_vec(),
        });
        if batch.pods.len() == 10_000 {
            write_batch(&mut handle.conn, &batch)?;
            batch.pods.clear();
        }
    }
    write_batch(&mut handle.conn, &batch)?;

    // The last hour raw, every 5 minutes, through the recorder's own usage writer (which also
    // gives each container its key).
    let mut raw = 0u64;
    let tx = handle.conn.transaction()?;
    let mut at = last_hour;
    while at < end {
        let mut sample = UsageBatch::default();
        for (i, (cpu, mem)) in bases.iter().enumerate() {
            let owner = i as u64 / args.replicas;
            sample.containers.push(ContainerUsageRow {
                namespace: format!("ns-{}", owner % args.namespaces),
                pod: format!("app-{owner}-{}", i as u64 % args.replicas),
                container: "app".into(),
                at_ms: at,
                window_ms: 15_000,
                cpu_millis: cpu / 2 + rng.next(*cpu),
                memory_bytes: (mem / 2 + rng.next(*mem)) * MI,
                resources: None,
            });
        }
        raw += write_usage(&tx, &sample)?.containers_written;
        at += 5 * MIN;
    }
    tx.commit()?;

    // The rolled-up hours before it, one transaction per day.
    let ids: Vec<i64> = handle
        .conn
        .prepare("SELECT id FROM usage_containers ORDER BY pod_id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    anyhow::ensure!(ids.len() == bases.len(), "one container key per pod");
    let mut hours = 0u64;
    let mut day = start;
    while day < last_hour {
        let tx = handle.conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO container_usage_hourly (container_id, hour_ms, samples, cpu_min,
                     cpu_max, cpu_sum, cpu_p95, memory_min, memory_max, memory_sum, memory_p95)
                 VALUES (?1, ?2, 120, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for (id, (cpu, mem)) in ids.iter().zip(&bases) {
                let mut hour = day;
                while hour < (day + DAY).min(last_hour) {
                    let avg = cpu / 2 + rng.next(*cpu);
                    let spike = rng.next(*cpu);
                    let mavg = (mem / 2 + rng.next(*mem)) * MI;
                    insert.execute(params![
                        id,
                        hour,
                        avg / 2,
                        avg * 2 + spike,
                        avg * 120,
                        avg * 3 / 2 + spike / 2,
                        mavg * 3 / 4,
                        mavg * 3 / 2,
                        mavg * 120,
                        mavg * 5 / 4
                    ])?;
                    hours += 1;
                    hour += HOUR;
                }
            }
        }
        tx.commit()?;
        day += DAY;
    }
    let bytes = std::fs::metadata(&args.out)?.len();
    println!(
        "{}: {} pods, {raw} raw samples, {hours} hourly rollups, {:.1} GB, in {:.0} s",
        args.out.display(),
        bases.len(),
        bytes as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    println!(
        "window: --since {} --until {}",
        format_time_ms(start),
        format_time_ms(end)
    );
    Ok(())
}
