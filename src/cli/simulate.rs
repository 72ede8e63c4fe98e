//! `kubetrail simulate`.

/// Flags of `kubetrail simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`kubetrail simulate` is not implemented yet")
}
