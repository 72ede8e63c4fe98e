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

/// `mi_option_allow_thp`, the same as MIMALLOC_ALLOW_THP=0. mimalloc asks the kernel for
/// transparent huge pages on its segments by default (madvise), and a 2 MiB page is resident
/// as a whole once any byte of it is touched. After the initial list the cache's objects are
/// spread thinly over memory that is otherwise free: with 4 KiB pages the free parts go back
/// to the OS, with huge pages much of them stayed. Without them the recorder held about 30 MB
/// less with 100k pods cached (BENCHMARKS.md).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 37;

fn main() -> ExitCode {
    // An explicit MIMALLOC_PURGE_DELAY or MIMALLOC_ALLOW_THP (read by mimalloc itself) wins,
    // for measuring.
    for (variable, option, value) in [
        ("MIMALLOC_PURGE_DELAY", MI_OPTION_PURGE_DELAY, 0),
        ("MIMALLOC_ALLOW_THP", MI_OPTION_ALLOW_THP, 0),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: setting an option is allowed at any time; these only change how pages
            // are committed and purged.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
    cli::main()
}
