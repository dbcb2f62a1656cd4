//! The `muster` command line: each subcommand is a thin call into the library.
//! The same binary is a Docker CLI plugin when installed as `docker-muster`.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// Output piped into a reader that stopped reading (`muster status | head`):
/// `print!` panics on EPIPE. End quietly instead, with the exit status of a
/// tool that SIGPIPE ended (141), rather than a panic message and a
/// backtrace. A panic hook, not SIGPIPE's default action, because the
/// supervisor's own sockets (the engine's unix socket among them) must keep
/// seeing EPIPE as an error they handle, not a signal that kills muster.
fn quiet_on_broken_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_stdout();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (args, bin_name) = match cli::plugin::invocation(args, cli::plugin::started_by_docker()) {
        cli::plugin::Invocation::Metadata => {
            println!("{}", cli::plugin::metadata());
            return ExitCode::SUCCESS;
        }
        cli::plugin::Invocation::Plugin(args) => (args, "docker muster"),
        cli::plugin::Invocation::Plain(args) => (args, "muster"),
    };
    let args = cli::follow_short_flag(args);
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
