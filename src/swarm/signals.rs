//! Where `agent` probes on Swarm read the ready signals: muster's own signal
//! Redis (`--redis-url` / `MUSTER_REDIS_URL`, as on one host), reached from
//! where muster runs on Swarm, the stack's overlay network.
//!
//! Why a resolution step: a URL such as `redis://redis:6379` names a stack
//! service, and on Swarm that name is a virtual IP that muster (not a task,
//! so without Swarm's DNS) cannot resolve, and that needs IPVS on the node.
//! So when the URL's host names a stack service (its name, an alias or
//! `tasks.<name>`), muster uses the address of that service's running task on
//! its overlay network, as the other probes do; any other host is used as
//! written. Either way muster PINGs it once before it waits on signals, so a
//! Redis muster cannot reach is an error naming the service, the probe and the
//! URL (its password never shown), not a service that is never ready.

use std::time::Duration;

use crate::compose::xmuster::ProbeKind;
use crate::compose::{Project, Service};
use crate::engine::Engine;
use crate::signal::{AgentWatcher, WatcherConfig};
use crate::url::redact_url;

use super::cluster::Manager;
use super::readiness::swap_host;
use super::spec::{self, probed_network, service_names};
use super::tasks::{list_tasks, parse_tasks};
use super::SwarmError;

/// How long the one PING may take.
const REACH_TIMEOUT: Duration = Duration::from_secs(3);

/// A watcher of the ready signals for `service`'s `agent` probes.
pub(crate) async fn watcher(
    engine: &Engine,
    manager: &Manager,
    project: &Project,
    service: &Service,
    config: Option<&WatcherConfig>,
) -> Result<AgentWatcher, SwarmError> {
    let index = service
        .muster
        .as_ref()
        .and_then(|m| {
            m.probes
                .iter()
                .position(|p| matches!(p.kind, ProbeKind::Agent(_)))
        })
        .unwrap_or(0);
    let fail = |url: &str, problem: String| SwarmError::SignalRedis {
        service: service.name.clone(),
        index,
        url: redact_url(url),
        problem,
    };
    let Some(config) = config else {
        return Err(fail("(none)", "is not configured".into()));
    };
    let url = resolve(engine, manager, project, &config.redis_url)
        .await
        .map_err(|problem| fail(&config.redis_url, problem))?;
    reach(&url).await.map_err(|e| {
        fail(
            &config.redis_url,
            format!(
                "cannot be reached from muster ({e}); name a stack service (muster uses its \
                 task's overlay address) or an address reachable from muster's network"
            ),
        )
    })?;
    let written = config.redis_url.clone();
    let mut config = config.clone();
    config.redis_url = url;
    AgentWatcher::start(config).map_err(|e| fail(&written, e.to_string()))
}

/// `url` with a host that names a stack service replaced by that service's
/// running task's overlay address; other URLs as they are.
async fn resolve(
    engine: &Engine,
    manager: &Manager,
    project: &Project,
    url: &str,
) -> Result<String, String> {
    let named = project.services.values().find(|s| {
        let names = service_names(s);
        swap_host(url, &names, "0.0.0.0") != url
    });
    let Some(target) = named else {
        return Ok(url.to_string());
    };
    let swarm_name = spec::scoped(&project.name, &target.name);
    let network = probed_network(project, target);
    let json = list_tasks(engine.host(), &engine.api_version(), &swarm_name)
        .await
        .map_err(|e| e.to_string())?;
    let tasks = parse_tasks(&json, &network, &manager.nodes);
    let address = tasks
        .iter()
        .find(|t| t.is_running())
        .and_then(|t| t.address.clone())
        .ok_or_else(|| {
            format!(
                "names stack service {}, which has no running task on {network}: make the \
                 service depend on it (`condition: service_healthy`) so it runs first",
                target.name
            )
        })?;
    Ok(swap_host(url, &service_names(target), &address))
}

/// One PING within [`REACH_TIMEOUT`].
async fn reach(url: &str) -> Result<(), String> {
    let client = muster_signal::client::open_client(url).map_err(|e| e.to_string())?;
    let ping = async {
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(REACH_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {REACH_TIMEOUT:?}")),
    }
}
