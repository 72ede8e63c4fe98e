//! `kubetrail copy --from FILE --to postgres://... --cluster NAME`: moves a SQLite history into
//! one cluster of a PostgreSQL database, so that a cluster recorded into a file so far can
//! record into the server from now on without losing its past.
//!
//! The file is read in one read transaction (never changed; a recorder may still write it),
//! table by table, in chunks of `--chunk-rows`; each chunk is one transaction on the server.
//! Every row is found by its natural key there (see `store::postgres::import`), so a second
//! copy adds nothing, a copy of a file that has grown since adds what is new, and a copy that
//! was interrupted (Ctrl-C, a lost connection) is finished by running it again. The copy holds
//! the cluster's recorder lock: it is refused while a recorder of that cluster runs, and a
//! recorder started meanwhile is refused.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use kubetrail::store::copy::{ChunkCounts, CopyChunk, CopyTable};
use kubetrail::store::{HistoryImport, Location, StoreError, open_export, open_import};
use kubetrail::usage;

/// Flags of `kubetrail copy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SQLite file to copy. Opened read-only and never changed; a recorder may still be
    /// writing it (the copy takes the file as it was when the copy began).
    #[arg(long, value_name = "PATH")]
    pub from: String,
    /// The PostgreSQL database to copy into, as postgres://USER@HOST:PORT/DB (libpq's PG*
    /// variables and sslmode apply; give the password in PGPASSWORD). Its tables are created
    /// if it has none yet.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// The cluster whose history the file holds, as the database will name it: a file holds
    /// one cluster and does not record its name. Use the name its recorder will use with
    /// `record --cluster`.
    #[arg(long, value_name = "NAME")]
    pub cluster: String,
    /// Rows per transaction on the server (memory holds about one chunk).
    #[arg(long, value_name = "ROWS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chunk_rows: u32,
}

/// How often a chunk that failed for a transient reason (a lost connection, a server
/// restarting) is tried again before the copy gives up: a chunk is one transaction, so trying
/// again is safe.
const ATTEMPTS: u32 = 5;

/// How often progress is printed while a table is copied.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (from, to) = locations(&args)?;
    let stop = Arc::new(AtomicBool::new(false));
    // The first signal lets the chunk being written finish (so the summary says what was
    // copied); a second one stops at once, which is just as safe: the server rolls the open
    // transaction back. Registered before the copy starts, so that no signal finds the
    // default action (an abrupt exit) in place.
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let flag = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("copy: stopping after the chunk being written (again to stop at once)");
        }
    });
    let chunk_rows = args.chunk_rows as usize;
    let cluster = args.cluster.clone();
    tokio::task::spawn_blocking(move || copy(&from, &to, &cluster, chunk_rows, &stop))
        .await
        .context("copy task failed")?
}

/// `--from` as a file and `--to` as a server, or a usage error that says which is wrong.
fn locations(args: &Args) -> anyhow::Result<(Location, Location)> {
    let is_url = |s: &str| s.starts_with("postgres://") || s.starts_with("postgresql://");
    if is_url(&args.from) {
        return Err(usage!(
            "--from takes the SQLite file to copy, not a PostgreSQL URL; a copy goes from a \
             file into PostgreSQL (between servers, use the server's tools: pg_dump)"
        ));
    }
    if !is_url(&args.to) {
        return Err(usage!(
            "--to {}: give the PostgreSQL database to copy into, as \
             postgres://USER@HOST:PORT/DB; a path is a SQLite file, and a copy goes from a file \
             into PostgreSQL (to copy a file, use `kubetrail backup`)",
            args.to
        ));
    }
    if args.cluster.trim().is_empty() {
        return Err(usage!(
            "--cluster is empty: name the cluster whose history {} holds",
            args.from
        ));
    }
    let from = Location::parse(&args.from, &[]).map_err(|e| usage!("--from: {e}"))?;
    let to = Location::parse(&args.to, std::slice::from_ref(&args.cluster))
        .map_err(|e| usage!("--to: {e}"))?;
    Ok((from, to))
}

/// What was copied of one table.
#[derive(Clone, Copy, Default)]
struct TableTally {
    total: u64,
    read: u64,
    counts: ChunkCounts,
}

fn copy(
    from: &Location,
    to: &Location,
    cluster: &str,
    chunk_rows: usize,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut source = open_export(from).map_err(|e| match e {
        StoreError::Missing(path) => anyhow::anyhow!("--from {}: no such file", path.display()),
        // Every other refusal names the file and says what is wrong with it.
        other => anyhow::Error::new(other),
    })?;
    let totals = source.counts().context("reading the file")?;
    let source_until = source.covered_until_ms().context("reading the file")?;
    let mut dest = open_import(to, source_until).map_err(|e| match e {
        // The recorder's own message advises another --cluster, which is not the remedy here.
        StoreError::ClusterLocked { target, cluster } => anyhow::anyhow!(
            "another kubetrail process is already recording cluster {cluster} into {target} \
             (or copying into it); stop it, copy, then start it again"
        ),
        other => {
            anyhow::Error::new(other).context(format!("cannot copy into cluster {cluster} of {to}"))
        }
    })?;
    let mut tally: BTreeMap<CopyTable, TableTally> = totals
        .iter()
        .map(|&(table, total)| {
            (
                table,
                TableTally {
                    total,
                    ..Default::default()
                },
            )
        })
        .collect();
    let all: u64 = totals.iter().map(|(_, n)| n).sum();
    eprintln!("copy: {from} into cluster {cluster} of {to}: {all} rows");

    let mut last_print = Instant::now();
    let mut current: Option<CopyTable> = None;
    let mut each = |chunk: CopyChunk| -> Result<bool, StoreError> {
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let table = chunk.table();
        if current != Some(table) {
            if let Some(done) = current {
                print_table_done(done, &tally[&done]);
            }
            current = Some(table);
        }
        let counts = import_with_retries(&mut *dest, &chunk, stop)?;
        let t = tally.entry(table).or_default();
        t.read += chunk.len() as u64;
        t.counts.add(counts);
        if last_print.elapsed() >= PROGRESS_EVERY {
            last_print = Instant::now();
            eprintln!("copy:   {}: {} of {}", table.name(), t.read, t.total);
        }
        Ok(true)
    };
    let result = source.export(chunk_rows, &mut each);
    if let Some(done) = current {
        print_table_done(done, &tally[&done]);
    }
    drop(dest);
    result.with_context(|| format!("copying into cluster {cluster} of {to}"))?;

    let copied: u64 = tally.values().map(|t| t.read).sum();
    if stop.load(Ordering::SeqCst) {
        return Err(anyhow::anyhow!(
            "interrupted after {copied} of {all} rows; what was written is whole, chunk by \
             chunk: run the same command again to finish the copy"
        ));
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "copied {from} into cluster {cluster} of {to} in {:.1}s",
        started.elapsed().as_secs_f64()
    )?;
    writeln!(
        out,
        "  {:<20} {:>10} {:>10} {:>10} {:>14}",
        "table", "rows", "new", "updated", "already there"
    )?;
    let mut skipped = 0;
    for table in CopyTable::ORDER {
        let t = tally.get(&table).copied().unwrap_or_default();
        let c = t.counts;
        skipped += c.skipped;
        writeln!(
            out,
            "  {:<20} {:>10} {:>10} {:>10} {:>14}",
            table.name(),
            t.read,
            c.new,
            c.updated,
            c.present(t.read)
        )?;
    }
    if skipped > 0 {
        eprintln!(
            "warning: {skipped} rows were skipped because their pod or node was not in the \
             database (the file may be damaged: `kubetrail stats --db {from}` checks it)"
        );
    }
    Ok(())
}

fn print_table_done(table: CopyTable, t: &TableTally) {
    let c = t.counts;
    eprintln!(
        "copy:   {}: {} rows, {} new, {} updated, {} already there",
        table.name(),
        t.read,
        c.new,
        c.updated,
        c.present(t.read)
    );
}

/// One chunk, tried again with backoff while the failure is transient.
fn import_with_retries(
    dest: &mut dyn HistoryImport,
    chunk: &CopyChunk,
    stop: &AtomicBool,
) -> Result<ChunkCounts, StoreError> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match dest.import(chunk) {
            Err(e) if e.is_transient() && attempt < ATTEMPTS && !stop.load(Ordering::SeqCst) => {
                eprintln!(
                    "copy: {e}; trying the chunk again in {:.1}s",
                    delay.as_secs_f64()
                );
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}
