//! Watch streams: chunked JSON lines of ADDED / MODIFIED / DELETED / BOOKMARK / ERROR events,
//! as the real apiserver sends them.
//!
//! - No resourceVersion (or "0"), or `sendInitialEvents=true`: the current objects first as
//!   synthetic ADDED events, then changes; with `sendInitialEvents` a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"` marks the end of the initial state.
//! - A resourceVersion: the retained changes after it, then live ones. One older than the
//!   retained history gets a 200 stream whose only event is ERROR 410 (Expired), which tells
//!   clients to relist.
//! - Selectors: like the real watch cache, an object that stops matching is sent as DELETED and
//!   one that starts matching as ADDED.
//! - `allowWatchBookmarks`: a BOOKMARK with the current rv every few seconds, so clients can
//!   resume from a recent rv even when nothing they watch changes.
//! - The `compact` fault ends every open stream at its first change or bookmark from after
//!   the compaction: nothing from after it reaches a stream that began before it, so each of
//!   their clients gets 410 when it resumes.
//! - A watcher that falls too far behind is closed (the broadcast lags), as the real server
//!   closes slow watchers; clients resume from their last rv.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::sync::{broadcast, mpsc};

use super::faults::Faults;
use super::selector::Filter;
use super::store::{Bookmark, Change, ChangeType, ResourceKind, Store, StoredObject, WatchStart};
use super::table;

/// A parsed watch request.
pub struct WatchRequest {
    pub resource: ResourceKind,
    pub filter: Filter,
    /// None: start with the current state; Some(rv): changes after rv.
    pub from: Option<u64>,
    /// Send the `k8s.io/initial-events-end` bookmark after the initial state.
    pub initial_events_end: bool,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    /// Send each object as a one-row meta.k8s.io Table (kubectl get -w).
    pub table: bool,
    pub bookmark_interval: Duration,
}

/// Flush to the client once this much is buffered (or when nothing more is ready).
const CHUNK: usize = 64 * 1024;

pub fn serve(store: Arc<Store>, faults: Arc<Faults>, request: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(stream_events(store, faults, request, tx));
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    }));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

struct Writer {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    resource: ResourceKind,
    table: bool,
    /// A Table's column definitions go in the first event only.
    columns_sent: bool,
    now_ms: i64,
}

impl Writer {
    fn event(&mut self, type_: &str, object: &StoredObject) {
        self.buf.extend_from_slice(b"{\"type\":\"");
        self.buf.extend_from_slice(type_.as_bytes());
        self.buf.extend_from_slice(b"\",\"object\":");
        if self.table {
            let with_columns = !std::mem::replace(&mut self.columns_sent, true);
            table::write_table(
                &mut self.buf,
                self.resource,
                std::slice::from_ref(&object),
                with_columns,
                self.now_ms,
                object.rv,
                None,
            );
        } else {
            self.buf.extend_from_slice(&object.json);
        }
        self.buf.extend_from_slice(b"}\n");
    }

    fn bookmark(&mut self, rv: u64, initial_events_end: bool) {
        let annotations = if initial_events_end {
            ",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}"
        } else {
            ""
        };
        let line = format!(
            "{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"{annotations}}}}}}}\n",
            self.resource.kind(),
            self.resource.api_version()
        );
        self.buf.extend_from_slice(line.as_bytes());
    }

    fn error_gone(&mut self, requested: u64, oldest: u64) {
        let line = format!(
            "{{\"type\":\"ERROR\",\"object\":{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"too old resource version: {requested} ({oldest})\",\"reason\":\"Expired\",\"code\":410}}}}\n"
        );
        self.buf.extend_from_slice(line.as_bytes());
    }

    /// Sends what is buffered; false if the client has gone.
    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.send(chunk).await.is_ok()
    }

    async fn flush_if_full(&mut self) -> bool {
        if self.buf.len() >= CHUNK {
            self.flush().await
        } else {
            true
        }
    }
}

/// What a change looks like through a selector (None: not visible).
fn visible(change: &Change, filter: &Filter) -> Option<&'static str> {
    let now = filter.matches(&change.object);
    let before = change.prev.as_ref().is_some_and(|p| filter.matches(p));
    match change.change_type {
        ChangeType::Added => now.then_some("ADDED"),
        ChangeType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
        ChangeType::Deleted => now.then_some("DELETED"),
    }
}

async fn stream_events(
    store: Arc<Store>,
    faults: Arc<Faults>,
    request: WatchRequest,
    tx: mpsc::Sender<Bytes>,
) {
    let mut cut = faults.cut_signal();
    cut.mark_unchanged();
    let mut w = Writer {
        tx,
        buf: Vec::with_capacity(CHUNK),
        resource: request.resource,
        table: request.table,
        columns_sent: false,
        now_ms: store.virtual_now_ms(),
    };
    let filter = &request.filter;
    let mut rx: broadcast::Receiver<Arc<Change>>;
    let mut last_rv;
    let compactions;
    match store.watch(request.resource, request.from) {
        WatchStart::TooOld { requested, oldest } => {
            w.error_gone(requested, oldest);
            w.flush().await;
            return;
        }
        WatchStart::Initial {
            rv,
            objects,
            rx: receiver,
            compactions: at_start,
        } => {
            rx = receiver;
            compactions = at_start;
            last_rv = rv;
            for object in objects.values() {
                if filter.matches(object) {
                    w.event("ADDED", object);
                    if !w.flush_if_full().await {
                        return;
                    }
                }
            }
            if request.initial_events_end {
                w.bookmark(rv, true);
            }
        }
        WatchStart::Resume {
            backlog,
            rx: receiver,
            compactions: at_start,
        } => {
            rx = receiver;
            compactions = at_start;
            last_rv = request.from.unwrap_or_default();
            for change in backlog {
                last_rv = change.rv;
                if let Some(type_) = visible(&change, filter) {
                    w.event(type_, &change.object);
                    if !w.flush_if_full().await {
                        return;
                    }
                }
            }
        }
    }
    if !w.flush().await {
        return;
    }
    let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
    let sleep_until_deadline = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_until_deadline);
    let mut bookmarks = tokio::time::interval(request.bookmark_interval);
    bookmarks.tick().await;
    loop {
        tokio::select! {
            _ = cut.changed() => break,
            _ = &mut sleep_until_deadline => break,
            _ = w.tx.closed() => break,
            _ = bookmarks.tick(), if request.bookmarks => {
                match store.bookmark_rv(&rx, compactions) {
                    Bookmark::Send(rv) if rv > last_rv => {
                        last_rv = rv;
                        w.bookmark(rv, false);
                        if !w.flush().await {
                            break;
                        }
                    }
                    Bookmark::Send(_) | Bookmark::NotYet => {}
                    Bookmark::Compacted => break,
                }
            }
            received = rx.recv() => {
                let mut next = Some(received);
                while let Some(received) = next.take() {
                    let change = match received {
                        Ok(change) => change,
                        // Too slow (or the store is gone): close, the client resumes.
                        Err(_) => return finish(w).await,
                    };
                    if change.rv <= last_rv {
                        continue;
                    }
                    // A change from after a compaction would give the client an rv newer than
                    // it, so it would resume without the 410 the compaction stands for.
                    if store
                        .first_compaction_after(compactions)
                        .is_some_and(|compacted| change.rv > compacted)
                    {
                        return finish(w).await;
                    }
                    last_rv = change.rv;
                    w.now_ms = store.virtual_now_ms();
                    if let Some(type_) = visible(&change, filter) {
                        w.event(type_, &change.object);
                        if let Some(delay) = faults.slow_watch() {
                            if !w.flush().await {
                                return;
                            }
                            tokio::time::sleep(delay).await;
                        }
                    }
                    if w.buf.len() < CHUNK {
                        match rx.try_recv() {
                            Ok(change) => next = Some(Ok(change)),
                            Err(broadcast::error::TryRecvError::Empty) => {}
                            Err(_) => return finish(w).await,
                        }
                    }
                }
                if !w.flush().await {
                    return;
                }
            }
        }
    }
    finish(w).await;
}

async fn finish(mut w: Writer) {
    w.flush().await;
}
