//! The `kubetrail` binary: parse the command line, set up logging, run one subcommand.

mod allocator;
mod cli;

use std::process::ExitCode;

/// mimalloc, tuned by [`allocator::tune`]: freed pages go back to the OS at once.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    allocator::tune();
    cli::main()
}
