//! Faults injected on demand (flags at start-up, `POST /_sim/faults`, or [`super::SimHandle`]):
//! cutting every watch stream now or periodically, compacting the event history (so older
//! resourceVersions get 410 Gone), an outage in which every API request gets 503, slow
//! watch delivery, and a metrics API that is missing (404) or unavailable (503).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::Store;

/// A fault request; every field is optional and they can be combined.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultRequest {
    /// Close every open watch stream now.
    pub cut_watches: bool,
    /// Close every watch stream every N seconds (0 stops it).
    pub cut_every_secs: Option<f64>,
    /// Drop the retained event history: a watch from any earlier rv gets ERROR 410, and every
    /// open stream ends at its first change or bookmark from after the compaction (having
    /// delivered what came before it), so every watcher relists once.
    pub compact: bool,
    /// Answer every API request with 503 for N seconds, and cut open watches.
    pub outage_secs: Option<f64>,
    /// Delay each watch event by N milliseconds (0 stops it).
    pub slow_watch_ms: Option<u64>,
    /// How the metrics API (metrics.k8s.io) answers from now on.
    pub metrics_api: Option<MetricsApi>,
}

/// How the metrics API answers, as a cluster without metrics-server or with a broken one would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsApi {
    /// Served (the default).
    #[default]
    Served,
    /// Not registered: 404 for the group, and absent from `/apis`.
    Missing,
    /// Registered but its backend is down: 503 as the aggregator answers for an unavailable
    /// APIService (still listed in `/apis`).
    Unavailable,
}

/// The fault state shared by the API handlers and watch streams.
pub struct Faults {
    cut: watch::Sender<u64>,
    outage_until: Mutex<Option<Instant>>,
    slow_watch_ms: AtomicU64,
    metrics_api: Mutex<MetricsApi>,
    /// Requests answered 503 because of an outage (clients such as kube-rs retry 503s
    /// internally, so tests check this to know the outage was felt).
    outage_rejections: AtomicU64,
    cut_every: Mutex<Option<JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
}

impl Faults {
    /// Must be called inside a tokio runtime (it keeps a handle for periodic cuts).
    pub fn new() -> Faults {
        Faults {
            cut: watch::channel(0).0,
            outage_until: Mutex::new(None),
            slow_watch_ms: AtomicU64::new(0),
            metrics_api: Mutex::new(MetricsApi::Served),
            outage_rejections: AtomicU64::new(0),
            cut_every: Mutex::new(None),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// A receiver that changes whenever watches must be closed.
    pub fn cut_signal(&self) -> watch::Receiver<u64> {
        self.cut.subscribe()
    }

    pub fn cut_watches(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }

    pub fn in_outage(&self) -> bool {
        let mut until = self.outage_until.lock().unwrap_or_else(|p| p.into_inner());
        match *until {
            Some(end) if Instant::now() < end => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    /// True (and counted) if a request must be refused because of an outage.
    pub fn reject_in_outage(&self) -> bool {
        let rejected = self.in_outage();
        if rejected {
            self.outage_rejections.fetch_add(1, Ordering::Relaxed);
        }
        rejected
    }

    pub fn outage_rejections(&self) -> u64 {
        self.outage_rejections.load(Ordering::Relaxed)
    }

    pub fn slow_watch(&self) -> Option<Duration> {
        match self.slow_watch_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub fn metrics_api(&self) -> MetricsApi {
        *self.metrics_api.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a request. Errors name the bad value.
    pub fn apply(&self, request: &FaultRequest, store: &Store) -> Result<(), String> {
        for (name, value) in [
            ("cut_every_secs", request.cut_every_secs),
            ("outage_secs", request.outage_secs),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!(
                    "{name} must be a non-negative number of seconds, got {v}"
                ));
            }
        }
        if let Some(ms) = request.slow_watch_ms {
            self.slow_watch_ms.store(ms, Ordering::Relaxed);
        }
        if let Some(mode) = request.metrics_api {
            *self.metrics_api.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        }
        if request.compact {
            store.compact();
        }
        if let Some(secs) = request.outage_secs {
            let end = (secs > 0.0).then(|| Instant::now() + Duration::from_secs_f64(secs));
            *self.outage_until.lock().unwrap_or_else(|p| p.into_inner()) = end;
        }
        if request.cut_watches || request.outage_secs.is_some_and(|s| s > 0.0) {
            self.cut_watches();
        }
        if let Some(secs) = request.cut_every_secs {
            let mut task = self.cut_every.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = task.take() {
                old.abort();
            }
            if secs > 0.0 {
                let cut = self.cut.clone();
                let period = Duration::from_secs_f64(secs);
                *task = Some(self.runtime.spawn(async move {
                    let mut interval =
                        tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                    loop {
                        interval.tick().await;
                        cut.send_modify(|generation| *generation += 1);
                    }
                }));
            }
        }
        Ok(())
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new()
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        if let Some(task) = self
            .cut_every
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}
