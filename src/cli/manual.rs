//! `muster completions SHELL` and `muster man`: shell completions and man
//! pages generated from the clap definitions the parser uses, so they list
//! exactly the subcommands and flags this binary accepts.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, CliResult, CompletionsArgs, ManArgs};

/// The completion script for `args.shell` on stdout (with `--json`, as
/// `{"shell", "script"}`).
pub fn completions(args: &CompletionsArgs, json: bool) -> CliResult {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "muster", &mut script);
    if json {
        let script = String::from_utf8_lossy(&script);
        println!(
            "{}",
            serde_json::json!({ "shell": args.shell.to_string(), "script": script })
        );
    } else {
        write_out(&script)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One roff page per command: `muster.1`, then `muster-SUB.1` for each
/// subcommand (and `muster-SUB-SUB.1` below it).
fn pages() -> Result<Vec<(String, Vec<u8>)>, std::io::Error> {
    fn walk(
        command: clap::Command,
        name: String,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), std::io::Error> {
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .title(name.clone())
            .source(format!("muster {}", env!("CARGO_PKG_VERSION")))
            .render(&mut page)?;
        out.push((format!("{name}.1"), page));
        // clap's generated `help` subcommand gets no page of its own.
        let subs = command
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help");
        for sub in subs {
            walk(sub.clone(), format!("{name}-{}", sub.get_name()), out)?;
        }
        Ok(())
    }
    let mut command = Cli::command();
    command.build();
    let mut out = Vec::new();
    walk(command, "muster".to_string(), &mut out)?;
    Ok(out)
}

/// `muster man`: the page of `muster` on stdout; `--dir DIR` writes every
/// page there (`man -l DIR/muster-up.1`, or copy them to a `man1` directory).
pub fn man(args: &ManArgs, json: bool) -> CliResult {
    let pages = pages()?;
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--dir {}: cannot create: {e}", dir.display()))?;
        for (name, page) in &pages {
            let path = Path::new(dir).join(name);
            std::fs::write(&path, page)
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
        if json {
            let names: Vec<&String> = pages.iter().map(|(n, _)| n).collect();
            println!("{}", serde_json::json!({ "dir": dir, "pages": names }));
        } else {
            println!("wrote {} man pages to {}", pages.len(), dir.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (name, page) = &pages[0];
    if json {
        println!(
            "{}",
            serde_json::json!({ "page": name, "roff": String::from_utf8_lossy(page) })
        );
    } else {
        write_out(page)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a reader that stopped early (`| head`) is not an error.
fn write_out(bytes: &[u8]) -> std::io::Result<()> {
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
