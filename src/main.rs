//! The `kubetrail` binary: parse the command line, set up logging, run one subcommand.

use std::process::ExitCode;

/// mimalloc hands freed memory back to the OS far more readily than glibc's malloc after the
/// initial list's burst of short-lived allocations, which keeps the recorder's resident size
/// close to what its cache really holds; it is also faster on this allocation-heavy workload.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    kubetrail::cli::main()
}
