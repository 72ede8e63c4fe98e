//! How the binary tunes its allocator (mimalloc, set as the global allocator in `main.rs`):
//! freed pages back to the OS at once, and no transparent huge pages. The examples that
//! measure the recorder in-process (`bench_pipeline`, `record_memory`) include this file, so
//! that their figures are the binary's and not another allocator's.

/// `mi_option_purge_delay` in the `mi_option_t` of mimalloc 3.x (the version libmimalloc-sys
/// 0.1.49 builds by default) and 2.x alike; libmimalloc-sys does not name it. The same as running
/// with MIMALLOC_PURGE_DELAY=0. A delay with a collecting thread did not pay (BENCHMARKS.md).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Call first thing in `main`. mimalloc hands freed pages back at once: the initial list is a
/// burst of short-lived allocations (decoded pages, batches on their way to SQLite), and with
/// glibc's malloc or mimalloc's default delay the recorder kept ~100 MB more resident
/// afterwards than its cache really holds (measured in BENCHMARKS.md). An explicit
/// MIMALLOC_PURGE_DELAY (read by mimalloc itself) wins, for measuring.
pub fn tune() {
    no_transparent_huge_pages();
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is allowed at any time; it only changes when pages are purged.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

/// Transparent huge pages off for this process, unless MIMALLOC_ALLOW_THP is set (for
/// measuring). mimalloc asks the kernel for huge pages on the arena it reserves before `main`
/// runs (madvise), so its own option, set here, comes too late: the process-wide flag
/// (`PR_SET_THP_DISABLE`) applies to the pages faulted from now on. A 2 MiB page is resident as
/// a whole once any byte of it is touched, and after the initial list the cache's objects are
/// spread thinly over memory that is otherwise free: with 4 KiB pages the free parts go back
/// to the OS, with huge pages much of them stayed (about 30 MB with 100k pods, BENCHMARKS.md).
fn no_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process; a failure (an old kernel)
    // leaves huge pages on, which costs memory, not correctness.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
