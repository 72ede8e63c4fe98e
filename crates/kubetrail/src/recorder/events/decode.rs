//! The slim Event types the events watch decodes: our own `serde` types implementing
//! `kube::Resource`, one per API group (`events.k8s.io/v1`, and core `v1` for an API server
//! without that group), both reading only the fields kubetrail keeps and projecting them
//! straight into an [`EventRow`]. Events about other kinds (Deployments, ReplicaSets, ...)
//! decode to no row and are dropped at once.
//!
//! The two groups name the same facts differently (`regarding` / `involvedObject`, `note` /
//! `message`, `deprecatedCount` / `count`, ...); one raw shape with both spellings reads either.
//! The times follow the rule: last seen is the newest of `series.lastObservedTime`,
//! the (deprecated) last timestamp and `eventTime`; first seen is `eventTime`, else the
//! (deprecated) first timestamp, else the object's creation.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use serde::Deserialize;

use crate::model::event::{EventType, RegardingKind, truncate_note};
use crate::model::time::parse_rfc3339_ms;
use crate::recorder::wire_str::{WireStr, non_empty, owned};
use crate::store::EventRow;

/// An event as the recorder sees it: what kube's watcher needs, and the row (None when it is
/// not about a pod or node, or lacks what a row needs).
#[derive(Clone, Debug)]
pub struct KubeEvent {
    pub meta: ObjectMeta,
    pub row: Option<EventRow>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawMeta<'a> {
    #[serde(borrow)]
    name: Option<WireStr<'a>>,
    #[serde(borrow)]
    namespace: Option<WireStr<'a>>,
    #[serde(borrow)]
    uid: Option<WireStr<'a>>,
    #[serde(borrow)]
    resource_version: Option<WireStr<'a>>,
    #[serde(borrow)]
    creation_timestamp: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawRef<'a> {
    #[serde(borrow)]
    kind: Option<WireStr<'a>>,
    #[serde(borrow)]
    namespace: Option<WireStr<'a>>,
    #[serde(borrow)]
    name: Option<WireStr<'a>>,
    #[serde(borrow)]
    uid: Option<WireStr<'a>>,
    #[serde(borrow)]
    field_path: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawSeries<'a> {
    count: Option<i64>,
    #[serde(borrow)]
    last_observed_time: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSource<'a> {
    #[serde(borrow)]
    component: Option<WireStr<'a>>,
}

/// Both groups' fields; a group fills in its own spelling and leaves the other's empty.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawEvent<'a> {
    #[serde(borrow)]
    metadata: RawMeta<'a>,
    #[serde(borrow)]
    reason: Option<WireStr<'a>>,
    #[serde(rename = "type", borrow)]
    event_type: Option<WireStr<'a>>,
    #[serde(borrow)]
    event_time: Option<WireStr<'a>>,
    #[serde(borrow)]
    series: Option<RawSeries<'a>>,
    // events.k8s.io/v1
    #[serde(borrow)]
    regarding: Option<RawRef<'a>>,
    #[serde(borrow)]
    note: Option<WireStr<'a>>,
    #[serde(borrow)]
    reporting_controller: Option<WireStr<'a>>,
    #[serde(borrow)]
    deprecated_source: Option<RawSource<'a>>,
    deprecated_count: Option<i64>,
    #[serde(borrow)]
    deprecated_first_timestamp: Option<WireStr<'a>>,
    #[serde(borrow)]
    deprecated_last_timestamp: Option<WireStr<'a>>,
    // core/v1
    #[serde(borrow)]
    involved_object: Option<RawRef<'a>>,
    #[serde(borrow)]
    message: Option<WireStr<'a>>,
    #[serde(borrow)]
    reporting_component: Option<WireStr<'a>>,
    #[serde(borrow)]
    source: Option<RawSource<'a>>,
    count: Option<i64>,
    #[serde(borrow)]
    first_timestamp: Option<WireStr<'a>>,
    #[serde(borrow)]
    last_timestamp: Option<WireStr<'a>>,
}

/// The container a `fieldPath` names: `spec.containers{app}` -> `app` (also init and ephemeral
/// containers); None for any other path.
pub fn container_of(field_path: &str) -> Option<String> {
    let open = field_path.find('{')?;
    let close = field_path[open..].find('}')? + open;
    let list = &field_path[..open];
    let known = [
        "spec.containers",
        "spec.initContainers",
        "spec.ephemeralContainers",
    ];
    if !known.contains(&list) {
        return None;
    }
    let name = &field_path[open + 1..close];
    (!name.is_empty()).then(|| name.to_string())
}

/// A time field, None when absent, empty or unparsable (a null MicroTime is sent as null).
fn time(s: &Option<WireStr>) -> Option<i64> {
    s.as_deref()
        .filter(|s| !s.is_empty())
        .and_then(parse_rfc3339_ms)
}

impl RawEvent<'_> {
    fn into_event(self) -> KubeEvent {
        let row = self.row();
        let m = self.metadata;
        let meta = ObjectMeta {
            name: owned(&m.name),
            namespace: owned(&m.namespace),
            uid: owned(&m.uid),
            resource_version: owned(&m.resource_version),
            ..ObjectMeta::default()
        };
        KubeEvent { meta, row }
    }

    fn row(&self) -> Option<EventRow> {
        let regarding = self.regarding.as_ref().or(self.involved_object.as_ref())?;
        let kind = RegardingKind::parse(regarding.kind.as_deref()?)?;
        let uid = non_empty(&self.metadata.uid)?;
        let name = non_empty(&regarding.name)?;
        let series_count = self.series.as_ref().and_then(|s| s.count);
        let count = series_count
            .or(self.deprecated_count)
            .or(self.count)
            .unwrap_or(1)
            .max(1);
        let event_time = time(&self.event_time);
        let first_seen = event_time
            .or_else(|| time(&self.deprecated_first_timestamp))
            .or_else(|| time(&self.first_timestamp))
            .or_else(|| time(&self.metadata.creation_timestamp))?;
        let last_seen = [
            self.series
                .as_ref()
                .and_then(|s| time(&s.last_observed_time)),
            time(&self.deprecated_last_timestamp),
            time(&self.last_timestamp),
            event_time,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(first_seen)
        .max(first_seen);
        let note = self.note.as_deref().or(self.message.as_deref());
        let controller = non_empty(&self.reporting_controller)
            .or_else(|| non_empty(&self.reporting_component))
            .or_else(|| non_empty(&self.deprecated_source.as_ref()?.component))
            .or_else(|| non_empty(&self.source.as_ref()?.component));
        Some(EventRow {
            uid,
            regarding_kind: kind,
            regarding_uid: non_empty(&regarding.uid),
            namespace: non_empty(&regarding.namespace),
            name,
            container: regarding.field_path.as_deref().and_then(container_of),
            reason: non_empty(&self.reason),
            event_type: self
                .event_type
                .as_deref()
                .and_then(|t| EventType::parse(t).ok()),
            note: note.filter(|n| !n.is_empty()).map(truncate_note),
            reporting_controller: controller,
            count,
            first_seen_ms: first_seen,
            last_seen_ms: last_seen,
        })
    }
}

/// An `events.k8s.io/v1` Event.
#[derive(Clone, Debug)]
pub struct EventV1(pub KubeEvent);

/// A core `v1` Event, for an API server without the events.k8s.io group.
#[derive(Clone, Debug)]
pub struct CoreEvent(pub KubeEvent);

impl<'de> Deserialize<'de> for EventV1 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawEvent::deserialize(d).map(|r| EventV1(r.into_event()))
    }
}

impl<'de> Deserialize<'de> for CoreEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawEvent::deserialize(d).map(|r| CoreEvent(r.into_event()))
    }
}

/// Both wrappers hand the loop the same [`KubeEvent`].
pub trait AnyEvent: Send + 'static {
    fn into_inner(self) -> KubeEvent;
}

impl AnyEvent for EventV1 {
    fn into_inner(self) -> KubeEvent {
        self.0
    }
}

impl AnyEvent for CoreEvent {
    fn into_inner(self) -> KubeEvent {
        self.0
    }
}

macro_rules! event_resource {
    ($type:ty, $group:literal) => {
        impl kube::Resource for $type {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                "Event".into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                "events".into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.0.meta
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.0.meta
            }
        }
    };
}

event_resource!(EventV1, "events.k8s.io");
event_resource!(CoreEvent, "");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::{NOTE_MAX_BYTES, TRUNCATED_MARK};

    fn v1(json: serde_json::Value) -> Option<EventRow> {
        serde_json::from_value::<EventV1>(json).unwrap().0.row
    }

    fn core(json: serde_json::Value) -> Option<EventRow> {
        serde_json::from_value::<CoreEvent>(json).unwrap().0.row
    }

    const T0: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    #[test]
    fn an_events_v1_series_counts_and_is_last_seen_at_its_last_observation() {
        let row = v1(serde_json::json!({
            "metadata": {"name": "web-1.abc", "namespace": "shop", "uid": "e-1",
                "resourceVersion": "7", "creationTimestamp": "2026-12-01T00:00:05Z"},
            "eventTime": "2026-12-01T00:00:00.250000Z",
            "series": {"count": 7, "lastObservedTime": "2026-12-01T00:10:00.500000Z"},
            "reason": "BackOff", "type": "Warning", "reportingController": "kubelet",
            "regarding": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "p-1",
                "fieldPath": "spec.containers{app}"},
            "note": "Back-off restarting failed container app",
            "deprecatedCount": 3,
            "deprecatedLastTimestamp": "2026-12-01T00:05:00Z"
        }))
        .unwrap();
        assert_eq!(row.uid, "e-1");
        assert_eq!(row.regarding_kind, RegardingKind::Pod);
        assert_eq!(row.regarding_uid.as_deref(), Some("p-1"));
        assert_eq!(row.container.as_deref(), Some("app"));
        assert_eq!(row.count, 7, "the series' count wins over deprecatedCount");
        assert_eq!(row.first_seen_ms, T0 + 250);
        assert_eq!(row.last_seen_ms, T0 + 600_500);
        assert_eq!(row.event_type, Some(EventType::Warning));
        assert_eq!(row.reporting_controller.as_deref(), Some("kubelet"));
    }

    #[test]
    fn deprecated_fields_stand_in_for_an_event_made_through_the_core_api() {
        // What kubelet's old recorder writes, read through events.k8s.io/v1.
        let row = v1(serde_json::json!({
            "metadata": {"name": "n", "namespace": "shop", "uid": "e-2",
                "creationTimestamp": "2026-12-01T00:00:09Z"},
            "eventTime": null,
            "reason": "Pulled", "type": "Normal",
            "regarding": {"kind": "Pod", "namespace": "shop", "name": "web-1",
                "fieldPath": "spec.initContainers{init}"},
            "deprecatedSource": {"component": "kubelet"},
            "deprecatedCount": 4,
            "deprecatedFirstTimestamp": "2026-12-01T00:00:01Z",
            "deprecatedLastTimestamp": "2026-12-01T00:01:00Z"
        }))
        .unwrap();
        assert_eq!(row.count, 4);
        assert_eq!(row.first_seen_ms, T0 + 1_000);
        assert_eq!(row.last_seen_ms, T0 + 60_000);
        assert_eq!(row.container.as_deref(), Some("init"));
        assert_eq!(row.reporting_controller.as_deref(), Some("kubelet"));
        assert_eq!(row.note, None);
    }

    #[test]
    fn a_core_v1_event_reads_the_same_and_creation_is_the_last_resort() {
        let row = core(serde_json::json!({
            "metadata": {"name": "n", "uid": "e-3", "creationTimestamp": "2026-12-01T00:00:02Z"},
            "involvedObject": {"kind": "Node", "name": "node-a", "uid": "n-1"},
            "reason": "NodeNotReady", "type": "Normal", "message": "Node node-a status is now: NodeNotReady",
            "source": {"component": "node-controller"}
        }))
        .unwrap();
        assert_eq!(row.regarding_kind, RegardingKind::Node);
        assert_eq!(row.namespace, None);
        assert_eq!(row.count, 1);
        assert_eq!(
            (row.first_seen_ms, row.last_seen_ms),
            (T0 + 2_000, T0 + 2_000)
        );
        assert_eq!(row.reporting_controller.as_deref(), Some("node-controller"));
        assert!(row.note.unwrap().contains("NodeNotReady"));
    }

    #[test]
    fn events_about_other_kinds_make_no_row_and_long_notes_are_cut() {
        let other = v1(serde_json::json!({
            "metadata": {"uid": "e-4", "creationTimestamp": "2026-12-01T00:00:02Z"},
            "regarding": {"kind": "ReplicaSet", "name": "web-abc"},
            "reason": "SuccessfulCreate"
        }));
        assert!(other.is_none());
        let long = v1(serde_json::json!({
            "metadata": {"uid": "e-5", "creationTimestamp": "2026-12-01T00:00:02Z"},
            "regarding": {"kind": "Pod", "name": "web-1"},
            "reason": "FailedScheduling", "note": "x".repeat(10_000)
        }))
        .unwrap();
        let note = long.note.unwrap();
        assert!(note.len() <= NOTE_MAX_BYTES && note.ends_with(TRUNCATED_MARK));
    }

    #[test]
    fn a_field_path_names_a_container_only_in_a_container_list() {
        assert_eq!(container_of("spec.containers{app}").as_deref(), Some("app"));
        assert_eq!(
            container_of("spec.ephemeralContainers{debug}").as_deref(),
            Some("debug")
        );
        assert_eq!(container_of("spec.containers{}"), None);
        assert_eq!(container_of("spec.volumes{data}"), None);
        assert_eq!(container_of("spec.containers"), None);
        assert_eq!(container_of(""), None);
    }
}
