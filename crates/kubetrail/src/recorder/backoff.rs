//! Retry pacing for the watch streams: exponential from 250 ms with jitter, capped at 5 s after
//! a failed watch and at 60 s after a failed list, and reset only by progress.
//!
//! kube-runtime's `StreamBackoff` resets its policy on every `Ok` item, and its watcher yields
//! `Event::Init` (an `Ok`) before it sends each list request. Against a server that refuses
//! lists, every retry therefore began again at the first delay: 8 warnings a second, forever.
//! [`paced`] resets only on an event that carries something from the server.
//!
//! The caps differ because the costs do. A watch resumes from a known resourceVersion with one
//! cheap request, and every second blind is history that can only be inferred, so it retries
//! within 5 s. A list of 100k pods is ~300 MB for the server to encode and for us to decode,
//! so a list that keeps failing backs off to a minute. Each delay is drawn from [d/2, d]: many
//! recorders restarted together (a node drain) do not hit the server in step.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::runtime::watcher::{self, Event};

const FIRST: Duration = Duration::from_millis(250);
/// The longest wait after a failed watch request or stream.
pub const WATCH_CAP: Duration = Duration::from_secs(5);
/// The longest wait after a failed list.
pub const LIST_CAP: Duration = Duration::from_secs(60);

/// What failed, which sets the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    List,
    Watch,
}

impl Retry {
    /// A failed list, or an error after which the watcher must list again.
    pub fn after(err: &watcher::Error) -> Retry {
        match err {
            watcher::Error::InitialListFailed(_) | watcher::Error::NoResourceVersion => Retry::List,
            _ => Retry::Watch,
        }
    }

    fn cap(self) -> Duration {
        match self {
            Retry::List => LIST_CAP,
            Retry::Watch => WATCH_CAP,
        }
    }
}

/// Exponential backoff counted in failures since the last progress.
#[derive(Clone, Debug, Default)]
pub struct RetryPolicy {
    failures: u32,
}

impl RetryPolicy {
    /// The wait before the next attempt; `jitter` in [0, 1] picks it within [d/2, d].
    pub fn next_delay(&mut self, what: Retry, jitter: f64) -> Duration {
        let full = FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(what.cap());
        self.failures = self.failures.saturating_add(1);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// The server answered with data: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A uniform number in [0, 1) from the standard library's per-process random keys.
pub fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `inner` with a pause after every error (see the module doc): the error is yielded at once,
/// and the stream is polled again only after the delay.
pub fn paced<K: Send + 'static>(
    inner: BoxStream<'static, watcher::Result<Event<K>>>,
) -> BoxStream<'static, watcher::Result<Event<K>>> {
    paced_with(inner, jitter, tokio::time::sleep)
}

fn paced_with<K, S, F>(
    inner: BoxStream<'static, watcher::Result<Event<K>>>,
    jitter: fn() -> f64,
    sleep: S,
) -> BoxStream<'static, watcher::Result<Event<K>>>
where
    K: Send + 'static,
    S: Fn(Duration) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let sleep = std::sync::Arc::new(sleep);
    let start = (inner, RetryPolicy::default(), None::<Duration>);
    futures::stream::unfold(start, move |(mut inner, mut policy, wait)| {
        let sleep = sleep.clone();
        async move {
            if let Some(delay) = wait {
                sleep(delay).await;
            }
            let item = inner.next().await?;
            let wait = match &item {
                Err(err) => Some(policy.next_delay(Retry::after(err), jitter())),
                // kube-runtime yields Init before each list attempt: not a sign the server works.
                Ok(Event::Init) => None,
                Ok(_) => {
                    policy.reset();
                    None
                }
            };
            Some((item, (inner, policy, wait)))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_failed() -> watcher::Error {
        let status =
            kube::core::Status::failure("unavailable", "ServiceUnavailable").with_code(503);
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn delays_double_to_a_longer_cap_for_lists_and_reset() {
        let mut p = RetryPolicy::default();
        let ms: Vec<u128> = (0..10)
            .map(|_| p.next_delay(Retry::List, 1.0).as_millis())
            .collect();
        assert_eq!(
            ms,
            vec![250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
        );
        p.reset();
        let ms: Vec<u128> = (0..6)
            .map(|_| p.next_delay(Retry::Watch, 1.0).as_millis())
            .collect();
        assert_eq!(ms, vec![250, 500, 1000, 2000, 4000, 5000]);
    }

    #[test]
    fn jitter_stays_within_half_and_whole_delay() {
        let mut p = RetryPolicy::default();
        assert_eq!(p.next_delay(Retry::List, 0.0), Duration::from_millis(125));
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    /// A list that fails forever, each attempt preceded by the `Init` that kube-runtime yields.
    fn failing_lists() -> BoxStream<'static, watcher::Result<Event<()>>> {
        futures::stream::iter(0..8)
            .flat_map(|_| futures::stream::iter([Ok(Event::Init), Err(list_failed())]))
            .boxed()
    }

    #[tokio::test]
    async fn a_list_that_keeps_failing_backs_off_although_each_attempt_begins_with_init() {
        let slept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = slept.clone();
        let stream = paced_with(
            failing_lists(),
            || 1.0,
            move |d: Duration| {
                record.lock().unwrap().push(d.as_millis());
                async {}
            },
        );
        assert_eq!(stream.count().await, 16);
        assert_eq!(
            *slept.lock().unwrap(),
            vec![250, 500, 1000, 2000, 4000, 8000, 16000, 32000]
        );
    }

    /// The cause of the bug, kept as a check: kube-runtime's own backoff is reset by every
    /// `Init`, so a policy used through it never gets past its first delay.
    #[tokio::test]
    async fn kube_runtimes_backoff_is_reset_by_every_init() {
        let resets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let backoff = CountResets(resets.clone());
        let stream = kube::runtime::WatchStreamExt::backoff(failing_lists(), backoff);
        assert_eq!(stream.count().await, 16);
        // One per Init (and one as the stream ends): every failed list starts over.
        assert!(resets.load(std::sync::atomic::Ordering::Relaxed) >= 8);
    }

    struct CountResets(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Iterator for CountResets {
        type Item = Duration;
        fn next(&mut self) -> Option<Duration> {
            Some(Duration::ZERO)
        }
    }
    impl kube::runtime::utils::Backoff for CountResets {
        fn reset(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
