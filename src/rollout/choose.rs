//! Choosing revisions: which one the running containers carry, which one an
//! automatic revert or `rollback --to` goes to, and whether start-first is
//! possible for a service; plus the words these choices are reported in.

use super::*;

/// The revision most running containers carry. Containers without a
/// revision label (made by `up` or `docker compose`), or whose revision fell
/// out of the history, count as the newest baseline with their config hash;
/// when there is none, `None` (the next rollout records them as a baseline).
pub fn active_revision(observed: &[Observed], revisions: &[Revision]) -> Option<Revision> {
    let known: BTreeSet<u64> = revisions.iter().map(|r| r.number).collect();
    let mut counts: BTreeMap<Option<u64>, (usize, Option<String>)> = BTreeMap::new();
    for c in observed.iter().filter(|c| c.running) {
        let label = c.revision.filter(|r| known.contains(r));
        let entry = counts.entry(label).or_default();
        entry.0 += 1;
        if entry.1.is_none() {
            entry.1 = c.config_hash.clone();
        }
    }
    let (label, (_, hash)) = counts
        .into_iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(a.0.cmp(&b.0)))?;
    match label {
        Some(n) => revisions.iter().find(|r| r.number == n).cloned(),
        None => revisions
            .iter()
            .find(|r| r.kind == Kind::Baseline && Some(&r.config_hash) == hash.as_ref())
            .cloned(),
    }
}

/// The newest revision (other than `except`) that succeeded and was healthy.
pub(super) fn last_healthy(revisions: &[Revision], except: u64) -> Option<Revision> {
    revisions
        .iter()
        .find(|r| r.number != except && r.healthy && r.outcome == Outcome::Succeeded)
        .cloned()
}

/// Revision `number` of `service`, or an error that lists the ones kept.
pub(super) fn find_revision(
    revisions: &[Revision],
    service: &str,
    number: u64,
) -> Result<Revision, RolloutError> {
    revisions
        .iter()
        .find(|r| r.number == number)
        .cloned()
        .ok_or_else(|| RolloutError::NoRevision {
            service: service.to_string(),
            revision: number,
            kept: kept_list(revisions),
        })
}

pub(super) fn kept_list(revisions: &[Revision]) -> String {
    if revisions.is_empty() {
        return "none".into();
    }
    revisions
        .iter()
        .map(|r| r.number.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn phase_word(phase: Phase) -> &'static str {
    match phase {
        Phase::Running => "running",
        Phase::Reverting => "reverting",
        Phase::Paused => "paused",
    }
}

pub(super) fn not_running(service: &str, observed: &[Observed]) -> RolloutError {
    let detail = if observed.is_empty() {
        "it has no containers".to_string()
    } else {
        let states: Vec<String> = observed
            .iter()
            .map(|c| format!("{} {}", c.name, c.status))
            .collect();
        format!("no running container: {}", states.join(", "))
    };
    RolloutError::NotRunning {
        service: service.to_string(),
        detail,
    }
}

/// start-first needs two containers of the service side by side: not possible
/// with a fixed name, a fixed host port or a fixed address.
pub fn start_first_possible(service: &Service) -> Result<(), StartFirstError> {
    let name = service.name.clone();
    if let Some(container) = &service.container_name {
        return Err(StartFirstError::ContainerName {
            service: name,
            container: container.clone(),
        });
    }
    if let Some(port) = service.ports.iter().find(|p| p.published.is_some()) {
        return Err(StartFirstError::HostPort {
            service: name,
            port: port.published.clone().unwrap_or_default(),
        });
    }
    if let Some((net, _)) = service
        .networks
        .iter()
        .find(|(_, n)| n.ipv4_address.is_some())
    {
        return Err(StartFirstError::Address {
            service: name,
            network: net.clone(),
        });
    }
    Ok(())
}

/// Why two containers of a service cannot run side by side (start-first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartFirstError {
    #[error("services.{service}.container_name is {container:?}: {HINT}")]
    ContainerName { service: String, container: String },
    #[error("services.{service}.ports: host port {port} is fixed: {HINT}")]
    HostPort { service: String, port: String },
    #[error("services.{service}.networks.{network}.ipv4_address is fixed: {HINT}")]
    Address { service: String, network: String },
}

const HINT: &str = "two containers of the service cannot run side by side, so start-first cannot work; use --order stop-first";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{Port, ServiceNetwork};

    pub(super) fn container(
        number: u32,
        revision: Option<u64>,
        hash: &str,
        running: bool,
    ) -> Observed {
        Observed {
            id: format!("id{number}"),
            name: format!("p-web-{number}"),
            number,
            revision,
            running,
            status: if running { "running" } else { "exited" }.into(),
            exit_code: None,
            health: None,
            health_output: None,
            has_healthcheck: false,
            hostname: String::new(),
            image: "web".into(),
            config_hash: Some(hash.into()),
            networks: Default::default(),
        }
    }

    pub(super) fn revision(
        number: u64,
        kind: Kind,
        hash: &str,
        outcome: Outcome,
        healthy: bool,
    ) -> Revision {
        Revision {
            number,
            service: "web".into(),
            kind,
            image: format!("web:{number}"),
            image_id: String::new(),
            overrides: Overrides::default(),
            config_hash: hash.into(),
            base_hash: hash.into(),
            previous: number.checked_sub(1).filter(|n| *n > 0),
            who: "u@h".into(),
            started_ms: 0,
            finished_ms: None,
            outcome,
            healthy,
            replicas: 2,
            replaced: 2,
            failures: 0,
            message: String::new(),
            spec: Service::default(),
        }
    }

    #[test]
    pub(super) fn the_active_revision_is_what_most_running_containers_carry() {
        let revisions = vec![
            revision(3, Kind::Rollout, "h3", Outcome::RolledBack, false),
            revision(2, Kind::Rollout, "h2", Outcome::Succeeded, true),
            revision(1, Kind::Baseline, "h1", Outcome::Succeeded, true),
        ];
        let mixed = vec![
            container(1, Some(2), "h2", true),
            container(2, Some(2), "h2", true),
            container(3, None, "h1", true),
            container(4, Some(3), "h3", false),
        ];
        assert_eq!(active_revision(&mixed, &revisions).unwrap().number, 2);
        // Unlabelled containers are the baseline with their config hash …
        let unlabelled = vec![container(1, None, "h1", true)];
        assert_eq!(active_revision(&unlabelled, &revisions).unwrap().number, 1);
        // … and a new baseline when they are not (recreated from a changed file).
        let recreated = vec![container(1, None, "h9", true)];
        assert!(active_revision(&recreated, &revisions).is_none());
        // A label the history no longer knows counts as unlabelled.
        let forgotten = vec![container(1, Some(77), "h1", true)];
        assert_eq!(active_revision(&forgotten, &revisions).unwrap().number, 1);
        assert!(active_revision(&[], &revisions).is_none());
    }

    #[test]
    pub(super) fn auto_revert_goes_to_the_last_healthy_revision() {
        let revisions = vec![
            revision(4, Kind::Rollout, "h4", Outcome::InProgress, false),
            revision(3, Kind::Rollout, "h3", Outcome::Succeeded, false),
            revision(2, Kind::Rollout, "h2", Outcome::Succeeded, true),
            revision(1, Kind::Baseline, "h1", Outcome::Succeeded, true),
        ];
        // Revision 3 ran before 4 but never was healthy: go to 2.
        assert_eq!(last_healthy(&revisions, 4).unwrap().number, 2);
        assert_eq!(kept_list(&revisions), "4, 3, 2, 1");
    }

    #[test]
    pub(super) fn start_first_needs_two_side_by_side() {
        let mut s = Service {
            name: "web".into(),
            ..Default::default()
        };
        assert!(start_first_possible(&s).is_ok());
        s.ports.push(Port {
            target: 80,
            published: None,
            host_ip: None,
            protocol: "tcp".into(),
        });
        assert!(start_first_possible(&s).is_ok(), "ephemeral ports are fine");
        s.ports[0].published = Some("8080".into());
        assert!(start_first_possible(&s)
            .unwrap_err()
            .to_string()
            .contains("8080"));
        s.ports.clear();
        s.networks.insert(
            "default".into(),
            ServiceNetwork {
                aliases: vec![],
                ipv4_address: Some("10.0.0.9".into()),
                ..Default::default()
            },
        );
        assert!(start_first_possible(&s)
            .unwrap_err()
            .to_string()
            .contains("ipv4_address"));
        s.networks.clear();
        s.container_name = Some("web".into());
        assert!(start_first_possible(&s)
            .unwrap_err()
            .to_string()
            .contains("container_name"));
    }
}
