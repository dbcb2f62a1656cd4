//! The compose model as Swarm services, the way `docker stack deploy` names
//! and labels them, so that `docker stack ps/services/rm` see what muster
//! deployed: `<stack>_<service>` services, `<stack>_<network>` overlay
//! networks, the `com.docker.stack.namespace` label on every object and
//! `com.docker.stack.image` on each service. Pure: no I/O (the container's
//! environment, command and mounts come from `engine::translate`, which read
//! the env files), so every rule here is pinned by unit tests.
//!
//! Also the compose keys Swarm does not apply ([`ignored_keys`]), each with
//! what muster does instead, for `up --swarm` to print before it deploys.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointPortConfig, EndpointPortConfigProtocolEnum,
    EndpointPortConfigPublishModeEnum, EndpointSpec, GenericResourcesInner,
    GenericResourcesInnerDiscreteResourceSpec, Limit, NetworkAttachmentConfig,
    NetworkCreateRequest, ResourceObject, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecPlacementPreferences,
    TaskSpecPlacementSpread, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};

use crate::compose::{Condition, Project, ResourceSpec, Service, UpdateConfig};

/// The label `docker stack` finds a stack's objects by.
pub const NAMESPACE: &str = "com.docker.stack.namespace";
/// The image as written in the compose file (docker stack deploy sets it too).
pub const IMAGE: &str = "com.docker.stack.image";

/// A compose key that Swarm does not apply, and what muster does instead.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ignored {
    pub service: String,
    /// The key, as a path (`build`, `depends_on.redis.condition`).
    pub key: String,
    /// What muster does instead.
    pub instead: String,
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "service {}: `{}` is not supported on Swarm: {}",
            self.service, self.key, self.instead
        )
    }
}

/// A service that cannot be deployed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "service {service}: no `image:` (it has only `build:`); Swarm cannot build: \
         build and tag the image, load or push it where every node gets it, and name it in `image:`"
    )]
    NoImage { service: String },
    #[error(
        "service {service}: ports[{index}] publishes {published:?}: a port range or an \
         address cannot go through the routing mesh; publish one port, e.g. \"8080:80\""
    )]
    Port {
        service: String,
        index: usize,
        published: String,
    },
}

/// The compose keys of `project` that Swarm ignores, in service order.
pub fn ignored_keys(project: &Project) -> Vec<Ignored> {
    let mut out = Vec::new();
    for (name, s) in &project.services {
        let mut add = |key: String, instead: &str| {
            out.push(Ignored {
                service: name.clone(),
                key,
                instead: instead.to_string(),
            })
        };
        if s.build.is_some() {
            add(
                "build".into(),
                "muster deploys the image `image:` names; build it and load or push it \
                 for every node first (`muster build`, then `docker push`)",
            );
        }
        if let Some(mode) = &s.network_mode {
            add(
                format!("network_mode ({mode})"),
                "ignored: tasks join the stack's overlay networks",
            );
        }
        if s.container_name.is_some() {
            add(
                "container_name".into(),
                "ignored: Swarm names each task <stack>_<service>.<slot>.<task id>",
            );
        }
        for (dep, edge) in &s.depends_on {
            if edge.condition == Condition::ServiceCompletedSuccessfully {
                add(
                    format!("depends_on.{dep}.condition (service_completed_successfully)"),
                    "a Swarm service runs until removed, it never completes: muster waits \
                     for service_started (its tasks running) instead",
                );
            }
            if edge.restart {
                add(
                    format!("depends_on.{dep}.restart"),
                    "ignored: Swarm restarts tasks itself",
                );
            }
        }
        let reserved_devices = s
            .deploy
            .as_ref()
            .and_then(|d| d.resources.as_ref())
            .and_then(|r| r.reservations.as_ref())
            .is_some_and(|r| !r.devices.is_empty());
        if reserved_devices {
            add(
                "deploy.resources.reservations.devices".into(),
                "ignored: a Swarm service has no device requests (use generic_resources)",
            );
        }
        if !s.runtime.gpus.is_empty() {
            add(
                "gpus".into(),
                "ignored: a Swarm service has no device requests (use generic_resources)",
            );
        }
        for (i, p) in s.ports.iter().enumerate() {
            if p.host_ip.is_some() {
                add(
                    format!("ports[{i}] host_ip"),
                    "ignored: the routing mesh publishes on every node's addresses",
                );
            }
        }
    }
    out
}

/// `<stack>_<name>`, Swarm's name for a stack's service, network or volume.
pub fn scoped(stack: &str, name: &str) -> String {
    format!("{stack}_{name}")
}

/// The Swarm name of a compose network key: its `name:` when set (or the
/// key of an external network), else `<stack>_<key>`.
pub fn network_name(project: &Project, key: &str) -> String {
    match project.networks.get(key) {
        Some(n) if n.name.is_some() => n.name.clone().unwrap_or_default(),
        Some(n) if n.external => key.to_string(),
        _ => scoped(&project.name, key),
    }
}

/// The overlay networks `up --swarm` creates (the ones not `external`):
/// compose key -> create request. Attachable, so that muster (and
/// `docker run --network`) can join them to reach the tasks.
pub fn networks(project: &Project) -> BTreeMap<String, NetworkCreateRequest> {
    let mut keys: Vec<String> = project
        .services
        .values()
        .flat_map(crate::engine::translate::service_network_keys)
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !project.networks.get(k).is_some_and(|n| n.external))
        .map(|key| {
            let declared = project.networks.get(&key);
            let mut labels: HashMap<String, String> = declared
                .map(|n| n.labels.clone().into_iter().collect())
                .unwrap_or_default();
            labels.insert(NAMESPACE.into(), project.name.clone());
            let request = NetworkCreateRequest {
                name: network_name(project, &key),
                driver: Some(
                    declared
                        .and_then(|n| n.driver.clone())
                        .unwrap_or_else(|| "overlay".into()),
                ),
                attachable: Some(true),
                internal: declared.map(|n| n.internal),
                labels: Some(labels),
                ..Default::default()
            };
            (key, request)
        })
        .collect()
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn limit(spec: &ResourceSpec) -> Limit {
    Limit {
        nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
        memory_bytes: spec.memory.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
        pids: spec.pids,
    }
}

fn update(u: &UpdateConfig) -> ServiceSpecUpdateConfig {
    ServiceSpecUpdateConfig {
        parallelism: u.parallelism.map(i64::from),
        delay: u.delay.map(nanos),
        failure_action: u.failure_action.as_deref().map(|a| match a {
            "pause" => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
            "continue" => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
            _ => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
        }),
        monitor: u.monitor.map(nanos),
        max_failure_ratio: u.max_failure_ratio,
        order: u.order.as_deref().map(|o| match o {
            "start-first" => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
            _ => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
        }),
    }
}

fn rollback(u: &UpdateConfig) -> ServiceSpecRollbackConfig {
    ServiceSpecRollbackConfig {
        parallelism: u.parallelism.map(i64::from),
        delay: u.delay.map(nanos),
        failure_action: u.failure_action.as_deref().map(|a| match a {
            "continue" => ServiceSpecRollbackConfigFailureActionEnum::CONTINUE,
            _ => ServiceSpecRollbackConfigFailureActionEnum::PAUSE,
        }),
        monitor: u.monitor.map(nanos),
        max_failure_ratio: u.max_failure_ratio,
        order: u.order.as_deref().map(|o| match o {
            "start-first" => ServiceSpecRollbackConfigOrderEnum::START_FIRST,
            _ => ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
        }),
    }
}

/// True for `deploy.mode: global`.
pub fn is_global(service: &Service) -> bool {
    service
        .deploy
        .as_ref()
        .and_then(|d| d.mode.as_deref())
        .is_some_and(|m| m == "global")
}

/// The Swarm service spec of `service`. `container` is the container the
/// single-host `up` would create for it (`engine::translate::container_spec`):
/// its command, entrypoint, environment (env files read), user, working
/// directory, healthcheck and mounts are the task's.
pub fn service_spec(
    project: &Project,
    service: &Service,
    container: &ContainerCreateBody,
) -> Result<ServiceSpec, SpecError> {
    let stack = &project.name;
    let image = service.image.clone().ok_or_else(|| SpecError::NoImage {
        service: service.name.clone(),
    })?;
    let mut labels: HashMap<String, String> = service.labels.clone().into_iter().collect();
    labels.insert(NAMESPACE.into(), stack.clone());
    labels.insert(IMAGE.into(), image.clone());
    let namespace: HashMap<String, String> = [(NAMESPACE.to_string(), stack.clone())].into();

    let mounts = container
        .host_config
        .as_ref()
        .and_then(|h| h.mounts.clone())
        .map(|mounts| {
            mounts
                .into_iter()
                .map(|mut m| {
                    if let Some(v) = m.volume_options.as_mut() {
                        v.labels = Some(namespace.clone());
                    }
                    m
                })
                .collect()
        });
    let container_spec = TaskSpecContainerSpec {
        image: Some(image),
        labels: Some(namespace.clone()),
        command: container.entrypoint.clone(),
        args: container.cmd.clone(),
        hostname: service.hostname.clone(),
        env: container.env.clone(),
        dir: container.working_dir.clone().filter(|d| !d.is_empty()),
        user: container.user.clone().filter(|u| !u.is_empty()),
        mounts,
        stop_signal: service.stop_signal.clone(),
        stop_grace_period: service.stop_grace_period.map(nanos),
        health_check: container.healthcheck.clone(),
        ..Default::default()
    };

    let deploy = service.deploy.clone().unwrap_or_default();
    let resources = deploy.resources.as_ref().map(|r| TaskSpecResources {
        limits: r.limits.as_ref().map(limit),
        reservations: r.reservations.as_ref().map(|s| {
            let l = limit(s);
            // docker/cli stack convert: each discrete_resource_spec as a
            // Swarm GenericResource reservation.
            let generic: Vec<GenericResourcesInner> = s
                .generic_resources
                .iter()
                .filter_map(|g| g.discrete_resource_spec.as_ref())
                .map(|d| GenericResourcesInner {
                    discrete_resource_spec: Some(GenericResourcesInnerDiscreteResourceSpec {
                        kind: Some(d.kind.clone()),
                        value: Some(d.value),
                    }),
                    ..Default::default()
                })
                .collect();
            ResourceObject {
                nano_cpus: l.nano_cpus,
                memory_bytes: l.memory_bytes,
                generic_resources: (!generic.is_empty()).then_some(generic),
            }
        }),
        ..Default::default()
    });
    let restart_policy = deploy
        .restart_policy
        .as_ref()
        .map(|r| TaskSpecRestartPolicy {
            condition: r.condition.as_deref().map(|c| match c {
                "none" => TaskSpecRestartPolicyConditionEnum::NONE,
                "on-failure" => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
                _ => TaskSpecRestartPolicyConditionEnum::ANY,
            }),
            delay: r.delay.map(nanos),
            max_attempts: r.max_attempts.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
            window: r.window.map(nanos),
        });
    let placement = (!deploy.placement_constraints.is_empty()
        || !deploy.placement_spread.is_empty())
    .then(|| TaskSpecPlacement {
        constraints: Some(deploy.placement_constraints.clone()).filter(|c| !c.is_empty()),
        preferences: Some(
            deploy
                .placement_spread
                .iter()
                .map(|s| TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread {
                        spread_descriptor: Some(s.clone()),
                    }),
                })
                .collect::<Vec<_>>(),
        )
        .filter(|p| !p.is_empty()),
        ..Default::default()
    });
    let networks = crate::engine::translate::service_network_keys(service)
        .into_iter()
        .filter(|key| !(service.network_mode.is_some() && key == "default"))
        .map(|key| {
            let mut aliases = vec![service.name.clone()];
            if let Some(d) = service.networks.get(&key) {
                aliases.extend(d.aliases.iter().cloned());
            }
            NetworkAttachmentConfig {
                target: Some(network_name(project, &key)),
                aliases: Some(aliases),
                ..Default::default()
            }
        })
        .collect::<Vec<_>>();
    // A service with `network_mode` has no network keys; it still joins the default overlay.
    let networks = if networks.is_empty() {
        vec![NetworkAttachmentConfig {
            target: Some(network_name(project, "default")),
            aliases: Some(vec![service.name.clone()]),
            ..Default::default()
        }]
    } else {
        networks
    };

    let mut ports = Vec::new();
    for (index, p) in service.ports.iter().enumerate() {
        let published = match &p.published {
            None => None,
            Some(text) => Some(text.parse::<u16>().map_err(|_| SpecError::Port {
                service: service.name.clone(),
                index,
                published: text.clone(),
            })?),
        };
        ports.push(EndpointPortConfig {
            protocol: Some(match p.protocol.as_str() {
                "udp" => EndpointPortConfigProtocolEnum::UDP,
                "sctp" => EndpointPortConfigProtocolEnum::SCTP,
                _ => EndpointPortConfigProtocolEnum::TCP,
            }),
            target_port: Some(i64::from(p.target)),
            published_port: published.map(i64::from),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::INGRESS),
            ..Default::default()
        });
    }

    let mode = if is_global(service) {
        ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        }
    } else {
        ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(service.replicas)),
            }),
            ..Default::default()
        }
    };

    Ok(ServiceSpec {
        name: Some(scoped(stack, &service.name)),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container_spec),
            resources,
            restart_policy,
            placement,
            networks: Some(networks),
            ..Default::default()
        }),
        mode: Some(mode),
        update_config: deploy.update_config.as_ref().map(update),
        rollback_config: deploy.rollback_config.as_ref().map(rollback),
        endpoint_spec: Some(EndpointSpec {
            ports: Some(ports).filter(|p| !p.is_empty()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{Deploy, Port, RestartPolicy};

    fn project() -> Project {
        let mut p = Project {
            name: "shop".into(),
            ..Default::default()
        };
        let api = Service {
            name: "api".into(),
            image: Some("acme/api:1".into()),
            replicas: 3,
            labels: [("team".to_string(), "a".to_string())].into(),
            ports: vec![Port {
                target: 80,
                published: Some("8080".into()),
                host_ip: None,
                protocol: "tcp".into(),
            }],
            deploy: Some(Deploy {
                replicas: Some(3),
                placement_constraints: vec!["node.role == worker".into()],
                restart_policy: Some(RestartPolicy {
                    condition: Some("on-failure".into()),
                    max_attempts: Some(2),
                    ..Default::default()
                }),
                update_config: Some(UpdateConfig {
                    parallelism: Some(1),
                    order: Some("start-first".into()),
                    delay: Some(Duration::from_secs(2)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.services.insert("api".into(), api);
        p
    }

    #[test]
    fn a_service_is_named_labelled_and_configured_as_docker_stack_deploy_does() {
        let p = project();
        let body = ContainerCreateBody {
            cmd: Some(vec!["serve".into()]),
            env: Some(vec!["A=1".into()]),
            ..Default::default()
        };
        let spec = service_spec(&p, &p.services["api"], &body).unwrap();
        assert_eq!(spec.name.as_deref(), Some("shop_api"));
        let labels = spec.labels.unwrap();
        assert_eq!(labels[NAMESPACE], "shop");
        assert_eq!(labels[IMAGE], "acme/api:1");
        assert_eq!(labels["team"], "a");
        assert_eq!(
            spec.mode.unwrap().replicated.unwrap().replicas,
            Some(3),
            "deploy.replicas"
        );
        let task = spec.task_template.unwrap();
        let c = task.container_spec.unwrap();
        assert_eq!(c.args, Some(vec!["serve".to_string()]));
        assert_eq!(c.env, Some(vec!["A=1".to_string()]));
        assert_eq!(c.labels.unwrap()[NAMESPACE], "shop");
        assert_eq!(
            task.placement.unwrap().constraints,
            Some(vec!["node.role == worker".to_string()])
        );
        let restart = task.restart_policy.unwrap();
        assert_eq!(
            restart.condition,
            Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE)
        );
        assert_eq!(restart.max_attempts, Some(2));
        let nets = task.networks.unwrap();
        assert_eq!(nets[0].target.as_deref(), Some("shop_default"));
        assert_eq!(nets[0].aliases, Some(vec!["api".to_string()]));
        let update = spec.update_config.unwrap();
        assert_eq!(update.parallelism, Some(1));
        assert_eq!(update.delay, Some(2_000_000_000));
        assert_eq!(
            update.order,
            Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST)
        );
        let port = &spec.endpoint_spec.unwrap().ports.unwrap()[0];
        assert_eq!(
            (port.target_port, port.published_port),
            (Some(80), Some(8080))
        );
        assert_eq!(
            port.publish_mode,
            Some(EndpointPortConfigPublishModeEnum::INGRESS)
        );
    }

    #[test]
    fn global_mode_networks_and_bad_ports() {
        let mut p = project();
        let api = p.services.get_mut("api").unwrap();
        api.deploy.as_mut().unwrap().mode = Some("global".into());
        let spec = service_spec(&p, &p.services["api"], &Default::default()).unwrap();
        let mode = spec.mode.unwrap();
        assert!(mode.global.is_some() && mode.replicated.is_none());

        let nets = networks(&p);
        let default = &nets["default"];
        assert_eq!(default.name, "shop_default");
        assert_eq!(default.driver.as_deref(), Some("overlay"));
        assert_eq!(default.attachable, Some(true));
        assert_eq!(default.labels.as_ref().unwrap()[NAMESPACE], "shop");

        p.services.get_mut("api").unwrap().ports[0].published = Some("8080-8081".into());
        let err = service_spec(&p, &p.services["api"], &Default::default()).unwrap_err();
        assert!(err.to_string().contains("ports[0]"), "{err}");
        p.services.get_mut("api").unwrap().image = None;
        let err = service_spec(&p, &p.services["api"], &Default::default()).unwrap_err();
        assert!(err.to_string().contains("no `image:`"), "{err}");
    }

    /// docker/cli stack convert (`convertResources`): each
    /// `discrete_resource_spec` is a Swarm GenericResource reservation; device
    /// requests (`gpus`, reservations.devices) have no Swarm field.
    #[test]
    fn generic_resources_are_reserved_and_device_requests_named_as_ignored() {
        let mut p = project();
        let api = p.services.get_mut("api").unwrap();
        api.runtime.gpus = vec![crate::compose::DeviceRequest {
            count: -1,
            ..Default::default()
        }];
        api.deploy.as_mut().unwrap().resources = Some(crate::compose::Resources {
            limits: None,
            reservations: Some(ResourceSpec {
                memory: Some(1 << 20),
                generic_resources: vec![crate::compose::GenericResource {
                    discrete_resource_spec: Some(crate::compose::DiscreteResource {
                        kind: "gpu".into(),
                        value: 2,
                    }),
                }],
                ..Default::default()
            }),
        });
        let spec = service_spec(&p, &p.services["api"], &Default::default()).unwrap();
        let reservations = spec
            .task_template
            .and_then(|t| t.resources)
            .and_then(|r| r.reservations)
            .expect("reservations");
        assert_eq!(reservations.memory_bytes, Some(1 << 20));
        let generic = reservations.generic_resources.expect("generic resources");
        let discrete = generic[0].discrete_resource_spec.clone().expect("discrete");
        assert_eq!(
            (discrete.kind.as_deref(), discrete.value),
            (Some("gpu"), Some(2))
        );
        let keys: Vec<String> = ignored_keys(&p).iter().map(|i| i.key.clone()).collect();
        assert_eq!(keys, ["gpus"]);
    }

    #[test]
    fn keys_swarm_ignores_are_named_with_what_muster_does_instead() {
        let mut p = project();
        let api = p.services.get_mut("api").unwrap();
        api.container_name = Some("the-api".into());
        api.network_mode = Some("host".into());
        api.build = Some(Default::default());
        api.depends_on.insert(
            "migrate".into(),
            crate::compose::Dependency {
                condition: Condition::ServiceCompletedSuccessfully,
                required: true,
                restart: false,
                implicit: false,
            },
        );
        let keys: Vec<String> = ignored_keys(&p).iter().map(|i| i.key.clone()).collect();
        assert_eq!(
            keys,
            [
                "build",
                "network_mode (host)",
                "container_name",
                "depends_on.migrate.condition (service_completed_successfully)"
            ]
        );
        let text = ignored_keys(&p)[3].to_string();
        assert!(
            text.starts_with("service api:") && text.contains("service_started"),
            "{text}"
        );
    }
}
