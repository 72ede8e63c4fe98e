//! `kubetrail stats`.

/// Flags of `kubetrail stats`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`kubetrail stats` is not implemented yet")
}
