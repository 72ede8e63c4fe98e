//! `kubetrail serve`: the report's page, live and read-only, beside a running `record`.
//!
//! It binds to loopback by default: the history names every pod and node of the cluster, so
//! showing it to a network is a choice to make with `--addr`, and it is logged when made. The
//! routes, the JSON API and its guards are `kubetrail::report::serve`'s.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use super::connect::shutdown_signal;
use super::query::{DbArgs, open_pool};
use kubetrail::query::nodes::WORKERS;
use kubetrail::report::serve::{self, Served};

/// The default `--addr`: this machine only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Flags of `kubetrail serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on. The default is loopback only; 0.0.0.0:8080 shows the history to
    /// anyone who can reach this machine. Port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let source = args.db.location()?.to_string();
    // Two snapshots for each node report's workers and one for its setup, plus one for a
    // second request meanwhile.
    let db = args.db.clone();
    let reader = tokio::task::spawn_blocking(move || open_pool(&db, WORKERS as u32 + 2)).await??;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on --addr {}: {e}", args.addr))?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        tracing::warn!(
            addr = %bound,
            "serving beyond this machine: anyone who can reach this address can read the history"
        );
    }
    // Tests and scripts read the address from this line.
    println!("serving on http://{bound}/ (read-only) from {source}");
    std::io::stdout().flush()?;
    serve::run(
        listener,
        Arc::new(Served { reader, source }),
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_default_address_is_loopback() {
        let cli = Cli::try_parse_from(["serve"]).unwrap();
        assert!(cli.args.addr.ip().is_loopback());
        assert_eq!(cli.args.addr.to_string(), DEFAULT_ADDR);
    }
}
