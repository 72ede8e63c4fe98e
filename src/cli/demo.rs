//! `kubetrail demo`.

/// Flags of `kubetrail demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`kubetrail demo` is not implemented yet")
}
