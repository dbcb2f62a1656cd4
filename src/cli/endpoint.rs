//! Which stack a command is about, and the muster that supervises it.
//!
//! Why: `muster status`, `check --service`, `check --self` and `rollout
//! status` must talk to the muster of *this* project, never to whichever
//! muster answers on an address (see `muster::health::identity`). The stack is
//! the compose project (`-p`, `COMPOSE_PROJECT_NAME`, the compose file's
//! `name:` or its directory) in the settings' namespace.

use std::time::Duration;

use muster::compose::ComposeError;
use muster::config::Settings;
use muster::health::client::{self, FindError, Lookup, Wanted};

use super::Global;

/// The stack this command is about. The project is unknown only when no
/// compose file is found and neither `-p` nor `COMPOSE_PROJECT_NAME` names
/// one (a healthcheck inside a container): then any muster of the namespace
/// at the given address is accepted.
pub fn wanted(global: &Global, settings: &Settings) -> Wanted {
    let named = || {
        global
            .project_name
            .clone()
            .or_else(|| std::env::var("COMPOSE_PROJECT_NAME").ok())
            .map(|n| n.trim().to_lowercase())
            .filter(|n| !n.is_empty())
    };
    let project = match super::compose::load_project(global) {
        Ok(project) => Some(project.name),
        Err(ComposeError::NoComposeFile { .. }) => named(),
        Err(e) => {
            tracing::debug!(error = %e, "the compose project does not load; its name comes from -p / COMPOSE_PROJECT_NAME only");
            named()
        }
    };
    Wanted {
        project,
        namespace: settings.namespace.clone(),
    }
}

/// Asks `path` of the muster of `wanted`'s stack: `--listen` as set, else the
/// stack's derived ports.
pub fn find(
    settings: &Settings,
    wanted: &Wanted,
    path: &str,
    timeout: Duration,
) -> Result<Lookup, FindError> {
    client::find(settings.listen.as_deref(), wanted, path, timeout)
}
