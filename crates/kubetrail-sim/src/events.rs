//! Kubernetes Events as the simulated cluster's components would write them, served in both
//! groups (`events.k8s.io/v1` and core `v1`) like a real API server serves one Event object in
//! both. The scheduler writes new-style events (`eventTime`, a `series` for repeats); the kubelet
//! and the node controller write old-style ones (`count`, first and last timestamps), as
//! client-go's legacy recorder still does, so both shapes reach a client.
//!
//! A repeat of the same (object, reason, container, kind of message) is the same Event with a
//! grown count, as client-go's event correlator makes it. Events expire an hour (virtual) after
//! they were last seen, like the API server's default `--event-ttl`, which also bounds the
//! simulator's memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::{format_millis, format_secs};
use crate::store::{ObjectKey, ResourceKind, SelectableFields, Store};

/// The API server's default event TTL.
pub const EVENT_TTL_MS: i64 = 3_600_000;

/// Who wrote an event, which decides its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reporter {
    /// New-style (events.k8s.io): eventTime and series.
    Scheduler,
    /// Old-style (core): count and first/last timestamps.
    Kubelet,
    NodeController,
}

impl Reporter {
    fn component(self) -> &'static str {
        match self {
            Reporter::Scheduler => "default-scheduler",
            Reporter::Kubelet => "kubelet",
            Reporter::NodeController => "node-controller",
        }
    }
}

/// What an event is about.
#[derive(Clone, Debug)]
pub struct Regarding {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub container: Option<String>,
}

/// One event to record.
pub struct Occurrence<'a> {
    pub regarding: Regarding,
    pub reason: &'static str,
    pub warning: bool,
    pub note: String,
    pub reporter: Reporter,
    /// Where it happened (the kubelet's node), for `reportingInstance`.
    pub host: Option<&'a str>,
    pub at_ms: i64,
}

#[derive(Clone, Debug)]
struct Series {
    uid: String,
    name: String,
    regarding: Regarding,
    reason: &'static str,
    warning: bool,
    note: String,
    reporter: Reporter,
    host: Option<String>,
    count: i64,
    first_ms: i64,
    last_ms: i64,
}

/// The events of the simulated cluster.
pub struct Events {
    store: Arc<Store>,
    /// (regarding uid, reason, container) -> series.
    series: HashMap<(String, &'static str, Option<String>), Series>,
    /// last_ms -> keys, to expire the oldest first.
    by_last: BTreeMap<(i64, u64), (String, &'static str, Option<String>)>,
    serial: u64,
    seed: u64,
}

impl Events {
    pub fn new(store: Arc<Store>, seed: u64) -> Events {
        Events {
            store,
            series: HashMap::new(),
            by_last: BTreeMap::new(),
            serial: 0,
            seed,
        }
    }

    /// Records an occurrence: a new Event, or the next count of its series.
    pub fn record(&mut self, o: Occurrence<'_>) {
        // The made-up past of the initial cluster (pods started days ago): events that the
        // API server would have expired already are not made at all.
        if o.at_ms < self.store.virtual_now_ms() - EVENT_TTL_MS {
            return;
        }
        self.expire(o.at_ms);
        let key = (
            o.regarding.uid.clone(),
            o.reason,
            o.regarding.container.clone(),
        );
        self.serial += 1;
        let serial = self.serial;
        let series = match self.series.get_mut(&key) {
            Some(s) => {
                self.by_last
                    .remove(&(s.last_ms, s.count as u64 ^ hash(&s.uid)));
                s.count += 1;
                s.last_ms = o.at_ms.max(s.last_ms);
                s.note = o.note;
                s.clone()
            }
            None => {
                let s = Series {
                    uid: uid(self.seed, serial),
                    name: format!("{}.{:016x}", o.regarding.name, hash(&format!("{serial}"))),
                    regarding: o.regarding,
                    reason: o.reason,
                    warning: o.warning,
                    note: o.note,
                    reporter: o.reporter,
                    host: o.host.map(str::to_string),
                    count: 1,
                    first_ms: o.at_ms,
                    last_ms: o.at_ms,
                };
                self.series.insert(key.clone(), s.clone());
                s
            }
        };
        self.by_last.insert(
            (series.last_ms, series.count as u64 ^ hash(&series.uid)),
            key,
        );
        self.publish(&series);
    }

    fn publish(&self, s: &Series) {
        let ns = s.regarding.namespace.clone();
        for resource in [ResourceKind::Events, ResourceKind::EventsV1] {
            self.store.put(
                resource,
                ObjectKey::new(&ns, &s.name),
                SelectableFields::default(),
                |rv| {
                    let value = match resource {
                        ResourceKind::EventsV1 => render_v1(s, rv),
                        _ => render_core(s, rv),
                    };
                    serde_json::to_vec(&value).unwrap_or_default()
                },
            );
        }
    }

    /// Removes events last seen more than [`EVENT_TTL_MS`] before `now_ms`.
    fn expire(&mut self, now_ms: i64) {
        while let Some((&(last, tag), _)) = self.by_last.iter().next() {
            if last >= now_ms - EVENT_TTL_MS {
                break;
            }
            let key = self.by_last.remove(&(last, tag)).expect("just seen");
            if let Some(s) = self.series.remove(&key) {
                for resource in [ResourceKind::Events, ResourceKind::EventsV1] {
                    let gone = match resource {
                        ResourceKind::EventsV1 => render_v1(&s, 0),
                        _ => render_core(&s, 0),
                    };
                    self.store.remove(
                        resource,
                        &ObjectKey::new(&s.regarding.namespace, &s.name),
                        |rv| {
                            let mut gone = gone.clone();
                            gone["metadata"]["resourceVersion"] = json!(rv.to_string());
                            serde_json::to_vec(&gone).unwrap_or_default()
                        },
                    );
                }
            }
        }
    }

    /// Events held now.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

fn hash(s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A uid shaped like the API server's (a UUID), deterministic for a seed.
fn uid(seed: u64, serial: u64) -> String {
    let a = hash(&format!("{seed}:{serial}:a"));
    let b = hash(&format!("{seed}:{serial}:b"));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// A MicroTime as the API server writes it.
fn micro(ms: i64) -> String {
    format_millis(ms).replace('Z', "000Z")
}

fn field_path(s: &Series) -> Option<String> {
    s.regarding
        .container
        .as_ref()
        .map(|c| format!("spec.containers{{{c}}}"))
}

fn reference(s: &Series) -> Value {
    let mut r = json!({
        "kind": s.regarding.kind,
        "name": s.regarding.name,
        "uid": s.regarding.uid,
        "apiVersion": "v1",
    });
    if s.regarding.kind == "Pod" {
        r["namespace"] = json!(s.regarding.namespace);
    }
    if let Some(path) = field_path(s) {
        r["fieldPath"] = json!(path);
    }
    r
}

fn metadata(s: &Series, rv: u64) -> Value {
    json!({
        "name": s.name,
        "namespace": s.regarding.namespace,
        "uid": s.uid,
        "resourceVersion": rv.to_string(),
        "creationTimestamp": format_secs(s.first_ms),
    })
}

fn event_type(s: &Series) -> &'static str {
    if s.warning { "Warning" } else { "Normal" }
}

/// The events.k8s.io/v1 view.
fn render_v1(s: &Series, rv: u64) -> Value {
    let mut v = json!({
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "metadata": metadata(s, rv),
        "reason": s.reason,
        "regarding": reference(s),
        "note": s.note,
        "type": event_type(s),
        "action": s.reason,
    });
    match s.reporter {
        Reporter::Scheduler => {
            v["eventTime"] = json!(micro(s.first_ms));
            v["reportingController"] = json!(s.reporter.component());
            v["reportingInstance"] = json!(format!("{}-sim", s.reporter.component()));
            if s.count > 1 {
                v["series"] = json!({"count": s.count, "lastObservedTime": micro(s.last_ms)});
            }
        }
        Reporter::Kubelet | Reporter::NodeController => {
            v["eventTime"] = Value::Null;
            v["reportingController"] = json!(s.reporter.component());
            v["reportingInstance"] = json!(s.host.clone().unwrap_or_default());
            v["deprecatedSource"] =
                json!({"component": s.reporter.component(), "host": s.host.clone()});
            v["deprecatedFirstTimestamp"] = json!(format_secs(s.first_ms));
            v["deprecatedLastTimestamp"] = json!(format_secs(s.last_ms));
            v["deprecatedCount"] = json!(s.count);
        }
    }
    v
}

/// The core v1 view of the same event.
fn render_core(s: &Series, rv: u64) -> Value {
    let mut v = json!({
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": metadata(s, rv),
        "involvedObject": reference(s),
        "reason": s.reason,
        "message": s.note,
        "type": event_type(s),
        "source": {"component": s.reporter.component()},
    });
    match s.reporter {
        Reporter::Scheduler => {
            v["eventTime"] = json!(micro(s.first_ms));
            v["reportingComponent"] = json!(s.reporter.component());
            v["reportingInstance"] = json!(format!("{}-sim", s.reporter.component()));
            v["firstTimestamp"] = Value::Null;
            v["lastTimestamp"] = Value::Null;
            v["action"] = json!(s.reason);
            if s.count > 1 {
                v["series"] = json!({"count": s.count, "lastObservedTime": micro(s.last_ms)});
            }
        }
        Reporter::Kubelet | Reporter::NodeController => {
            if let Some(host) = &s.host {
                v["source"]["host"] = json!(host);
            }
            v["firstTimestamp"] = json!(format_secs(s.first_ms));
            v["lastTimestamp"] = json!(format_secs(s.last_ms));
            v["count"] = json!(s.count);
            v["eventTime"] = Value::Null;
            v["reportingComponent"] = json!(s.reporter.component());
            v["reportingInstance"] = json!(s.host.clone().unwrap_or_default());
        }
    }
    v
}
