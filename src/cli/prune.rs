//! `kubetrail prune`.

/// Flags of `kubetrail prune`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`kubetrail prune` is not implemented yet")
}
