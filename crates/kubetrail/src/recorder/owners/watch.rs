//! The owners task: lists and watches ReplicaSets (`apps/v1`) and Jobs (`batch/v1`), keeps the
//! last row handed on per uid, and sends only what changed to the writer.
//!
//! After a restart the owners the store holds open are loaded first ([`Known::load`]), so the
//! first list writes only what changed while kubetrail was away, and an owner the list no
//! longer has is marked deleted (when it was seen gone, not when it went: the recorder was not
//! there). The store compares each row with what it holds besides, so a row this task wrote
//! twice (after a lost commit, say) changes nothing.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::time::MissedTickBehavior;

use super::decode::{AnyOwner, SlimJob, SlimReplicaSet};
use crate::model::owner::{OwnerFilter, OwnerKind, join_images};
use crate::model::time::now_ms;
use crate::recorder::backoff::paced;
use crate::recorder::health::describe;
use crate::recorder::writer::{WeakWriteSender, WriteMsg};
use crate::store::{Batch, OwnerRow, Snapshot, StoreError};

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

/// The last row handed on per uid (its observation time aside).
#[derive(Debug, Default)]
pub struct Known {
    owners: HashMap<String, OwnerRow>,
}

impl Known {
    /// The open owners the store holds (in `namespace`, or all), as last written.
    pub fn load(read: &mut dyn Snapshot, namespace: Option<&str>) -> Result<Known, StoreError> {
        let filter = OwnerFilter {
            namespace: namespace.map(str::to_string),
            open_only: true,
            ..OwnerFilter::default()
        };
        let mut known = Known::default();
        for o in read.owners(&filter)? {
            let kind = match o.kind {
                "Job" => OwnerKind::Job,
                _ => OwnerKind::ReplicaSet,
            };
            let last = o.scales.last();
            let row = OwnerRow {
                uid: o.uid.clone(),
                kind,
                namespace: o.namespace,
                name: o.name,
                controller_kind: o.controller_kind,
                controller_name: o.controller_name,
                revision: o.revision,
                template_hash: o.template_hash,
                images: join_images(o.images.iter().map(String::as_str)),
                created_at_ms: o.created_at_ms,
                deleted_at_ms: o.deleted_at_ms,
                spec_replicas: last.and_then(|s| s.spec_replicas),
                status_replicas: last.and_then(|s| s.status_replicas),
                observed_at_ms: 0,
            };
            known.owners.insert(o.uid, row);
        }
        Ok(known)
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Whether `row` differs from what was handed on for its uid; if so it is remembered.
    pub fn admit(&mut self, row: &OwnerRow) -> bool {
        let mut key = row.clone();
        key.observed_at_ms = 0;
        match self.owners.get(&row.uid) {
            Some(old) if *old == key => false,
            _ => {
                self.owners.insert(row.uid.clone(), key);
                true
            }
        }
    }

    /// Rows for the open owners of `kind` a list did not return: they were deleted while the
    /// watch was away. They are forgotten once handed on.
    pub fn gone(&mut self, kind: OwnerKind, listed: &HashSet<String>, at_ms: i64) -> Vec<OwnerRow> {
        let gone: Vec<String> = self
            .owners
            .iter()
            .filter(|(uid, o)| {
                o.kind == kind && o.deleted_at_ms.is_none() && !listed.contains(*uid)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        gone.into_iter()
            .filter_map(|uid| self.owners.remove(&uid))
            .map(|mut row| {
                row.deleted_at_ms = Some(at_ms);
                row.observed_at_ms = at_ms;
                row
            })
            .collect()
    }

    /// A deleted owner: its row with the deletion time, and it is forgotten.
    pub fn deleted(&mut self, mut row: OwnerRow, at_ms: i64) -> OwnerRow {
        self.owners.remove(&row.uid);
        row.deleted_at_ms = Some(at_ms);
        row.observed_at_ms = at_ms;
        row
    }
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
pub async fn run(
    client: Client,
    config: OwnersConfig,
    known: Known,
    writer: WeakWriteSender,
    stop: impl Future<Output = ()>,
) {
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
    tokio::pin!(stop);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uid: &str, spec: i64) -> OwnerRow {
        OwnerRow {
            uid: uid.into(),
            kind: OwnerKind::ReplicaSet,
            namespace: "shop".into(),
            name: format!("web-{uid}"),
            controller_kind: Some("Deployment".into()),
            controller_name: Some("web".into()),
            revision: Some(1),
            template_hash: Some(uid.into()),
            images: "nginx:1".into(),
            created_at_ms: 1,
            deleted_at_ms: None,
            spec_replicas: Some(spec),
            status_replicas: Some(spec),
            observed_at_ms: 100,
        }
    }

    #[test]
    fn only_changed_owners_are_admitted_whenever_they_are_seen() {
        let mut known = Known::default();
        assert!(known.admit(&row("a", 1)));
        let mut later = row("a", 1);
        later.observed_at_ms = 500;
        assert!(!known.admit(&later), "a resync or relist of the same state");
        assert!(known.admit(&row("a", 3)), "scaled up");
    }

    #[test]
    fn a_relist_marks_the_owners_it_no_longer_finds_as_deleted() {
        let mut known = Known::default();
        known.admit(&row("a", 1));
        known.admit(&row("b", 1));
        let mut job = row("j", 1);
        job.kind = OwnerKind::Job;
        known.admit(&job);
        let listed: HashSet<String> = ["a".to_string()].into();
        let gone = known.gone(OwnerKind::ReplicaSet, &listed, 777);
        assert_eq!(gone.len(), 1, "only b: a was listed, j is another kind");
        assert_eq!(
            (gone[0].uid.as_str(), gone[0].deleted_at_ms),
            ("b", Some(777))
        );
        assert!(known.gone(OwnerKind::ReplicaSet, &listed, 800).is_empty());
        assert_eq!(known.len(), 2);
    }
}
