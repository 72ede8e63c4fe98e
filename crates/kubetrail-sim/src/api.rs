//! The HTTP surface: routes Kubernetes API paths (discovery, list, watch, get, delete for pods,
//! nodes and namespaces) and the simulator's control endpoints (`/_sim/...`).
//!
//! Routing is done by hand on the path segments rather than with axum's router, so every
//! unknown path, bad parameter and wrong method gets the real apiserver's `Status` body instead
//! of a framework default. Query strings are parsed leniently about empty pairs (kube-rs sends
//! `?&watch=true`) and strictly about values (a bad `limit` is a 400 that names it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::discovery;
use super::faults::{FaultRequest, Faults, MetricsApi};
use super::runner::{Control, Engine};
use super::scenario::Command;
use super::selector::{FieldSelector, Filter, LabelSelector};
use super::status::ApiError;
use super::store::{ObjectKey, ResourceKind, Store, StoredObject};
use super::table;
use super::watch::{self, WatchRequest};

/// What every handler needs.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub faults: Arc<Faults>,
    pub engine: Arc<Engine>,
    pub addr: SocketAddr,
    pub bookmark_interval: Duration,
}

/// The single entry point (axum fallback handler).
pub async fn dispatch(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.first() == Some(&"_sim") {
        return control(&state, &method, &segments[1..], &body)
            .await
            .unwrap_or_else(|e| e.into_response());
    }
    if state.faults.reject_in_outage() {
        let mut response = ApiError::unavailable().into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let query = match Query::parse(uri.query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let table = table::wants_table(accept);
    route(&state, &method, &segments, &query, table, &body)
        .await
        .unwrap_or_else(|e| e.into_response())
}

async fn route(
    state: &ApiState,
    method: &Method,
    segments: &[&str],
    query: &Query,
    table: bool,
    body: &Bytes,
) -> Result<Response, ApiError> {
    use ResourceKind::*;
    let get_only = |value: serde_json::Value| {
        if method == Method::GET {
            Ok(json_response(
                StatusCode::OK,
                serde_json::to_vec(&value).unwrap_or_default(),
            ))
        } else {
            Err(ApiError::method_not_allowed(method.as_str(), "discovery"))
        }
    };
    match segments {
        ["version"] => get_only(discovery::version()),
        ["api"] => get_only(discovery::api_versions(&state.addr.to_string())),
        ["api", "v1"] => get_only(discovery::core_v1_resources()),
        ["apis"] => get_only(discovery::api_groups(
            state.faults.metrics_api() != MetricsApi::Missing,
        )),
        ["apis", "metrics.k8s.io", rest @ ..] => metrics(state, method, rest, query),
        ["apis", "events.k8s.io"] => get_only(discovery::events_group()),
        ["apis", "events.k8s.io", "v1"] => get_only(discovery::events_v1_resources()),
        ["apis", "events.k8s.io", "v1", "events"] => {
            collection(state, method, EventsV1, None, query, table)
        }
        [
            "apis",
            "events.k8s.io",
            "v1",
            "namespaces",
            namespace,
            "events",
        ] => collection(
            state,
            method,
            EventsV1,
            Some(namespace.to_string()),
            query,
            table,
        ),
        ["apis", group @ ("apps" | "batch")] => get_only(discovery::group(group)),
        ["apis", group @ ("apps" | "batch"), "v1"] => get_only(discovery::group_resources(group)),
        ["apis", group @ ("apps" | "batch"), "v1", plural] => collection(
            state,
            method,
            owner_resource(group, plural)?,
            None,
            query,
            table,
        ),
        [
            "apis",
            group @ ("apps" | "batch"),
            "v1",
            "namespaces",
            namespace,
            plural,
        ] => collection(
            state,
            method,
            owner_resource(group, plural)?,
            Some(namespace.to_string()),
            query,
            table,
        ),
        [
            "apis",
            group @ ("apps" | "batch"),
            "v1",
            "namespaces",
            namespace,
            plural,
            name,
        ] if method == Method::GET => {
            object(
                state,
                method,
                owner_resource(group, plural)?,
                namespace,
                name,
                query,
                table,
                body,
            )
            .await
        }
        ["api", "v1", "namespaces", namespace, "events"] => collection(
            state,
            method,
            Events,
            Some(namespace.to_string()),
            query,
            table,
        ),
        ["healthz" | "livez" | "readyz"] => Ok((StatusCode::OK, "ok").into_response()),
        // The deprecated /api/v1/watch/... form: same as ?watch=true.
        ["api", "v1", "watch", rest @ ..] => {
            let mut query = query.clone();
            query.map.insert("watch".into(), "true".into());
            Box::pin(route(
                state,
                method,
                &[&["api", "v1"][..], rest].concat(),
                &query,
                table,
                body,
            ))
            .await
        }
        ["api", "v1", plural] => {
            let resource = resource(plural)?;
            collection(state, method, resource, None, query, table)
        }
        ["api", "v1", "namespaces", namespace, "pods"] => collection(
            state,
            method,
            Pods,
            Some(namespace.to_string()),
            query,
            table,
        ),
        ["api", "v1", "namespaces", namespace, "pods", name] => {
            object(state, method, Pods, namespace, name, query, table, body).await
        }
        ["api", "v1", "namespaces", namespace, "pods", name, "status"] if method == Method::GET => {
            object(state, method, Pods, namespace, name, query, table, body).await
        }
        ["api", "v1", plural @ ("nodes" | "namespaces"), name] => {
            object(
                state,
                method,
                resource(plural)?,
                "",
                name,
                query,
                table,
                body,
            )
            .await
        }
        [
            "api",
            "v1",
            plural @ ("nodes" | "namespaces"),
            name,
            "status",
        ] if method == Method::GET => {
            object(
                state,
                method,
                resource(plural)?,
                "",
                name,
                query,
                table,
                body,
            )
            .await
        }
        _ => Err(ApiError::no_route()),
    }
}

fn resource(plural: &str) -> Result<ResourceKind, ApiError> {
    ResourceKind::ALL
        .into_iter()
        .find(|r| r.plural() == plural && r.api_version() == "v1")
        .ok_or_else(ApiError::no_route)
}

/// A resource of the apps or batch group.
fn owner_resource(group: &str, plural: &str) -> Result<ResourceKind, ApiError> {
    ResourceKind::ALL
        .into_iter()
        .find(|r| r.plural() == plural && r.api_version() == format!("{group}/v1"))
        .ok_or_else(ApiError::no_route)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Parsed query parameters (last value wins, empty pairs ignored).
#[derive(Clone, Debug, Default)]
struct Query {
    map: HashMap<String, String>,
}

impl Query {
    fn parse(raw: &str) -> Result<Query, ApiError> {
        let map = form_urlencoded::parse(raw.as_bytes())
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(Query { map })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") | Some("false") | Some("0") | Some("False") => Ok(false),
            Some("true") | Some("1") | Some("True") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for {key}: expected true or false"
            ))),
        }
    }

    fn non_negative(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .map(|v| Some(v as u64))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid value {raw:?} for {key}: expected a non-negative integer"
                    ))
                }),
        }
    }

    /// `resourceVersion`: None for unset, "" or "0" (meaning "any / current state").
    fn resource_version(&self) -> Result<Option<u64>, ApiError> {
        match self.get("resourceVersion") {
            None | Some("") | Some("0") => Ok(None),
            Some(raw) => raw.parse::<u64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid resourceVersion {raw:?}: resource versions are integers from a list or watch"))
            }),
        }
    }

    fn filter(
        &self,
        resource: ResourceKind,
        namespace: Option<String>,
    ) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid labelSelector: {e}")))?;
        let fields = FieldSelector::parse(self.get("fieldSelector").unwrap_or(""), resource)
            .map_err(|e| ApiError::bad_request(format!("invalid fieldSelector: {e}")))?;
        Ok(Filter {
            namespace,
            labels,
            fields,
        })
    }
}

/// A `continue` token: where the next page starts and which snapshot it reads.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        json.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(raw: &str) -> Option<ContinueToken> {
        if !raw.len().is_multiple_of(2) || !raw.is_ascii() {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..raw.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&raw[i..i + 2], 16).ok())
            .collect();
        serde_json::from_slice(&bytes?).ok()
    }
}

fn collection(
    state: &ApiState,
    method: &Method,
    resource: ResourceKind,
    namespace: Option<String>,
    query: &Query,
    table: bool,
) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(
            method.as_str(),
            resource.plural(),
        ));
    }
    let filter = query.filter(resource, namespace)?;
    let limit = query.non_negative("limit")?;
    let timeout = query.non_negative("timeoutSeconds")?;
    let rv = query.resource_version()?;
    if query.flag("watch")? {
        let send_initial = query.flag("sendInitialEvents")?;
        let request = WatchRequest {
            resource,
            filter,
            from: if send_initial { None } else { rv },
            initial_events_end: send_initial,
            bookmarks: query.flag("allowWatchBookmarks")?,
            timeout: timeout.filter(|t| *t > 0).map(Duration::from_secs),
            table,
            bookmark_interval: state.bookmark_interval,
        };
        return Ok(watch::serve(
            state.store.clone(),
            state.faults.clone(),
            request,
        ));
    }
    list(
        state,
        resource,
        &filter,
        limit.filter(|l| *l > 0).map(|l| l as usize),
        query.get("continue"),
        table,
    )
}

fn list(
    state: &ApiState,
    resource: ResourceKind,
    filter: &Filter,
    limit: Option<usize>,
    continue_raw: Option<&str>,
    table: bool,
) -> Result<Response, ApiError> {
    let (rv, objects, start) = match continue_raw.filter(|c| !c.is_empty()) {
        Some(raw) => {
            let token = ContinueToken::decode(raw).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid continue token {raw:?}: it must come from a previous list response"
                ))
            })?;
            let objects = state.store.saved_snapshot(resource, token.rv).ok_or_else(|| {
                ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            })?;
            (
                token.rv,
                objects,
                Some(ObjectKey {
                    namespace: token.ns,
                    name: token.name,
                }),
            )
        }
        None => {
            let (rv, objects) = state.store.snapshot(resource);
            (rv, objects, None)
        }
    };
    // Only walk the namespace that is asked for.
    let namespace = filter.namespace.as_deref().or(filter.fields.namespace());
    let lower = match (&start, namespace) {
        (Some(key), _) => Bound::Excluded(key.clone()),
        (None, Some(ns)) if resource.namespaced() => Bound::Included(ObjectKey::new(ns, "")),
        _ => Bound::Unbounded,
    };
    let mut items: Vec<&Arc<StoredObject>> = Vec::new();
    let mut next = None;
    for (key, object) in objects.range((lower, Bound::Unbounded)) {
        if resource.namespaced() && namespace.is_some_and(|ns| key.namespace != ns) {
            break;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            // There is more: the next page starts after the last item returned.
            if let Some(last) = items.last() {
                next = Some(
                    ContinueToken {
                        rv,
                        ns: last.key.namespace.clone(),
                        name: last.key.name.clone(),
                    }
                    .encode(),
                );
            }
            break;
        }
        if filter.matches(object) {
            items.push(object);
        }
    }
    if next.is_some() && start.is_none() {
        state.store.save_snapshot(resource, rv, objects.clone());
    }
    if table {
        let mut buf = Vec::new();
        let refs: Vec<&StoredObject> = items.iter().map(|o| o.as_ref()).collect();
        table::write_table(
            &mut buf,
            resource,
            &refs,
            true,
            state.store.virtual_now_ms(),
            rv,
            next.as_deref(),
        );
        return Ok(json_response(StatusCode::OK, buf));
    }
    let mut head = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"",
        resource.kind(),
        resource.api_version()
    );
    if let Some(token) = &next {
        head.push_str(&format!(",\"continue\":\"{token}\""));
    }
    head.push_str("},\"items\":[");
    let items: Vec<Bytes> = items.into_iter().map(|o| o.json.clone()).collect();
    Ok(streamed_list(head, items))
}

/// Streams `head`, the items joined by commas, and `]}` in chunks of about 256 KiB: the items
/// are already serialised, so this is a copy, and memory stays bounded for 100k-object lists.
fn streamed_list(head: String, items: Vec<Bytes>) -> Response {
    const CHUNK: usize = 256 * 1024;
    let mut head = Some(head);
    let mut index = 0;
    let mut done = false;
    let chunks = std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        if let Some(head) = head.take() {
            buf.extend_from_slice(head.as_bytes());
        }
        while index < items.len() && buf.len() < CHUNK {
            if index > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(&items[index]);
            index += 1;
        }
        if index == items.len() {
            buf.extend_from_slice(b"]}");
            done = true;
        }
        Some(Ok::<_, std::convert::Infallible>(Bytes::from(buf)))
    });
    let mut response = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `/apis/metrics.k8s.io/...`: discovery, NodeMetrics and PodMetrics (get and list), or the
/// aggregator's answers for a missing or unavailable APIService.
fn metrics(
    state: &ApiState,
    method: &Method,
    rest: &[&str],
    query: &Query,
) -> Result<Response, ApiError> {
    match state.faults.metrics_api() {
        MetricsApi::Served => {}
        MetricsApi::Missing => return Err(ApiError::no_route()),
        // kube-aggregator's own answer for an APIService whose backend is not available: a
        // plain-text 503, not a Status object.
        MetricsApi::Unavailable => {
            let mut response =
                (StatusCode::SERVICE_UNAVAILABLE, "service unavailable\n").into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(response);
        }
    }
    if *method != Method::GET {
        return Err(ApiError::method_not_allowed(method.as_str(), "metrics"));
    }
    let usage = &state.store.usage;
    let now = state.store.virtual_now_ms();
    let labels = || {
        LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid labelSelector: {e}")))
    };
    let ok = |value: serde_json::Value| {
        Ok(json_response(
            StatusCode::OK,
            serde_json::to_vec(&value).unwrap_or_default(),
        ))
    };
    let found = |value: Option<serde_json::Value>, plural: &str, name: &str| match value {
        Some(v) => ok(v),
        None => Err(ApiError::not_found(plural, name)),
    };
    match rest {
        [] => ok(discovery::metrics_group()),
        ["v1beta1"] => ok(discovery::metrics_v1beta1_resources()),
        ["v1beta1", "nodes"] => ok(usage.node_list(&labels()?, now)),
        ["v1beta1", "nodes", name] => found(usage.node(name, now), "nodes.metrics.k8s.io", name),
        ["v1beta1", "pods"] => ok(usage.pod_list(None, &labels()?, now)),
        ["v1beta1", "namespaces", ns, "pods"] => ok(usage.pod_list(Some(ns), &labels()?, now)),
        ["v1beta1", "namespaces", ns, "pods", name] => {
            found(usage.pod(ns, name, now), "pods.metrics.k8s.io", name)
        }
        _ => Err(ApiError::no_route()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn object(
    state: &ApiState,
    method: &Method,
    resource: ResourceKind,
    namespace: &str,
    name: &str,
    query: &Query,
    table: bool,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let key = ObjectKey::new(namespace, name);
    if *method == Method::GET {
        let object = state
            .store
            .get(resource, &key)
            .ok_or_else(|| ApiError::not_found(resource.plural(), name))?;
        if table {
            let mut buf = Vec::new();
            table::write_table(
                &mut buf,
                resource,
                &[object.as_ref()],
                true,
                state.store.virtual_now_ms(),
                object.rv,
                None,
            );
            return Ok(json_response(StatusCode::OK, buf));
        }
        return Ok(json_response(StatusCode::OK, object.json.to_vec()));
    }
    if *method != Method::DELETE || resource == ResourceKind::Namespaces {
        return Err(ApiError::method_not_allowed(
            method.as_str(),
            resource.plural(),
        ));
    }
    let grace_secs = delete_grace(query, body)?;
    if query.get("dryRun").is_some_and(|v| !v.is_empty()) {
        let object = state
            .store
            .get(resource, &key)
            .ok_or_else(|| ApiError::not_found(resource.plural(), name))?;
        return Ok(json_response(StatusCode::OK, object.json.to_vec()));
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let command = match resource {
        ResourceKind::Pods => Command::DeletePod {
            namespace: namespace.to_string(),
            name: name.to_string(),
            grace_secs,
            reply,
        },
        _ => Command::DeleteNode {
            name: name.to_string(),
            reply,
        },
    };
    if !state.engine.send(Control::Command(command)) {
        return Err(ApiError::unavailable());
    }
    let json = answer.await.map_err(|_| ApiError::unavailable())??;
    Ok(json_response(StatusCode::OK, json))
}

/// The grace period from `?gracePeriodSeconds=` or a DeleteOptions body (the body wins, as in
/// the real server).
fn delete_grace(query: &Query, body: &Bytes) -> Result<Option<i64>, ApiError> {
    let mut grace = query
        .get("gracePeriodSeconds")
        .filter(|v| !v.is_empty())
        .map(|raw| {
            raw.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid gracePeriodSeconds {raw:?}: expected an integer"
                ))
            })
        })
        .transpose()?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let options: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions body: {e}")))?;
        if let Some(g) = options.get("gracePeriodSeconds").filter(|g| !g.is_null()) {
            grace = Some(g.as_i64().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid gracePeriodSeconds {g} in DeleteOptions: expected an integer"
                ))
            })?);
        }
    }
    Ok(grace)
}

/// `POST /_sim/advance`: run this many seconds of virtual time at once.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceRequest {
    secs: f64,
}

impl AdvanceRequest {
    /// A day at most: each tick runs the whole engine, and a week would take minutes.
    const MAX_SECS: f64 = 86_400.0;

    fn ticks(&self) -> Result<u64, String> {
        if !(self.secs.is_finite() && self.secs > 0.0 && self.secs <= Self::MAX_SECS) {
            return Err(format!(
                "advance secs must be more than 0 and at most {} (a day); got {}",
                Self::MAX_SECS,
                self.secs
            ));
        }
        Ok((self.secs * 1000.0 / super::clock::TICK_MS as f64).round() as u64)
    }
}

/// `/_sim/...`: faults, pause/resume, advance, stats.
async fn control(
    state: &ApiState,
    method: &Method,
    segments: &[&str],
    body: &Bytes,
) -> Result<Response, ApiError> {
    let ok = |value: serde_json::Value| {
        json_response(
            StatusCode::OK,
            serde_json::to_vec(&value).unwrap_or_default(),
        )
    };
    match (method.as_str(), segments) {
        ("POST", ["faults"]) => {
            let request: FaultRequest = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("invalid fault request: {e}; expected JSON with any of cut_watches, cut_every_secs, compact, outage_secs, slow_watch_ms, metrics_api"))
            })?;
            state
                .faults
                .apply(&request, &state.store)
                .map_err(ApiError::bad_request)?;
            Ok(ok(
                json!({ "applied": request, "resource_version": state.store.current_rv() }),
            ))
        }
        ("POST", ["pause"]) => {
            state.engine.pause().await;
            Ok(ok(
                json!({ "paused": true, "resource_version": state.store.current_rv() }),
            ))
        }
        ("POST", ["resume"]) => {
            state.engine.resume().await;
            Ok(ok(json!({ "paused": false })))
        }
        ("POST", ["advance"]) => {
            let request: AdvanceRequest = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "invalid advance request: {e}; expected JSON such as {{\"secs\": 3600}}"
                ))
            })?;
            let ticks = request.ticks().map_err(ApiError::bad_request)?;
            state.engine.advance(ticks).await;
            Ok(ok(json!({
                "advanced_secs": request.secs,
                "resource_version": state.store.current_rv(),
            })))
        }
        ("GET", ["stats"]) => Ok(ok(serde_json::to_value(super::stats(
            &state.store,
            &state.engine,
            &state.faults,
        ))
        .unwrap_or_default())),
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "unknown simulator control endpoint; expected POST /_sim/faults, /_sim/pause, /_sim/resume, /_sim/advance or GET /_sim/stats",
        )),
    }
}
