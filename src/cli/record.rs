//! `kubetrail record`.

/// Flags of `kubetrail record`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`kubetrail record` is not implemented yet")
}
