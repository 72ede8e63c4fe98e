//! The recorder's own ceiling, without a network or a simulator competing for the CPU: replays
//! pod watch events (real pod JSON from `kubetrail simulate`, changed the way a kubelet changes
//! them) through the recorder's decode -> cache -> detect -> batched writer pipeline into a real
//! SQLite file, and reports events per second end to end, and decoding alone, so it is clear
//! which limit is near: JSON parsing or SQLite.
//!
//! ```sh
//! cargo run --release --example bench_pipeline -- [PODS] [UPDATES_PER_POD] [RUNS]
//! ```
//! Defaults: 20000 pods, 10 updates each (200k events), 3 runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// The binary's allocator, tuned as the binary tunes it (from the binary's own source): the
/// pipeline allocates and frees per event, and glibc's malloc, which this benchmark used before,
/// spent much of its time faulting in pages it had just given back.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../src/allocator.rs"]
mod allocator;

use kubetrail::recorder::cache::Cache;
use kubetrail::recorder::detect::Observation;
use kubetrail::recorder::objects::Pod;
use kubetrail::recorder::writer::{WriteMsg, Writer, WriterStats};
use kubetrail::store::{self, Batch};
use kubetrail_sim::{self as sim, SimConfig};
use serde_json::Value;

/// Real pod objects, as the simulator serves them.
async fn sample_pods(pods: usize) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(SimConfig {
        kubeconfig_out: Some(dir.path().join("kubeconfig")),
        pods,
        nodes: (pods / 20).max(3),
        start_paused: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = sim.kube_client().unwrap();
    let request = axum::http::Request::get("/api/v1/pods")
        .body(Vec::new())
        .unwrap();
    let text = client.request_text(request).await.unwrap();
    sim.shutdown().await.unwrap();
    let list: Value = serde_json::from_str(&text).unwrap();
    list["items"].as_array().unwrap().clone()
}

/// The k-th update of a pod: a new resourceVersion, readiness flipping, restarts growing.
fn update(pod: &Value, k: usize, rv: u64) -> Vec<u8> {
    let mut pod = pod.clone();
    pod["metadata"]["resourceVersion"] = Value::String(rv.to_string());
    if let Some(conditions) = pod["status"]["conditions"].as_array_mut() {
        for c in conditions.iter_mut().filter(|c| c["type"] == "Ready") {
            c["status"] = Value::String(if k.is_multiple_of(2) { "False" } else { "True" }.into());
            c["lastTransitionTime"] =
                Value::String(format!("2026-01-01T00:{:02}:{:02}Z", k / 60 % 60, k % 60));
        }
    }
    if let Some(statuses) = pod["status"]["containerStatuses"].as_array_mut()
        && let Some(first) = statuses.first_mut()
    {
        first["restartCount"] = Value::from(k / 2);
        first["lastState"] = serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
            "startedAt": "2026-01-01T00:00:00Z", "finishedAt": format!("2026-01-01T01:{:02}:{:02}Z", k / 60 % 60, k % 60)}});
    }
    serde_json::to_vec(&pod).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    allocator::tune();
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (pods, updates, runs) = (arg(1, 20_000), arg(2, 10), arg(3, 3));
    let sample = sample_pods(pods).await;
    let mut events: Vec<Vec<u8>> = Vec::with_capacity(sample.len() * (updates + 1));
    let mut rv = 1_000_000;
    for k in 0..=updates {
        for pod in &sample {
            rv += 1;
            events.push(update(pod, k, rv));
        }
    }
    let bytes: usize = events.iter().map(Vec::len).sum();
    println!(
        "pipeline benchmark: {} pods, {} events, {:.0} MB of JSON, {runs} runs",
        sample.len(),
        events.len(),
        bytes as f64 / 1e6
    );

    let mut decode_rates = Vec::new();
    let mut pipeline_rates = Vec::new();
    for run in 1..=runs {
        // Decoding alone.
        let started = Instant::now();
        for e in &events {
            std::hint::black_box(serde_json::from_slice::<Pod>(e).unwrap());
        }
        let decode = started.elapsed();

        // The whole pipeline into a real file.
        let dir = tempfile::tempdir().unwrap();
        let handle = store::sqlite::open_for_writing(&dir.path().join("bench.db")).unwrap();
        let stats = Arc::new(WriterStats::default());
        let writer = Writer::spawn(Box::new(handle), 16, stats.clone());
        let mut cache = Cache::new();
        let mut batch = Batch::default();
        let started = Instant::now();
        // Where the main task's time goes: decoding, the cache and detection, and waiting for
        // room in the writer's queue (the writer's own thread is the rest of the pipeline).
        let (mut decoding, mut applying, mut waiting) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for (i, e) in events.iter().enumerate() {
            let t0 = Instant::now();
            let pod: Pod = serde_json::from_slice(e).unwrap();
            let t1 = Instant::now();
            decoding += t1 - t0;
            let obs = if i < sample.len() {
                Observation::inferred(1)
            } else {
                Observation::live(2 + i as i64)
            };
            cache.apply_pod(pod, obs, &mut batch);
            if batch.len() >= 5_000 {
                cache.flush_usage(i as i64, &mut batch);
                let full = std::mem::take(&mut batch);
                let t2 = Instant::now();
                applying += t2 - t1;
                writer
                    .send(WriteMsg::Rows {
                        batch: full,
                        since: Instant::now(),
                    })
                    .await
                    .unwrap_or_else(|_| panic!("writer stopped"));
                waiting += t2.elapsed();
            } else {
                applying += t1.elapsed();
            }
        }
        writer
            .send(WriteMsg::Rows {
                batch,
                since: Instant::now(),
            })
            .await
            .unwrap_or_else(|_| panic!("writer stopped"));
        drop(writer.finish(Duration::from_secs(60)).await);
        let total = started.elapsed();
        let rate = |d: Duration| events.len() as f64 / d.as_secs_f64();
        println!(
            "run {run}: decode only {:.0} events/s ({:.0} MB/s); decode+cache+detect+commit {:.0} events/s, {} transitions",
            rate(decode),
            bytes as f64 / 1e6 / decode.as_secs_f64(),
            rate(total),
            stats.transitions_total()
        );
        let micros = |d: Duration| d.as_secs_f64() * 1e6 / events.len() as f64;
        println!(
            "run {run}: per event: decoding {:.2} us, cache+detect {:.2} us, waiting for the writer {:.2} us, the writer's finish {:.0} ms",
            micros(decoding),
            micros(applying),
            micros(waiting),
            (total - decoding - applying - waiting).as_secs_f64() * 1e3
        );
        decode_rates.push(rate(decode));
        pipeline_rates.push(rate(total));
    }
    println!(
        "median: decode only {:.0} events/s, whole pipeline {:.0} events/s",
        median(decode_rates),
        median(pipeline_rates)
    );
}
