//! Server-side printing: `meta.k8s.io/v1` Table responses, which kubectl asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) and prints as its familiar columns
//! (NAME, READY, STATUS, RESTARTS, AGE, ...). The cells follow kubectl's own printers closely
//! enough that `kubectl get pods -A` reads like a real cluster. Ages are computed against the
//! scenario's virtual clock.

use serde_json::{Value, json};

use super::clock::parse_rfc3339_ms;
use super::store::{ResourceKind, StoredObject};

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn columns(resource: ResourceKind) -> Value {
    let col = |name: &str, type_: &str, priority: u8, description: &str| json!({"name": name, "type": type_, "format": if name == "Name" { "name" } else { "" }, "description": description, "priority": priority});
    match resource {
        ResourceKind::Pods => json!([
            col(
                "Name",
                "string",
                0,
                "Name must be unique within a namespace."
            ),
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic."
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod."
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."
            ),
            col(
                "Age",
                "string",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created."
            ),
            col("IP", "string", 1, "IP address allocated to the pod."),
            col(
                "Node",
                "string",
                1,
                "Name of the Node this pod is assigned to."
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set when this pod preempts other pods on the node."
            ),
            col(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness."
            ),
        ]),
        ResourceKind::Nodes => json!([
            col(
                "Name",
                "string",
                0,
                "Name must be unique within a namespace."
            ),
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            col(
                "Age",
                "string",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created."
            ),
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node."
            ),
            col(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node."
            ),
            col(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node."
            ),
            col(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."
            ),
            col(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."
            ),
            col(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."
            ),
        ]),
        ResourceKind::Namespaces => json!([
            col(
                "Name",
                "string",
                0,
                "Name must be unique within a namespace."
            ),
            col("Status", "string", 0, "The status of the namespace"),
            col(
                "Age",
                "string",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created."
            ),
        ]),
        ResourceKind::ReplicaSets => json!([
            col(
                "Name",
                "string",
                0,
                "Name must be unique within a namespace."
            ),
            col("Desired", "integer", 0, "Number of desired pods."),
            col("Current", "integer", 0, "Number of actual replicas."),
            col("Ready", "integer", 0, "Number of ready replicas."),
            col("Age", "string", 0, "Time since creation."),
        ]),
        ResourceKind::Deployments => json!([
            col(
                "Name",
                "string",
                0,
                "Name must be unique within a namespace."
            ),
            col("Ready", "string", 0, "Number of ready pods of the desired."),
            col("Up-to-date", "string", 0, "Total number of updated pods."),
            col("Available", "string", 0, "Total number of available pods."),
            col("Age", "string", 0, "Time since creation."),
        ]),
        ResourceKind::Jobs => json!([
            col(
                "Name",
                "string",
                0,
                "Name must be unique within a namespace."
            ),
            col("Status", "string", 0, "The job's condition."),
            col(
                "Completions",
                "string",
                0,
                "Succeeded of the desired completions."
            ),
            col("Age", "string", 0, "Time since creation."),
        ]),
        ResourceKind::Events | ResourceKind::EventsV1 => json!([
            col(
                "Last Seen",
                "string",
                0,
                "The time the event was last seen."
            ),
            col("Type", "string", 0, "Normal or Warning."),
            col("Reason", "string", 0, "Why the event was written."),
            col("Object", "string", 0, "The object the event is about."),
            col("Message", "string", 0, "What happened."),
        ]),
    }
}

/// kubectl's `duration.HumanDuration`.
pub fn human_duration(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(object: &Value, now_ms: i64) -> String {
    object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| parse_rfc3339_ms(t).ok())
        .map_or_else(
            || "<unknown>".to_string(),
            |created| human_duration(now_ms - created),
        )
}

/// The STATUS column, following kubectl's pod printer.
fn pod_status(pod: &Value) -> String {
    let status = &pod["status"];
    let mut reason = status["reason"]
        .as_str()
        .or(status["phase"].as_str())
        .unwrap_or("Unknown")
        .to_string();
    let empty = Vec::new();
    let inits = status["initContainerStatuses"].as_array().unwrap_or(&empty);
    let init_specs = pod["spec"]["initContainers"].as_array().unwrap_or(&empty);
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        let sidecar = init_specs
            .get(i)
            .is_some_and(|s| s["restartPolicy"] == "Always");
        let state = &c["state"];
        if state["terminated"]["exitCode"] == 0 && state["terminated"].is_object() {
            continue;
        }
        if sidecar && state["running"].is_object() {
            continue;
        }
        if let Some(r) = state["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{}/{}", i, init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing {
        let statuses = status["containerStatuses"].as_array().unwrap_or(&empty);
        let mut has_running = false;
        for c in statuses.iter().rev() {
            let state = &c["state"];
            if let Some(r) = state["waiting"]["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
            {
                reason = r.to_string();
            } else if let Some(r) = state["terminated"]["reason"].as_str() {
                reason = r.to_string();
            } else if state["running"].is_object() && c["ready"] == true {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = if status["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            }) {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod["metadata"]["deletionTimestamp"].is_string() {
        reason = "Terminating".into();
    }
    reason
}

fn pod_cells(pod: &Value, now_ms: i64) -> Value {
    let empty = Vec::new();
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .unwrap_or(&empty);
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: u64 = statuses
        .iter()
        .filter_map(|c| c["restartCount"].as_u64())
        .sum();
    let last_restart = statuses
        .iter()
        .filter_map(|c| c["lastState"]["terminated"]["finishedAt"].as_str())
        .filter_map(|t| parse_rfc3339_ms(t).ok())
        .max();
    let restarts = match last_restart {
        Some(at) if restarts > 0 => format!("{restarts} ({} ago)", human_duration(now_ms - at)),
        _ => restarts.to_string(),
    };
    json!([
        pod["metadata"]["name"],
        format!("{ready}/{total}"),
        pod_status(pod),
        restarts,
        age(pod, now_ms),
        pod["status"]["podIP"].as_str().unwrap_or("<none>"),
        pod["spec"]["nodeName"].as_str().unwrap_or("<none>"),
        "<none>",
        "<none>",
    ])
}

fn node_cells(node: &Value, now_ms: i64) -> Value {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown");
    let mut status = match ready {
        "True" => "Ready".to_string(),
        "False" => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if node["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    let info = &node["status"]["nodeInfo"];
    let internal_ip = node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .and_then(|x| x["address"].as_str())
        .unwrap_or("<none>");
    json!([
        node["metadata"]["name"],
        status,
        "<none>",
        age(node, now_ms),
        info["kubeletVersion"],
        internal_ip,
        "<none>",
        info["osImage"],
        info["kernelVersion"],
        info["containerRuntimeVersion"],
    ])
}

/// kubectl's event columns: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE (from either group).
fn event_cells(v: &Value, now_ms: i64) -> Value {
    let last = [
        &v["series"]["lastObservedTime"],
        &v["lastTimestamp"],
        &v["deprecatedLastTimestamp"],
        &v["eventTime"],
    ]
    .into_iter()
    .filter_map(|t| t.as_str())
    .filter_map(|t| parse_rfc3339_ms(t).ok())
    .max();
    let seen = last.map_or("<unknown>".to_string(), |at| human_duration(now_ms - at));
    let object = if v["regarding"].is_object() {
        &v["regarding"]
    } else {
        &v["involvedObject"]
    };
    let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
    let name = object["name"].as_str().unwrap_or_default();
    let message = v["message"]
        .as_str()
        .or(v["note"].as_str())
        .unwrap_or_default();
    json!([
        seen,
        v["type"],
        v["reason"],
        format!("{kind}/{name}"),
        message
    ])
}

/// Writes a Table of `objects` (each row carries the full object, as with
/// `includeObject=Object`).
pub fn write_table(
    buf: &mut Vec<u8>,
    resource: ResourceKind,
    objects: &[&StoredObject],
    with_columns: bool,
    now_ms: i64,
    rv: u64,
    continue_token: Option<&str>,
) {
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let value: Value = serde_json::from_slice(&object.json).unwrap_or(Value::Null);
            let cells = match resource {
                ResourceKind::Pods => pod_cells(&value, now_ms),
                ResourceKind::Nodes => node_cells(&value, now_ms),
                ResourceKind::Namespaces => json!([
                    value["metadata"]["name"],
                    value["status"]["phase"],
                    age(&value, now_ms)
                ]),
                ResourceKind::Events | ResourceKind::EventsV1 => event_cells(&value, now_ms),
                ResourceKind::ReplicaSets => json!([
                    value["metadata"]["name"],
                    value["spec"]["replicas"],
                    value["status"]["replicas"],
                    value["status"]["readyReplicas"],
                    age(&value, now_ms)
                ]),
                ResourceKind::Deployments => json!([
                    value["metadata"]["name"],
                    format!(
                        "{}/{}",
                        value["status"]["readyReplicas"], value["spec"]["replicas"]
                    ),
                    value["status"]["updatedReplicas"].to_string(),
                    value["status"]["availableReplicas"].to_string(),
                    age(&value, now_ms)
                ]),
                ResourceKind::Jobs => json!([
                    value["metadata"]["name"],
                    "Running",
                    format!(
                        "{}/{}",
                        value["status"]["succeeded"], value["spec"]["completions"]
                    ),
                    age(&value, now_ms)
                ]),
            };
            json!({ "cells": cells, "object": value })
        })
        .collect();
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "rows": rows,
    });
    if with_columns {
        table["columnDefinitions"] = columns(resource);
    }
    let _ = serde_json::to_writer(buf, &table);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_print_like_kubectl() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (130, "2m10s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (50 * 3600, "2d2h"),
            (400 * 86_400, "400d"),
        ] {
            assert_eq!(human_duration(secs * 1000), want);
        }
    }
}
