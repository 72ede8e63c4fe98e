//! How much memory the recorder's cache holds per pod: decodes a page of pods (a list response
//! saved from `kubetrail simulate`, e.g. `curl "$SIM/api/v1/pods?limit=5000" > pods.json`), feeds
//! them through the cache as the initial list does, and counts the bytes allocated and still live
//! with a counting allocator.
//!
//! ```sh
//! cargo run --release --example cache_memory -- pods.json
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use kubetrail::recorder::cache::Cache;
use kubetrail::recorder::detect::Observation;
use kubetrail::recorder::objects::Pod;
use kubetrail::store::Batch;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(serde::Deserialize)]
struct List {
    items: Vec<Pod>,
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: cache_memory PODS.json");
    let text = std::fs::read_to_string(&path).expect("read the list");
    let list: List = serde_json::from_str(&text).expect("a pod list");
    drop(text);
    let pods = list.items.len();
    let before = LIVE.load(Ordering::Relaxed);
    let mut cache = Cache::new();
    for pod in list.items {
        let mut batch = Batch::default();
        cache.apply_pod(pod, Observation::inferred(0), &mut batch);
    }
    let after = LIVE.load(Ordering::Relaxed);
    // The decoded pods themselves were moved into the cache or dropped; what is live now beyond
    // `before` (which held the decoded list) is what the cache keeps, less the list it consumed.
    println!("{pods} pods; live bytes before {before}, after {after}");
    println!("cache holds about {} bytes per pod", after / pods as isize);
    // The fixed part of each pod's entry, before its strings and containers: what a layout
    // change to the state itself would save.
    println!(
        "PodState {} bytes, ContainerState {} bytes",
        std::mem::size_of::<kubetrail::recorder::state::PodState>(),
        std::mem::size_of::<kubetrail::recorder::state::ContainerState>()
    );
    drop(cache);
}
