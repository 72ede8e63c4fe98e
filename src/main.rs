//! The `kubetrail` binary: parse the command line, set up logging, run one subcommand.

use std::process::ExitCode;

fn main() -> ExitCode {
    kubetrail::cli::main()
}
