//! Scale figures for `kubetrail simulate` (see BENCHMARKS.md):
//! - time to build the initial cluster (default 100k pods, 5k nodes);
//! - a full paginated list of pods through kube-rs (limit 500, as informers do) and one
//!   unpaginated list read raw over HTTP;
//! - churn: watch events generated per second by the engine running flat out.
//!
//! `cargo run --release --example sim_scale [PODS NODES]`

use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use kubetrail_sim::scenario::{Scenario, ScenarioConfig};
use kubetrail_sim::store::{RetentionLimits, Store};
use kubetrail_sim::truth::TruthWriter;
use kubetrail_sim::{SimConfig, start};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let pods: usize = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    let nodes: usize = args.get(2).map_or(Ok(5_000), |s| s.parse())?;
    let start_ms = 1_795_000_000_000;

    // 1. Building the initial cluster (headless).
    let begin = Instant::now();
    let store = Store::new(RetentionLimits::default());
    let config = ScenarioConfig {
        seed: 1,
        start_ms,
        nodes,
        pods,
        churn_per_sec: 5000.0,
        pace: 0.2,
        event_flood_per_min: 0.0,
    };
    let mut scenario = Scenario::new(config.clone(), store.clone(), TruthWriter::disabled());
    let build = begin.elapsed();
    let built = store.stats();
    println!(
        "build: {} pods, {} nodes in {:.2} s",
        built.pods,
        built.nodes,
        build.as_secs_f64()
    );

    // 2. Churn: the engine flat out (no pacing) for 10 virtual seconds at 5000 new pods/s.
    let events_before = store.stats().events_emitted;
    let begin = Instant::now();
    scenario.run_ticks(1000);
    let secs = begin.elapsed().as_secs_f64();
    let events = store.stats().events_emitted - events_before;
    println!(
        "churn: {events} events in {secs:.2} s = {:.0} events/s",
        events as f64 / secs
    );
    drop(scenario);

    // 3. Lists over HTTP, engine paused so every run lists the same cluster.
    let sim = start(SimConfig {
        nodes,
        pods,
        seed: 1,
        start_ms: Some(start_ms),
        start_paused: true,
        ..SimConfig::default()
    })
    .await?;
    let client = sim.kube_client()?;
    let api: Api<Pod> = Api::all(client);
    let begin = Instant::now();
    let mut listed = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        listed += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    println!(
        "kube-rs paginated list (limit 500): {listed} pods in {:.2} s",
        begin.elapsed().as_secs_f64()
    );

    let begin = Instant::now();
    let response = reqwest_like_get(&format!("{}/api/v1/pods", sim.base_url())).await?;
    println!(
        "raw unpaginated list: {:.1} MB in {:.2} s",
        response as f64 / 1e6,
        begin.elapsed().as_secs_f64()
    );

    // Watch start-up: all current pods as ADDED events.
    let begin = Instant::now();
    let client = sim.kube_client()?;
    let api: Api<Pod> = Api::all(client);
    let mut stream = kube::runtime::watcher(api, kube::runtime::watcher::Config::default()).boxed();
    let mut initial = 0;
    while let Some(event) = stream.next().await {
        match event? {
            kube::runtime::watcher::Event::InitApply(_) => initial += 1,
            kube::runtime::watcher::Event::InitDone => break,
            _ => {}
        }
    }
    println!(
        "kube-rs watcher initial list: {initial} pods in {:.2} s",
        begin.elapsed().as_secs_f64()
    );
    sim.shutdown().await
}

/// Reads a whole HTTP body with hyper through kube's client (raw bytes, no parsing); returns
/// its size.
async fn reqwest_like_get(url: &str) -> anyhow::Result<usize> {
    let uri: axum::http::Uri = url.parse()?;
    let client = kube::Client::try_from(kube::Config::new(
        format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map(|a| a.as_str()).unwrap_or("")
        )
        .parse()?,
    ))?;
    let request = axum::http::Request::get(uri.path()).body(Vec::new())?;
    let text = client.request_text(request).await?;
    Ok(text.len())
}
