//! muster as a Docker CLI plugin: `docker muster up|status|rollout …`.
//!
//! Why: operators live in `docker …`; installed as
//! `~/.docker/cli-plugins/docker-muster` (or any `cli-plugins` directory the
//! docker CLI searches) the same binary becomes a `docker` subcommand. The
//! docker CLI first runs `docker-muster docker-cli-plugin-metadata` and wants
//! one JSON object on stdout (SchemaVersion `0.1.0`, Vendor, Version,
//! ShortDescription); then it runs `docker-muster muster ARGS…`, with the
//! plugin's name as the first argument, which is dropped here before clap
//! parses the rest.

use std::ffi::OsString;
use std::path::Path;

/// The argument docker passes to ask for the plugin's metadata.
pub const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";
/// The plugin's name: the binary is `docker-muster`, the command `docker muster`.
pub const PLUGIN_NAME: &str = "muster";
/// Set by the docker CLI in every plugin it runs.
const ORIGINAL_COMMAND_ENV: &str = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND";

/// The metadata JSON (one line) the docker CLI reads.
pub fn metadata() -> String {
    serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "muster",
        "Version": env!("CARGO_PKG_VERSION"),
        "ShortDescription": "Health supervisor for docker-compose stacks",
    })
    .to_string()
}

/// How this process was started.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `docker-muster docker-cli-plugin-metadata`: print [`metadata`], exit 0.
    Metadata,
    /// As a docker plugin: the arguments without the inserted `muster`.
    Plugin(Vec<OsString>),
    /// As `muster`: the arguments as they are.
    Plain(Vec<OsString>),
}

/// Reads argv (and whether docker started us) into an [`Invocation`].
pub fn invocation(args: Vec<OsString>, docker_started: bool) -> Invocation {
    let as_plugin = docker_started
        || args
            .first()
            .and_then(|a| Path::new(a).file_stem())
            .is_some_and(|name| name == "docker-muster");
    if args.get(1).is_some_and(|a| a == METADATA_COMMAND) {
        return Invocation::Metadata;
    }
    if as_plugin && args.get(1).is_some_and(|a| a == PLUGIN_NAME) {
        let mut args = args;
        args.remove(1);
        return Invocation::Plugin(args);
    }
    Invocation::Plain(args)
}

/// True when the docker CLI started this process as a plugin.
pub fn started_by_docker() -> bool {
    std::env::var_os(ORIGINAL_COMMAND_ENV).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn handshake_and_inserted_name() {
        assert_eq!(
            invocation(
                os(&["/x/docker-muster", "docker-cli-plugin-metadata"]),
                false
            ),
            Invocation::Metadata
        );
        assert_eq!(
            invocation(
                os(&["/x/docker-muster", "muster", "status", "--json"]),
                false
            ),
            Invocation::Plugin(os(&["/x/docker-muster", "status", "--json"]))
        );
        // Started by docker under another file name (a symlink's target).
        assert_eq!(
            invocation(os(&["muster", "muster", "ps"]), true),
            Invocation::Plugin(os(&["muster", "ps"]))
        );
        // Run by hand: a service called `muster` stays an argument.
        assert_eq!(
            invocation(os(&["muster", "up", "muster"]), false),
            Invocation::Plain(os(&["muster", "up", "muster"]))
        );
        let meta: serde_json::Value = serde_json::from_str(&metadata()).unwrap();
        assert_eq!(meta["SchemaVersion"], "0.1.0");
        assert_eq!(meta["Vendor"], "muster");
    }
}
