//! Discovery documents: `/version`, `/api`, `/api/v1` and `/apis`, as a v1.32 apiserver that
//! serves the core group's pods, nodes, namespaces and events, events.k8s.io and (like
//! metrics-server's APIService) metrics.k8s.io would answer. Clients (kubectl's
//! RESTMapper, kube-rs) read these to find resources, their verbs, kinds and short names.
//! Aggregated discovery (apidiscovery.k8s.io/v2) is not offered: answering plain JSON makes
//! kubectl fall back to these legacy documents.

use serde_json::{Value, json};

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T17:59:15Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }]
    })
}

/// `/apis`: the events group, the owners' apps and batch groups, and the metrics group unless
/// its APIService is missing.
pub fn api_groups(with_metrics: bool) -> Value {
    let mut groups = vec![events_group(), group("apps"), group("batch")];
    if with_metrics {
        groups.push(metrics_group());
    }
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// The apps or batch group, which serve the simulated pods' owners (read-only, minimal).
pub fn group(name: &str) -> Value {
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": name,
        "versions": [{ "groupVersion": format!("{name}/v1"), "version": "v1" }],
        "preferredVersion": { "groupVersion": format!("{name}/v1"), "version": "v1" }
    })
}

pub fn group_resources(name: &str) -> Value {
    let resource = |plural: &str, singular: &str, kind: &str, short: &[&str]| {
        json!({
            "name": plural, "singularName": singular, "namespaced": true, "kind": kind,
            "verbs": ["get", "list", "watch"], "shortNames": short, "categories": ["all"]
        })
    };
    let resources = if name == "apps" {
        vec![
            resource("deployments", "deployment", "Deployment", &["deploy"]),
            resource("replicasets", "replicaset", "ReplicaSet", &["rs"]),
        ]
    } else {
        vec![resource("jobs", "job", "Job", &[])]
    };
    json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{name}/v1"), "resources": resources
    })
}

/// The resource metrics group, as metrics-server registers it (an APIService).
pub fn metrics_group() -> Value {
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": "metrics.k8s.io",
        "versions": [{ "groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1" }],
        "preferredVersion": { "groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1" }
    })
}

pub fn metrics_v1beta1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "metrics.k8s.io/v1beta1",
        "resources": [
            { "name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"] },
            { "name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"] }
        ]
    })
}

/// The events.k8s.io group, which serves the same Events as core v1 in their newer shape.
pub fn events_group() -> Value {
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": "events.k8s.io",
        "versions": [{ "groupVersion": "events.k8s.io/v1", "version": "v1" }],
        "preferredVersion": { "groupVersion": "events.k8s.io/v1", "version": "v1" }
    })
}

pub fn events_v1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "events.k8s.io/v1",
        "resources": [{
            "name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
            "verbs": ["get", "list", "watch"], "shortNames": ["ev"],
            "storageVersionHash": "r2yiGXH7wu8="
        }]
    })
}

pub fn core_v1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "namespaces", "singularName": "namespace", "namespaced": false,
                "kind": "Namespace", "verbs": ["get", "list", "watch"], "shortNames": ["ns"],
                "storageVersionHash": "Q3oi5N2YM8M="
            },
            { "name": "namespaces/status", "singularName": "", "namespaced": false, "kind": "Namespace", "verbs": ["get"] },
            {
                "name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node",
                "verbs": ["delete", "get", "list", "watch"], "shortNames": ["no"],
                "storageVersionHash": "XwShjMxG9Fs="
            },
            { "name": "nodes/status", "singularName": "", "namespaced": false, "kind": "Node", "verbs": ["get"] },
            {
                "name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                "verbs": ["delete", "get", "list", "watch"], "shortNames": ["po"], "categories": ["all"],
                "storageVersionHash": "xPOwRZ+Yhw8="
            },
            { "name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"] },
            {
                "name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
                "verbs": ["get", "list", "watch"], "shortNames": ["ev"],
                "storageVersionHash": "r2yiGXH7wu8="
            }
        ]
    })
}
