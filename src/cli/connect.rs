//! Connecting to a cluster the way kubectl does: `--kubeconfig` (else $KUBECONFIG, else
//! ~/.kube/config), `--context`, and in-cluster config when there is no kubeconfig at all.
//! Also the shutdown signal every long-running command waits for.

use std::path::Path;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use kubetrail::usage;

/// A client, the server URL it talks to (for log lines), and the kubeconfig context it came
/// from (None in a cluster, where there is no kubeconfig).
pub async fn kube_client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<(Client, String, Option<String>)> {
    let mut context_name = context.map(str::to_string);
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            // kube's own error for a missing file names the path and the cause twice.
            if let Err(err) = std::fs::metadata(path) {
                anyhow::bail!(
                    "cannot read kubeconfig {}: {}",
                    path.display(),
                    kubetrail::store::error::describe_io(&err)
                );
            }
            let parsed = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            if let Some(ctx) = context
                && !parsed.contexts.iter().any(|c| c.name == ctx)
            {
                let known: Vec<&str> = parsed.contexts.iter().map(|c| c.name.as_str()).collect();
                return Err(usage!(
                    "--context {ctx:?} is not in kubeconfig {}; it has: {}",
                    path.display(),
                    if known.is_empty() {
                        "no contexts".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            if context_name.is_none() {
                context_name = parsed.current_context.clone();
            }
            Config::from_custom_kubeconfig(parsed, &options)
                .await
                .with_context(|| format!("kubeconfig {} is not usable", path.display()))?
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .with_context(|| format!("cannot use --context {:?}", context.unwrap_or_default()))?,
        None => {
            let config = Config::infer().await.context(
                "no cluster configuration found: pass --kubeconfig, set KUBECONFIG, or run inside a cluster",
            )?;
            // infer() prefers a kubeconfig when there is one; without one it is in-cluster.
            context_name = Kubeconfig::read().ok().and_then(|k| k.current_context);
            config
        }
    };
    let mut config = config;
    // kube's client quietly retries 503s itself; the recorder's watchers retry with their own
    // backoff instead, so that an outage is visible (logged, counted) and the events replayed
    // after it are known to be late.
    config.default_retry = false;
    let url = config.cluster_url.to_string();
    let client =
        Client::try_from(config).with_context(|| format!("cannot build a client for {url}"))?;
    Ok((client, url, context_name))
}

/// Completes on SIGINT (Ctrl-C), SIGTERM (what Kubernetes and systemd send) or SIGHUP (the
/// terminal went away): each stops the command the same graceful way.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let ctrl_c = tokio::signal::ctrl_c();
    let term = signal(SignalKind::terminate());
    let hup = signal(SignalKind::hangup());
    match (term, hup) {
        (Ok(mut term), Ok(mut hup)) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        }
        _ => {
            let _ = ctrl_c.await;
        }
    }
}
