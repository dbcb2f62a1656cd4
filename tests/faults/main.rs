//! The fault suite (issue #15): ordinary faults against the real services,
//! each asserting no false restart, no false ready, nothing lost and nothing
//! leaked. Runs alone with `bash scripts/test.sh --test faults`; the README's
//! Limits section has the table of what each fault does and what is not
//! covered yet.

#[path = "../support/mod.rs"]
mod support;

mod engine;
mod exits;
mod foreign;
mod links;
mod nats;
mod redis;
mod replicas;
mod secrets;
mod sigkill;
mod stack_down;

/// `muster -f FILE -p PROJECT --listen 127.0.0.1:LISTEN --redis-url REDIS up
/// --serve`, working in `dir` with its own state file, output discarded.
fn spawn_up_serve(
    dir: &std::path::Path,
    file: &std::path::Path,
    project: &str,
    listen: u16,
    redis_url: &str,
) -> support::KillOnDrop {
    support::Muster::new()
        .dir(dir)
        .state_file(dir.join("state.json"))
        .stack(file, project, listen)
        .spawn_quiet(&["--redis-url", redis_url, "up", "--serve"])
}
