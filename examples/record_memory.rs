//! Where a recorder's memory goes after its initial list: the bytes its Rust allocations still
//! hold (counted by a counting allocator around mimalloc, set up as the binary sets it up) and
//! SQLite's own (`sqlite3_memory_used`), against the process's resident size. The rest is what
//! the allocator keeps of freed memory, and the code.
//!
//! The recorder runs in this process; the simulated cluster runs in its own (so its memory is
//! not counted):
//!
//! ```sh
//! kubetrail simulate --paused --pods 100000 --nodes 5000 --seed 7 --kubeconfig-out /tmp/kc &
//! cargo run --release --example record_memory -- /tmp/kc /tmp/record_memory.db
//! PODS_ONLY=1 cargo run --release --example record_memory -- /tmp/kc /tmp/record_memory.db
//! ```
//!
//! `PODS_ONLY=1` records pods and nodes only (no Events, owners or usage). `MI_STATS=1` also prints
//! mimalloc's own statistics at that moment (pages, purges, committed memory) to stderr.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kubetrail::recorder::{Recorder, RecorderConfig};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The binary's allocator settings, from the binary's own source.
#[path = "../src/allocator.rs"]
mod allocator;

fn vm_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    allocator::tune();
    let mut args = std::env::args().skip(1);
    let (Some(kubeconfig), Some(db)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: record_memory KUBECONFIG DB");
    };
    let _ = std::fs::remove_file(&db);
    // PODS_ONLY=1: pods and nodes only (no Events, owners or usage), as `--no-events
    // --no-owners --no-usage`.
    let pods_only = std::env::var_os("PODS_ONLY").is_some();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let kubeconfig = Kubeconfig::read_from(&kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config)?;
        let handle = kubetrail::store::sqlite::open_for_writing(std::path::Path::new(&db))?;
        let recorder = Recorder::new(
            client,
            Box::new(handle),
            RecorderConfig {
                server,
                watch_events: !pods_only,
                watch_owners: !pods_only,
                usage_interval: if pods_only {
                    None
                } else {
                    RecorderConfig::default().usage_interval
                },
                ..Default::default()
            },
        );
        let stats = recorder.stats();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let monitor = async {
            while stats.initial_committed_ms.load(Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // As bench_record samples it: two seconds after the list is committed.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
            let live = mib(LIVE.load(Ordering::Relaxed) as f64);
            // SQLite allocates with the C allocator, outside the count above.
            // SAFETY: a read of SQLite's own counter, safe from any thread.
            let sqlite = mib(unsafe { rusqlite::ffi::sqlite3_memory_used() } as f64);
            let rss = vm_rss_kb() as f64 / 1024.0;
            println!(
                "pods {}: live {live:.1} MiB, SQLite {sqlite:.1} MiB, resident {rss:.1} MiB, \
                 the rest (the allocator's free pages, the code) {:.1} MiB",
                stats.cached_pods.get(),
                rss - live - sqlite
            );
            if std::env::var_os("MI_STATS").is_some() {
                // SAFETY: mimalloc prints its statistics to stderr; allowed from any thread.
                unsafe { libmimalloc_sys::mi_stats_print_out(None, std::ptr::null_mut()) };
            }
            let _ = stop_tx.send(());
        };
        let stop = async move {
            let _ = stop_rx.await;
        };
        let (result, ()) = tokio::join!(recorder.run(stop), monitor);
        result?;
        anyhow::Ok(())
    })
}
