//! The `kubetrail` binary: parse the command line, set up logging, run one subcommand.

mod cli;

use std::process::ExitCode;

/// mimalloc, told to hand freed pages back to the OS at once: the initial list is a burst of
/// short-lived allocations (decoded pages, batches on their way to SQLite), and with glibc's
/// malloc or mimalloc's default delay the recorder kept ~100 MB more resident afterwards than
/// its cache really holds (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 2.x's `mi_option_t` (libmimalloc-sys 0.1.49 does not name
/// it); the same as running with MIMALLOC_PURGE_DELAY=0.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // An explicit MIMALLOC_PURGE_DELAY (read by mimalloc itself) wins, for measuring.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is allowed at any time; it only changes when pages are purged.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    cli::main()
}
