//! Tests of the recorder's event loop: a node change while the pods have a backlog, and the
//! timers after a stall.

use super::*;
use crate::recorder::stream::EventStream;
use std::sync::atomic::AtomicUsize;

fn pod(i: usize) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("p{i}"), "namespace": "ns", "uid": format!("u{i}"),
            "resourceVersion": "1", "creationTimestamp": "2026-11-29T02:00:00Z"},
        "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Pending"}
    }))
    .unwrap()
}

fn node() -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "n1", "uid": "n1", "resourceVersion": "1",
            "creationTimestamp": "2026-11-29T02:00:00Z"},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
    }))
    .unwrap()
}

fn fixed<K: Send + 'static>(events: EventStream<K>) -> Watch<K> {
    Watch {
        events,
        start: Box::new(|| futures::stream::pending().boxed()),
        probe: Box::new(|_| async { true }.boxed()),
        horizon: Box::new(|| async { None }.boxed()),
    }
}

#[tokio::test]
async fn a_node_change_is_handled_while_the_pods_have_a_backlog() {
    const BACKLOG: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let handle = crate::store::sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
    let stats = Arc::new(RecorderStats::default());
    let writer = Writer::spawn(Box::new(handle), 16, stats.writer.clone());
    let mut state = Loop::new(Cache::new(), writer, stats.clone());
    // How many pod events the stream had yielded when the node was in the cache.
    let pods_before_node = Arc::new(AtomicUsize::new(usize::MAX));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let pod_events = {
        let stats = stats.clone();
        let seen = pods_before_node.clone();
        let mut done = Some(done_tx);
        futures::stream::iter(0..BACKLOG)
            .map(move |i| {
                if stats.cached_nodes.get() > 0 {
                    let _ =
                        seen.compare_exchange(usize::MAX, i, Ordering::Relaxed, Ordering::Relaxed);
                }
                if i == BACKLOG - 1
                    && let Some(done) = done.take()
                {
                    let _ = done.send(());
                }
                Ok(Event::Apply(pod(i)))
            })
            .chain(futures::stream::pending())
            .boxed()
    };
    let node_events = futures::stream::once(async { Ok(Event::Apply(node())) })
        .chain(futures::stream::pending())
        .boxed();
    let (mut pods, mut nodes) = (fixed(pod_events), fixed(node_events));
    let shutdown = done_rx.map(|_| ()).fuse();
    tokio::pin!(shutdown);
    let config = RecorderConfig::default();
    let (_asker, mut asks) = crate::recorder::usage::resources::channel();
    run_loop(
        &mut state,
        &mut pods,
        &mut nodes,
        &mut asks,
        &config,
        &mut shutdown,
    )
    .await
    .unwrap();
    // Fair selection leaves the node waiting k turns with probability 2^-k: 1000 never
    // happens. The old `biased` loop served the pods' backlog first, every time.
    let waited = pods_before_node.load(Ordering::Relaxed);
    assert!(waited < 1000, "the node waited behind {waited} pod events");
    drop(pods);
    state.flush_at_stop().await;
    state.writer.finish(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn missed_ticks_are_skipped_not_fired_in_a_burst_after_a_stall() {
    // A timer that has not been polled for 230 s: 23 ticks are missed.
    let now = tokio::time::Instant::now();
    let Some(stalled_since) = now.checked_sub(Duration::from_secs(230)) else {
        return; // the machine booted less than 230 s ago
    };
    let mut status = periodic_from(stalled_since, Duration::from_secs(10));
    assert!(status.tick().now_or_never().is_some(), "one late tick");
    let mut burst = 0;
    while status.tick().now_or_never().is_some() {
        burst += 1;
    }
    assert_eq!(burst, 0, "missed ticks fired at once");
}
