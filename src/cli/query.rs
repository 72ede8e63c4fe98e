//! `kubetrail query`.

/// Subcommands of `kubetrail query`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
