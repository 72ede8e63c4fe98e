//! `--owner KIND/NAME`: a workload as the user names it, resolved through the recorded chain
//! into the direct owners pods record (a Deployment into its ReplicaSets, a CronJob into its
//! Jobs), and each pod's workload by the same chain (`query workloads`).

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::error::QueryError;
use crate::model::event::{EventFilter, EventRecord};
use crate::model::owner::{
    DirectOwner, OwnerFilter, OwnerKind, OwnerRecord, Parent, WorkloadKind, WorkloadRef,
};
use crate::model::report::{PodFilter, PodSummary};
use crate::store::Snapshot;
use crate::store::{Coverage, HistoryReader};

/// The direct owners whose pods make up `workload` (in `namespace`, or any). None for
/// `pod/NAME`, which has no owner to match: the caller picks the bare pod by name.
pub fn direct_owners(
    read: &mut dyn Snapshot,
    workload: &WorkloadRef,
    namespace: Option<&str>,
) -> Result<Option<Vec<DirectOwner>>, QueryError> {
    let through = |kind: OwnerKind, read: &mut dyn Snapshot| -> Result<_, QueryError> {
        let filter = OwnerFilter {
            namespace: namespace.map(str::to_string),
            controller: Some((workload.kind.as_str().to_string(), workload.name.clone())),
            kind: Some(kind),
            ..OwnerFilter::default()
        };
        Ok(read
            .owners(&filter)?
            .into_iter()
            .map(|o| DirectOwner {
                namespace: Some(o.namespace),
                kind: kind.as_str().to_string(),
                name: o.name,
            })
            .collect::<Vec<_>>())
    };
    Ok(match workload.kind {
        WorkloadKind::Deployment => Some(through(OwnerKind::ReplicaSet, read)?),
        WorkloadKind::CronJob => Some(through(OwnerKind::Job, read)?),
        WorkloadKind::Pod => None,
        kind => Some(vec![DirectOwner {
            namespace: namespace.map(str::to_string),
            kind: kind.as_str().to_string(),
            name: workload.name.clone(),
        }]),
    })
}

/// The ReplicaSets or Jobs of `workload` with their rollout facts (a Deployment's
/// ReplicaSets, a CronJob's Jobs, or the ReplicaSet or Job itself), oldest first.
pub fn links_of(
    read: &mut dyn Snapshot,
    workload: &WorkloadRef,
    namespace: Option<&str>,
) -> Result<Vec<OwnerRecord>, QueryError> {
    let mut filter = OwnerFilter {
        namespace: namespace.map(str::to_string),
        ..OwnerFilter::default()
    };
    match workload.kind {
        WorkloadKind::Deployment | WorkloadKind::CronJob => {
            filter.controller = Some((workload.kind.as_str().to_string(), workload.name.clone()));
        }
        WorkloadKind::ReplicaSet => {
            filter.kind = Some(OwnerKind::ReplicaSet);
            filter.name = Some(workload.name.clone());
        }
        WorkloadKind::Job => {
            filter.kind = Some(OwnerKind::Job);
            filter.name = Some(workload.name.clone());
        }
        _ => return Ok(Vec::new()),
    }
    Ok(read.owners(&filter)?)
}

/// Every recorded ReplicaSet or Job that has a controller, by (cluster, namespace, kind,
/// name): what a pod's direct owner leads to. The cluster is part of the key because two
/// clusters running the same manifests have ReplicaSets of the same name (the pod-template
/// hash is the template's), and each must lead to its own cluster's Deployment.
#[derive(Debug, Default)]
pub struct Chains {
    parents: HashMap<(Option<String>, String, String, String), Parent>,
}

impl Chains {
    pub fn load(read: &mut dyn Snapshot, namespace: Option<&str>) -> Result<Chains, QueryError> {
        let filter = OwnerFilter {
            namespace: namespace.map(str::to_string),
            ..OwnerFilter::default()
        };
        let mut parents = HashMap::new();
        for o in read.owners(&filter)? {
            if let Some(parent) = o.parent() {
                parents.insert((o.cluster, o.namespace, o.kind.to_string(), o.name), parent);
            }
        }
        Ok(Chains { parents })
    }

    /// The controller above a pod's direct owner (in the pod's cluster, when the report reads
    /// several), if one was recorded.
    pub fn parent(
        &self,
        cluster: Option<&str>,
        namespace: &str,
        kind: &str,
        name: &str,
    ) -> Option<&Parent> {
        self.parents.get(&(
            cluster.map(str::to_string),
            namespace.to_string(),
            kind.to_string(),
            name.to_string(),
        ))
    }
}

/// `query pods --owner`: the pods `filter` selects whose workload is `workload`, oldest
/// first, handed to `each`; returns how many were.
pub fn for_each_pod_of(
    reader: &dyn HistoryReader,
    filter: &PodFilter,
    workload: &WorkloadRef,
    now_ms: i64,
    mut each: impl FnMut(PodSummary) -> Result<(), QueryError>,
) -> Result<u64, QueryError> {
    let mut read = reader.snapshot()?;
    let open_until_ms = Coverage::from_sessions(read.sessions()?).open_until_ms(now_ms);
    let mut filter = filter.clone();
    filter.owners = direct_owners(&mut *read, workload, filter.namespace.as_deref())?;
    // A bare pod is picked by name after the read, so the limit is counted here.
    let bare = filter.owners.is_none();
    let limit = filter.limit.take();
    let mut n = 0u64;
    let mut failed = None;
    read.pods(&filter, open_until_ms, &mut |p| {
        if bare && (p.owner_kind.is_some() || p.name != workload.name) {
            return ControlFlow::Continue(());
        }
        if limit.is_some_and(|l| n >= l) {
            return ControlFlow::Break(());
        }
        n += 1;
        match each(p) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// `query events --owner`: the events `filter` selects about the pods of `workload` (every
/// incarnation recorded), in last-seen order, handed to `each`; returns how many were.
pub fn for_each_event_of(
    reader: &dyn HistoryReader,
    filter: &EventFilter,
    workload: &WorkloadRef,
    now_ms: i64,
    mut each: impl FnMut(EventRecord) -> Result<(), QueryError>,
) -> Result<u64, QueryError> {
    let pods = PodFilter {
        namespace: filter.namespace.clone(),
        ..PodFilter::default()
    };
    let mut uids = Vec::new();
    for_each_pod_of(reader, &pods, workload, now_ms, |p| {
        uids.push(p.uid);
        Ok(())
    })?;
    let mut read = reader.snapshot()?;
    let mut events = Vec::new();
    // One read for all the workload's pods (each statement is a round trip on a server).
    let mut by_pods = filter.clone();
    by_pods.regarding_uids = Some(uids);
    by_pods.limit = None;
    read.events(&by_pods, &mut |e| {
        events.push(e);
        ControlFlow::Continue(())
    })?;
    events.sort_by(|a, b| (a.last_seen_ms, &a.uid).cmp(&(b.last_seen_ms, &b.uid)));
    if let Some(limit) = filter.limit {
        events.truncate(limit as usize);
    }
    let n = events.len() as u64;
    for e in events {
        each(e)?;
    }
    Ok(n)
}
