//! The `muster` command line: each subcommand is a thin call into the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(&args.global);
    cli::run(args)
}
