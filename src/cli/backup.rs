//! `kubetrail backup`: a consistent copy of a database, taken while `record` keeps writing.
//!
//! `--out PATH` writes a new file (never overwriting one; it appears under its name only once
//! complete). `--out -` streams the copy to stdout, for `kubectl exec` out of an image that has
//! no shell or `tar`:
//!
//! ```sh
//! kubectl -n kubetrail exec deploy/kubetrail -- kubetrail backup --out - > trail.db
//! ```

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use kubetrail::retention::bytes::format_size;
use kubetrail::store::sqlite::backup::{BackupError, copy_database};
use kubetrail::usage;

/// Flags of `kubetrail backup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database to copy (read only; a running `record` keeps writing to it).
    #[arg(
        long,
        value_name = "PATH",
        env = "KUBETRAIL_DB",
        default_value = "kubetrail.db"
    )]
    pub db: PathBuf,
    /// Where to write the copy: a new file, or - for stdout.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || backup(&args))
        .await
        .context("the backup task failed")?
}

fn backup(args: &Args) -> anyhow::Result<()> {
    let db = args.db.to_string_lossy();
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        return Err(usage!(
            "backup copies a SQLite file; for a PostgreSQL database use the server's own tools \
             (pg_dump, or its backups)"
        ));
    }
    if args.out == Path::new("-") {
        return to_stdout(&args.db);
    }
    // Checked first too, so a taken name costs no copy.
    if args.out.exists() {
        return Err(user_facing(BackupError::Exists(args.out.clone())));
    }
    // Written beside the destination under a temporary name, then given its name: an
    // interrupted backup never leaves a partial file that looks complete.
    let name = args
        .out
        .file_name()
        .ok_or_else(|| usage!("--out {} names no file", args.out.display()))?;
    let partial = args.out.with_file_name(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let bytes = copy_database(&args.db, &partial).map_err(user_facing)?;
    // A hard link, unlike a rename, fails if the name was taken meanwhile: still no overwrite.
    let linked = std::fs::hard_link(&partial, &args.out);
    let _ = std::fs::remove_file(&partial);
    linked.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => user_facing(BackupError::Exists(args.out.clone())),
        _ => anyhow::anyhow!("cannot create {}: {e}", args.out.display()),
    })?;
    eprintln!(
        "backed up {} to {} ({})",
        args.db.display(),
        args.out.display(),
        format_size(bytes)
    );
    Ok(())
}

/// Copies into a private temporary directory, then streams the file.
fn to_stdout(db: &Path) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if stdout.is_terminal() {
        return Err(usage!(
            "refusing to write a database to a terminal; redirect stdout (> trail.db) or give --out PATH"
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("kubetrail-backup-")
        .tempdir()
        .context("cannot create a temporary directory for the copy (set TMPDIR)")?;
    let copy = dir.path().join("kubetrail.db");
    copy_database(db, &copy).map_err(user_facing)?;
    let mut file = std::fs::File::open(&copy)
        .with_context(|| format!("cannot read the copy {}", copy.display()))?;
    std::io::copy(&mut file, &mut stdout).context("cannot write the copy to stdout")?;
    stdout.flush().context("cannot write the copy to stdout")?;
    Ok(())
}

/// An existing destination is the user's to fix (exit 2); the rest are runtime failures.
fn user_facing(err: BackupError) -> anyhow::Error {
    match err {
        BackupError::Exists(_) => usage!("{err}"),
        other => anyhow::Error::new(other),
    }
}
