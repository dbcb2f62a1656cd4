//! The `muster` command line: each subcommand is a thin call into the library.
//! The same binary is a Docker CLI plugin when installed as `docker-muster`.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (args, bin_name) = match cli::plugin::invocation(args, cli::plugin::started_by_docker()) {
        cli::plugin::Invocation::Metadata => {
            println!("{}", cli::plugin::metadata());
            return ExitCode::SUCCESS;
        }
        cli::plugin::Invocation::Plugin(args) => (args, "docker muster"),
        cli::plugin::Invocation::Plain(args) => (args, "muster"),
    };
    let matches = cli::Cli::command()
        .bin_name(bin_name)
        .get_matches_from(args);
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    cli::init_tracing(&args.global);
    cli::run(args)
}
