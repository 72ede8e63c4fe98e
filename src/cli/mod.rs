//! The command line: one file per subcommand, each with an `Args` struct and a `run()`.
//!
//! Exit codes: 0 OK, 1 runtime failure, 2 bad usage. clap reports malformed
//! flags itself (with exit code 2); errors found later are turned into exit codes here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod backup;
pub mod connect;
pub mod copy;
#[cfg(feature = "sim")]
pub mod demo;
pub mod export;
pub mod owners;
pub mod prune;
pub mod query;
pub mod record;
pub mod report;
pub mod serve;
#[cfg(feature = "sim")]
pub mod simulate;
pub mod stats;

/// kubetrail: a durable, queryable history of a Kubernetes cluster in one SQLite file.
#[derive(Debug, Parser)]
#[command(name = "kubetrail", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch a cluster and record pod and node history into SQLite (runs until stopped).
    Record(record::Args),
    /// Report on a recorded database: pods, one pod's history, transitions, node utilisation.
    #[command(subcommand)]
    Query(query::Command),
    /// Write CSV reports (RFC 4180) of transitions, pods or node utilisation.
    #[command(subcommand)]
    Export(export::Command),
    /// Apply the retention policy now.
    Prune(prune::Args),
    /// Show the database's size, row counts, time span and what retention would remove.
    Stats(stats::Args),
    /// Write one self-contained HTML file with pictures of the history (no network needed).
    Report(report::Args),
    /// Serve the report's views live and read-only over HTTP (loopback by default).
    Serve(serve::Args),
    /// Write a consistent copy of the database (to a new file, or stdout) while `record` runs.
    Backup(backup::Args),
    /// Copy a SQLite file's history into one cluster of a PostgreSQL database (again: adds
    /// only what is new).
    Copy(copy::Args),
    /// Serve a simulated cluster over the real Kubernetes API, for tests and trying things out.
    #[cfg(feature = "sim")]
    Simulate(simulate::Args),
    /// Simulate a cluster, record it, and show a few query results. No setup needed.
    #[cfg(feature = "sim")]
    Demo(demo::Args),
}

pub use kubetrail::error::UsageError;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own progress; only problems should interrupt it.
    #[cfg(feature = "sim")]
    let quiet = matches!(cli.command, Command::Demo(_));
    #[cfg(not(feature = "sim"))]
    let quiet = false;
    init_tracing(if quiet { "warn" } else { "info" });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Record(args) => record::run(args).await,
            Command::Query(cmd) => query::run(cmd).await,
            Command::Export(cmd) => export::run(cmd).await,
            Command::Prune(args) => prune::run(args).await,
            Command::Stats(args) => stats::run(args).await,
            Command::Backup(args) => backup::run(args).await,
            Command::Report(args) => report::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Copy(args) => copy::run(args).await,
            #[cfg(feature = "sim")]
            Command::Simulate(args) => simulate::run(args).await,
            #[cfg(feature = "sim")]
            Command::Demo(args) => demo::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The error and its causes in one line, like anyhow's `{:#}`, but a cause whose text the line
/// already holds is left out: many errors (kube's, the database driver's) write their source into their
/// own message and also return it as `source()`, which `{:#}` printed twice
/// ("No such file or directory (os error 2): No such file or directory (os error 2)").
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Logs go to stderr so that stdout stays clean for reports; `RUST_LOG` overrides the level.
fn init_tracing(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    // kube's client logs every failed connection at ERROR; the recorder reports those itself,
    // with the server and what it will do next, so that line is silenced by default.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default_level},kube_client::client::builder=off"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// `kubetrail query ... | head` closes our stdout early; that is not an error (ripgrep's rule).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        #[derive(Debug, thiserror::Error)]
        #[error("failed to read x: {0}")]
        struct Embeds(#[source] std::io::Error);
        let err = anyhow::Error::new(Embeds(io)).context("cannot read kubeconfig x");
        assert_eq!(
            describe(&err),
            "cannot read kubeconfig x: failed to read x: entity not found"
        );
    }
}
