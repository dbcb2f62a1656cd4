//! Docker Compose's labels, so `docker compose ps/logs/down` see a
//! muster-started stack as a normal compose project, and the config hash
//! that decides whether a container must be recreated.

use std::collections::HashMap;

use crate::compose::{Project, Service};

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const VERSION: &str = "com.docker.compose.version";
pub const IMAGE: &str = "com.docker.compose.image";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";
/// muster's own marker: which muster version created the object.
pub const MUSTER: &str = "io.muster.version";

/// The Compose version muster's labels imitate (what `docker compose ls` prints).
pub const COMPOSE_VERSION: &str = "2.29.0";

/// `label=com.docker.compose.project=NAME`, as an engine filter value.
pub fn project_filter(project: &str) -> String {
    format!("{PROJECT}={project}")
}

/// The `com.docker.compose.depends_on` value: `svc:condition:restart,…` as Compose writes it.
pub fn depends_on_value(service: &Service) -> String {
    service
        .depends_on
        .iter()
        .map(|(name, dep)| {
            let cond = match dep.condition {
                crate::compose::Condition::ServiceStarted => "service_started",
                crate::compose::Condition::ServiceHealthy => "service_healthy",
                crate::compose::Condition::ServiceCompletedSuccessfully => {
                    "service_completed_successfully"
                }
            };
            format!("{name}:{cond}:{}", dep.restart)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a `com.docker.compose.depends_on` value back into service names.
pub fn parse_depends_on(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|part| part.split(':').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Labels of container `number` of `service`.
pub fn container_labels(
    project: &Project,
    service: &Service,
    number: u32,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = service
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(PROJECT.into(), project.name.clone());
    labels.insert(SERVICE.into(), service.name.clone());
    labels.insert(CONTAINER_NUMBER.into(), number.to_string());
    labels.insert(ONEOFF.into(), "False".into());
    labels.insert(CONFIG_HASH.into(), config_hash(service));
    labels.insert(DEPENDS_ON.into(), depends_on_value(service));
    labels.insert(
        CONFIG_FILES.into(),
        project
            .config_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    labels.insert(
        WORKING_DIR.into(),
        project.working_dir.display().to_string(),
    );
    labels.insert(VERSION.into(), COMPOSE_VERSION.into());
    if let Some(image) = &service.image {
        labels.insert(IMAGE.into(), image.clone());
    }
    labels.insert(MUSTER.into(), env!("CARGO_PKG_VERSION").into());
    labels
}

/// Labels of a project network (`key` is the name in the compose file).
pub fn network_labels(project: &str, key: &str) -> HashMap<String, String> {
    HashMap::from([
        (PROJECT.to_string(), project.to_string()),
        (NETWORK.to_string(), key.to_string()),
        (VERSION.to_string(), COMPOSE_VERSION.to_string()),
    ])
}

/// Labels of a project volume (`key` is the name in the compose file).
pub fn volume_labels(project: &str, key: &str) -> HashMap<String, String> {
    HashMap::from([
        (PROJECT.to_string(), project.to_string()),
        (VOLUME.to_string(), key.to_string()),
        (VERSION.to_string(), COMPOSE_VERSION.to_string()),
    ])
}

/// `com.docker.compose.config-hash` of the service, computed as Docker
/// Compose v2+ computes it (see [`crate::compose::hash`]): it leaves out the
/// replica count, `depends_on`, profiles, build, pull_policy and every `x-*`
/// key (muster's `x-muster` included), so `docker compose up` keeps a
/// container muster started, and the reverse.
pub fn config_hash(service: &Service) -> String {
    crate::compose::hash::config_hash(service)
}

/// Whether an existing container still matches the service: the same config
/// hash and, when the image's current ID is known, the same image. A rebuilt
/// (or re-pulled) image keeps its name, so the config hash cannot see it; the
/// container's image ID does.
pub fn is_current(
    container_hash: Option<&str>,
    wanted_hash: &str,
    container_image_id: &str,
    wanted_image_id: Option<&str>,
) -> bool {
    container_hash == Some(wanted_hash)
        && match wanted_image_id {
            Some(id) if !container_image_id.is_empty() => id == container_image_id,
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{Condition, Dependency};

    #[test]
    fn hash_ignores_replicas_and_depends_on_but_not_the_image() {
        let mut a = Service {
            name: "a".into(),
            image: Some("x:1".into()),
            replicas: 1,
            ..Default::default()
        };
        let h = config_hash(&a);
        a.replicas = 3;
        a.depends_on.insert(
            "b".into(),
            Dependency {
                condition: Condition::ServiceHealthy,
                required: true,
                restart: true,
                implicit: false,
            },
        );
        assert_eq!(config_hash(&a), h);
        assert_eq!(depends_on_value(&a), "b:service_healthy:true");
        assert_eq!(parse_depends_on(&depends_on_value(&a)), vec!["b"]);
        a.image = Some("x:2".into());
        assert_ne!(config_hash(&a), h);
    }

    #[test]
    fn a_rebuilt_image_under_the_same_name_makes_the_container_stale() {
        let s = Service {
            name: "a".into(),
            image: Some("proj-a".into()),
            replicas: 1,
            ..Default::default()
        };
        let h = config_hash(&s);
        assert!(is_current(Some(&h), &h, "sha256:old", Some("sha256:old")));
        assert!(!is_current(Some(&h), &h, "sha256:old", Some("sha256:new")));
        assert!(!is_current(
            Some("other"),
            &h,
            "sha256:old",
            Some("sha256:old")
        ));
        // The image's ID unknown (not present): the hash decides.
        assert!(is_current(Some(&h), &h, "sha256:old", None));
    }
}
