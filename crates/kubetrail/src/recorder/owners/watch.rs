//! The owners task: lists and watches ReplicaSets (`apps/v1`) and Jobs (`batch/v1`), keeps the
//! last row handed on per uid, and sends only what changed to the writer.
//!
//! After a restart the owners the store holds open are loaded first ([`Known::load`]), so the
//! first list writes only what changed while kubetrail was away, and an owner the list no
//! longer has is marked deleted (when it was seen gone, not when it went: the recorder was not
//! there). The store compares each row with what it holds besides, so a row this task wrote
//! twice (after a lost commit, say) changes nothing.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::time::MissedTickBehavior;

use super::decode::{AnyOwner, SlimJob, SlimReplicaSet};
pub use super::known::Known;
use crate::model::owner::OwnerKind;
use crate::model::time::now_ms;
use crate::recorder::backoff::paced;
use crate::recorder::begin::after_initial_list;
use crate::recorder::health::describe;
use crate::recorder::writer::{WeakWriteSender, WriteMsg};
use crate::store::{Batch, OwnerRow};

/// How the owners watch runs.
#[derive(Clone, Debug)]
pub struct OwnersConfig {
    /// Only this namespace's owners; None for all.
    pub namespace: Option<String>,
    pub page_size: u32,
    /// Server-side timeout of each watch request, in seconds.
    pub watch_timeout_secs: u32,
    /// Longest time new rows wait before they are sent.
    pub flush_interval: Duration,
}

/// One kind's list bookkeeping: the uids the current list returned.
#[derive(Default)]
struct Listing {
    seen: HashSet<String>,
}

struct Task {
    known: Known,
    writer: WeakWriteSender,
    rows: Vec<OwnerRow>,
    since: Option<Instant>,
    writer_gone: bool,
}

impl Task {
    fn push(&mut self, row: OwnerRow) {
        self.since.get_or_insert_with(Instant::now);
        self.rows.push(row);
    }

    fn on_event<K: AnyOwner>(&mut self, kind: OwnerKind, listing: &mut Listing, ev: Event<K>) {
        match ev {
            Event::Init => listing.seen.clear(),
            Event::InitApply(o) | Event::Apply(o) => {
                if let Some(row) = o.into_inner().row {
                    listing.seen.insert(row.uid.clone());
                    if self.known.admit(&row) {
                        self.push(row);
                    }
                }
            }
            Event::InitDone => {
                tracing::info!(
                    kind = kind.as_str(),
                    listed = listing.seen.len(),
                    "owner list done; following changes"
                );
                let gone = self.known.gone(kind, &listing.seen, now_ms());
                if !gone.is_empty() {
                    tracing::info!(
                        kind = kind.as_str(),
                        gone = gone.len(),
                        "owners deleted while the watch was away are marked deleted"
                    );
                }
                for row in gone {
                    self.push(row);
                }
                listing.seen = HashSet::new();
            }
            Event::Delete(o) => {
                if let Some(row) = o.into_inner().row {
                    let row = self.known.deleted(row, now_ms());
                    self.push(row);
                }
            }
        }
    }

    async fn flush(&mut self) {
        if self.rows.is_empty() || self.writer_gone {
            return;
        }
        let batch = Batch {
            owners: std::mem::take(&mut self.rows),
            ..Batch::default()
        };
        let since = self.since.take().unwrap_or_else(Instant::now);
        if self
            .writer
            .send(WriteMsg::Rows { batch, since })
            .await
            .is_err()
        {
            self.writer_gone = true;
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Whether the API server serves `plural` in `group_version` (by discovery). A 404 means it
/// does not (a trimmed API server, a simulator): that kind is then not watched, rather than
/// retried for ever. Any other failure is taken as yes, and the watch's retries say what is
/// wrong (a 403 names the missing RBAC rule).
async fn serves(client: &Client, group_version: &str, plural: &str) -> bool {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => list.resources.iter().any(|r| r.name == plural),
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(err) => {
            tracing::warn!(%err, group_version, "cannot discover {plural}; watching them anyway");
            true
        }
    }
}

/// A watch stream of `K`, or one that never yields when the API server does not serve it.
async fn stream<K>(
    client: &Client,
    namespace: Option<&str>,
    wc: watcher::Config,
    group_version: &str,
    plural: &str,
) -> futures::stream::BoxStream<'static, watcher::Result<Event<K>>>
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    if serves(client, group_version, plural).await {
        tracing::info!("watching {group_version} {plural}");
        paced(watcher::watcher(api::<K>(client, namespace), wc).boxed()).boxed()
    } else {
        tracing::info!("the API server does not serve {group_version} {plural}; not watching them");
        futures::stream::pending().boxed()
    }
}

/// Runs the owners watch until `stop` completes, then sends what it holds and returns.
///
/// Nothing is listed before `begin` resolves ([`after_initial_list`]): a cluster's Jobs can
/// number a third of its pods, and listed beside them they took the writer's time and memory
/// from the pods' list. A pod's owner is resolved when a report is read, so the wait loses
/// nothing.
pub async fn run(
    client: Client,
    config: OwnersConfig,
    known: Known,
    writer: WeakWriteSender,
    begin: impl Future<Output = ()>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    if !after_initial_list("ReplicaSets and Jobs", begin, stop.as_mut()).await {
        return;
    }
    let wc = watcher::Config::default()
        .page_size(config.page_size)
        .timeout(config.watch_timeout_secs);
    let ns = config.namespace.as_deref();
    let mut replicasets =
        stream::<SlimReplicaSet>(&client, ns, wc.clone(), "apps/v1", "replicasets").await;
    let mut jobs = stream::<SlimJob>(&client, ns, wc, "batch/v1", "jobs").await;
    let mut task = Task {
        known,
        writer,
        rows: Vec::new(),
        since: None,
        writer_gone: false,
    };
    let (mut rs_listing, mut job_listing) = (Listing::default(), Listing::default());
    let (mut rs_failing, mut job_failing) = (false, false);
    let mut flush = tokio::time::interval(config.flush_interval);
    flush.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = &mut stop => break,
            item = replicasets.next() => match item {
                Some(Ok(ev)) => {
                    rs_failing = false;
                    task.on_event(OwnerKind::ReplicaSet, &mut rs_listing, ev);
                }
                Some(Err(err)) => {
                    if !rs_failing {
                        tracing::warn!(error = %describe(&err), "ReplicaSet watch failed; retrying with backoff");
                    }
                    rs_failing = true;
                }
                None => break,
            },
            item = jobs.next() => match item {
                Some(Ok(ev)) => {
                    job_failing = false;
                    task.on_event(OwnerKind::Job, &mut job_listing, ev);
                }
                Some(Err(err)) => {
                    if !job_failing {
                        tracing::warn!(error = %describe(&err), "Job watch failed; retrying with backoff");
                    }
                    job_failing = true;
                }
                None => break,
            },
            _ = flush.tick() => task.flush().await,
        }
        if task.rows.len() >= 1_000 {
            task.flush().await;
        }
        if task.writer_gone {
            break;
        }
    }
    task.flush().await;
}
