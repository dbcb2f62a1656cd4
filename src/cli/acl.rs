//! `muster acl`: one Redis ACL user per agent, confined to that agent's two
//! keys. The shipped `redis.conf` has one `agent` user for every agent, which
//! may overwrite any agent's signal; these rules close that. Each user may
//! only `FCALL` muster's functions (no `EVAL`: no Lua of its own that could
//! block Redis), touch `{ns}:ready:NAME` and `{ns}:notready:NAME`, and publish
//! on its own channel `{ns}:events:NAME` only, which is why muster may apply
//! an event heard there without reading the keys. No user gets the shared
//! `{ns}:events` (version-1 clients): events there are only hints.
//!
//! With `--passwords DIR`, each agent's password is read from `DIR/NAME`, or
//! made (192 random bits) and written there with mode 0600 when missing; the
//! rule then carries its SHA-256 (`#hex`), never the password.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use muster::config::Settings;

use super::{AclArgs, CliResult, Global};

/// Commands a confined agent may run: the protocol's writes through muster's
/// functions, the shell heartbeat, reads of its own keys, the no-scripting
/// path (MULTI/EXEC) and PING.
const AGENT_COMMANDS: &str =
    "-@all +fcall +get +set +del +pexpire +mget +publish +multi +exec +discard +ping";

#[derive(serde::Serialize)]
struct AgentUser {
    agent: String,
    /// The service whose probe names the agent (absent for `--agent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    user: String,
    rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<PathBuf>,
    /// True when this run made the password (the file did not exist).
    created: bool,
}

pub fn run(global: &Global, settings: &Settings, args: &AclArgs) -> CliResult {
    let agents: Vec<(Option<String>, String)> = if args.agents.is_empty() {
        let project = super::compose::load_project(global)?;
        let found = muster::supervisor::plan::agents(&project, &settings.plan());
        if found.is_empty() {
            return Err(format!(
                "project {}: no service has an `agent` probe in x-muster, so there is no agent \
                 to make a user for; name agents with --agent NAME",
                project.name
            )
            .into());
        }
        found.into_iter().map(|(s, a)| (Some(s), a)).collect()
    } else {
        args.agents.iter().map(|a| (None, a.clone())).collect()
    };
    let ns = &settings.namespace;
    let mut users = Vec::new();
    for (service, agent) in agents {
        muster::signal::validate_name(&agent)?;
        let user = format!("{}{agent}", args.user_prefix);
        let (password, password_file, created) = match &args.passwords {
            Some(dir) => {
                let (hash, created) = password_hash(dir, &agent)?;
                (format!("#{hash}"), Some(dir.join(&agent)), created)
            }
            // No password: nobody can log in as this user until one is added.
            None => ("resetpass".to_string(), None, false),
        };
        let rule = format!(
            "user {user} on {password} resetkeys ~{ns}:ready:{agent} ~{ns}:notready:{agent} \
             resetchannels &{ns}:events:{agent} {AGENT_COMMANDS}"
        );
        users.push(AgentUser {
            agent,
            service,
            user,
            rule,
            password_file,
            created,
        });
    }
    // println!: a closed stdout (`| head`) ends quietly through main's hook.
    if global.json {
        let doc = serde_json::json!({ "namespace": ns, "users": users });
        println!("{doc}");
    } else {
        println!(
            "# muster acl: one Redis user per agent, namespace {ns} (add to redis.conf or an ACL file)"
        );
        for u in &users {
            let from = u
                .service
                .as_deref()
                .map(|s| format!(" (service {s})"))
                .unwrap_or_default();
            println!("# agent {}{from}", u.agent);
            println!("{}", u.rule);
        }
        if args.passwords.is_none() {
            eprintln!(
                "muster: these users have no password yet (nobody can log in as them): add \
                 `>PASSWORD` or `#SHA256` to each line, or run again with --passwords DIR"
            );
        }
        for u in users.iter().filter(|u| u.created) {
            if let Some(file) = &u.password_file {
                eprintln!(
                    "muster: made a password for agent {} in {} (mode 0600): its Redis URL is \
                     redis://{}:<that password>@HOST:6379",
                    u.agent,
                    file.display(),
                    u.user
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The hex SHA-256 of the agent's password in `dir/agent`, making the file
/// (random, URL-safe, mode 0600) when it does not exist. Returns whether it was made.
fn password_hash(dir: &Path, agent: &str) -> Result<(String, bool), String> {
    let file = dir.join(agent);
    let (password, created) = match std::fs::read_to_string(&file) {
        Ok(text) => {
            let password = text.trim_end_matches(['\n', '\r']).to_string();
            if password.is_empty() {
                return Err(format!(
                    "{}: the password file is empty; delete it to have muster make one",
                    file.display()
                ));
            }
            (password, false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("{}: cannot create the directory: {e}", dir.display()))?;
            let password = random_password()?;
            write_private(&file, &password)
                .map_err(|e| format!("{}: cannot write the password: {e}", file.display()))?;
            (password, true)
        }
        Err(e) => return Err(format!("{}: cannot read the password: {e}", file.display())),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, password.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, created))
}

fn random_password() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system's random source failed; cannot make a password".to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}
