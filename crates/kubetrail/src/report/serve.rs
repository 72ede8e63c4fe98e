//! `kubetrail serve`: the report's page, live, and the small JSON API it reads. Read-only by
//! construction: every route is a GET over the public report functions (which only read, with
//! the store's own parameterised statements), there is no file serving at all, and a request
//! that is not GET or HEAD is refused with 405 before any route is matched.
//!
//! | path | answers |
//! |---|---|
//! | `/` | the page (the same as a report file, reading `/api/report`) |
//! | `/api/report` | a [`Report`](super::Report): `since`, `until`, `namespace`, `owner`, `node`, `step` |
//! | `/api/history` | `query history -o json`: `pod` and `namespace`, or `uid`; `since`, `until` |
//! | `/api/search` | pods, workloads and nodes whose name contains `q` |
//! | `/api/coverage` | the recorded time: intervals and gaps |
//!
//! A path with a `..` or `.` segment, also percent-encoded (`%2e%2e`), or a backslash, is
//! refused with 400: nothing here reads files, and nothing should look as if it might.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::html::{self, Data};
use super::{OwnerRef, ReportRequest};
use crate::model::TransitionKind;
use crate::model::time::{Window, now_ms, parse_duration_ms};
use crate::query::{self, PodFilter, PodRef, QueryError, TransitionFilter};
use crate::store::{Coverage, HistoryReader};

/// What the server reads from.
pub struct Served {
    pub reader: Box<dyn HistoryReader>,
    /// The store, for the page's heading (a path, or a server URL without password).
    pub source: String,
}

/// Serves `router(served)` on `listener` until `shutdown` completes (then lets requests in
/// flight finish).
pub async fn run(
    listener: tokio::net::TcpListener,
    served: Arc<Served>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(served))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Search answers are cut here: the page shows a short list, not a dump.
const SEARCH_LIMIT: usize = 50;

/// The whole application: routes, the method and path guards, and a JSON 404.
pub fn router(served: Arc<Served>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/report", get(report))
        .route("/api/history", get(history))
        .route("/api/search", get(search))
        .route("/api/coverage", get(coverage))
        .fallback(not_found)
        .layer(middleware::from_fn(guard))
        .with_state(served)
}

type Params = Query<HashMap<String, String>>;

/// An API error: a status and `{"error": message}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1 }).to_string();
        (self.0, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        let status = match &err {
            QueryError::NotFound(_) => StatusCode::NOT_FOUND,
            e if e.is_usage() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, err.to_string())
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// Refuses writes (405) and paths that try to climb (400) before any route runs.
async fn guard(request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not allowed: kubetrail serve is read-only (GET and HEAD only)",
                request.method()
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if climbs(request.uri().path()) {
        return bad_request("a path with '.' or '..' segments is refused").into_response();
    }
    next.run(request).await
}

/// Whether a path has a `.`/`..` segment or a backslash, before or after percent-decoding.
fn climbs(path: &str) -> bool {
    let decoded = percent_decode(path);
    [path, decoded.as_str()].iter().any(|p| {
        p.contains('\\')
            || p.split('/')
                .any(|segment| segment == ".." || segment == ".")
    })
}

/// Percent-decoding, leniently (a bad escape stays as it is); for the path check only.
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn not_found(request: Request) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!(
            "no such path {}; the API is /api/report, /api/history, /api/search and /api/coverage \
             (docs/report.md)",
            request.uri().path()
        ),
    )
}

async fn page(State(served): State<Arc<Served>>) -> Result<Html<String>, ApiError> {
    html::render(Data::Live {
        source: &served.source,
    })
    .map(Html)
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Runs a blocking read (the store's calls block) off the async workers, as JSON.
async fn blocking<T: Serialize + Send + 'static>(
    served: Arc<Served>,
    work: impl FnOnce(&Served) -> Result<T, ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let value = tokio::task::spawn_blocking(move || work(&served))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let body = serde_json::to_vec(&value)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn window(params: &HashMap<String, String>, now_ms: i64) -> Result<Window, ApiError> {
    Window::parse(param(params, "since"), param(params, "until"), now_ms)
        .map_err(|e| bad_request(e.to_string()))
}

/// The filters of `/api/report` (the flags of `kubetrail report`).
pub fn report_request(
    params: &HashMap<String, String>,
    now_ms: i64,
) -> Result<ReportRequest, String> {
    let window = Window::parse(
        Some(param(params, "since").unwrap_or("7d")),
        param(params, "until"),
        now_ms,
    )
    .map_err(|e| e.to_string())?;
    let owner = param(params, "owner").map(OwnerRef::parse).transpose()?;
    let step_ms = param(params, "step")
        .map(parse_duration_ms)
        .transpose()
        .map_err(|e| format!("step: {e}"))?;
    Ok(ReportRequest {
        window,
        namespace: param(params, "namespace").map(str::to_string),
        owner,
        node: param(params, "node").map(str::to_string),
        step_ms,
        ..Default::default()
    })
}

async fn report(
    State(served): State<Arc<Served>>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let request = report_request(&params, now).map_err(bad_request)?;
    blocking(served, move |s| {
        Ok(super::build(&*s.reader, &request, now, &s.source)?)
    })
    .await
}

async fn history(
    State(served): State<Arc<Served>>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let window = window(&params, now)?;
    let pod = match (param(&params, "uid"), param(&params, "pod")) {
        (Some(uid), _) => PodRef::Uid(uid.to_string()),
        (None, Some(name)) => PodRef::Name {
            namespace: param(&params, "namespace").map(str::to_string),
            name: name.to_string(),
        },
        (None, None) => return Err(bad_request("give pod (and namespace) or uid")),
    };
    blocking(served, move |s| {
        Ok(query::history(&*s.reader, &pod, window)?)
    })
    .await
}

#[derive(Serialize)]
struct PodHit {
    namespace: String,
    name: String,
    uid: String,
    node: Option<String>,
    phase: &'static str,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct WorkloadHit {
    namespace: String,
    kind: String,
    name: String,
}

#[derive(Serialize)]
struct SearchAnswer {
    pods: Vec<PodHit>,
    workloads: Vec<WorkloadHit>,
    nodes: Vec<String>,
}

async fn search(
    State(served): State<Arc<Served>>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let window = window(&params, now)?;
    let Some(q) = param(&params, "q").map(str::to_lowercase) else {
        return Err(bad_request("give q, the text to search for"));
    };
    blocking(served, move |s| {
        let mut pods = Vec::new();
        let mut workloads = BTreeSet::new();
        let mut nodes = BTreeSet::new();
        let filter = PodFilter {
            window,
            ..Default::default()
        };
        query::for_each_pod(&*s.reader, &filter, now, |p| {
            if p.name.to_lowercase().contains(&q) && pods.len() < SEARCH_LIMIT {
                pods.push(PodHit {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    uid: p.uid.clone(),
                    node: p.node.clone(),
                    phase: p.phase,
                });
            }
            if let (Some(kind), Some(name)) = (&p.owner_kind, &p.owner_name)
                && name.to_lowercase().contains(&q)
            {
                workloads.insert(WorkloadHit {
                    namespace: p.namespace.clone(),
                    kind: kind.clone(),
                    name: name.clone(),
                });
            }
            if let Some(node) = p.node.filter(|n| n.to_lowercase().contains(&q)) {
                nodes.insert(node);
            }
            Ok(())
        })?;
        let node_rows = TransitionFilter {
            kinds: vec![TransitionKind::NodeAdded, TransitionKind::NodeDeleted],
            window,
            ..Default::default()
        };
        query::for_each_transition(&*s.reader, &node_rows, |t| {
            if let Some(node) = t.node.filter(|n| n.to_lowercase().contains(&q)) {
                nodes.insert(node);
            }
            Ok(())
        })?;
        Ok(SearchAnswer {
            pods,
            workloads: workloads.into_iter().take(SEARCH_LIMIT).collect(),
            nodes: nodes.into_iter().take(SEARCH_LIMIT).collect(),
        })
    })
    .await
}

#[derive(Serialize)]
struct CoverageAnswer {
    /// False for a database without recording sessions.
    known: bool,
    sessions: usize,
    intervals: Vec<[i64; 2]>,
    gaps: Vec<[i64; 2]>,
    /// Where recorded time ends (the last heartbeat or clean stop).
    end_ms: Option<i64>,
}

async fn coverage(State(served): State<Arc<Served>>) -> Result<Response, ApiError> {
    blocking(served, move |s| {
        let coverage = Coverage::from_sessions(
            s.reader
                .snapshot()
                .map_err(QueryError::from)?
                .sessions()
                .map_err(QueryError::from)?,
        );
        let start = coverage.sessions.iter().map(|s| s.started_at_ms).min();
        let (intervals, gaps) = match (start, coverage.end_ms()) {
            (Some(from), Some(to)) if from < to => {
                let gaps = coverage.gaps(from, to);
                let mut intervals = Vec::new();
                let mut t = from;
                for &(a, b) in &gaps {
                    if a > t {
                        intervals.push([t, a]);
                    }
                    t = b;
                }
                if t < to {
                    intervals.push([t, to]);
                }
                (intervals, gaps.into_iter().map(|(a, b)| [a, b]).collect())
            }
            _ => (Vec::new(), Vec::new()),
        };
        Ok(CoverageAnswer {
            known: coverage.is_known(),
            sessions: coverage.sessions.len(),
            intervals,
            gaps,
            end_ms: coverage.end_ms(),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_climb_are_recognised_encoded_or_not() {
        for p in [
            "/../etc/passwd",
            "/api/../x",
            "/%2e%2e/etc",
            "/api/%2E%2e/x",
            "/a/./b",
            "/a\\b",
            "/%5c",
        ] {
            assert!(climbs(p), "{p}");
        }
        for p in ["/", "/api/report", "/api/history", "/a..b", "/.well-known"] {
            assert!(!climbs(p), "{p}");
        }
    }

    #[test]
    fn report_parameters_are_checked() {
        let params = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let now = 10 * 86_400_000;
        let r = report_request(&params(&[]), now).unwrap();
        assert_eq!(r.window.since_ms, Some(3 * 86_400_000));
        let r = report_request(&params(&[("owner", "Job/x"), ("step", "1h")]), now).unwrap();
        assert_eq!(r.owner.unwrap().to_string(), "Job/x");
        assert_eq!(r.step_ms, Some(3_600_000));
        assert!(
            report_request(&params(&[("since", "soon")]), now)
                .unwrap_err()
                .contains("invalid time --since")
        );
        assert!(
            report_request(&params(&[("owner", "x")]), now)
                .unwrap_err()
                .contains("KIND/NAME")
        );
        assert!(
            report_request(&params(&[("step", "5")]), now)
                .unwrap_err()
                .contains("step")
        );
    }
}
