//! `kubetrail export`.

/// Subcommands of `kubetrail export`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
