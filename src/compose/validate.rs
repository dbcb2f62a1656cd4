//! Checks after normalisation (undefined or profile-disabled dependencies, a service
//! with neither image nor build, cycles) and warnings for unknown fields, with a
//! "did you mean" hint for misspelt known ones (Compose is strict about unknown
//! fields; muster only warns, so newer Compose keys never break it).

use super::discover::Setup;
use super::error::ComposeError;
use super::model::Project;
use super::yaml::{Node, Pos, Value};
use super::Warning;

pub fn push_warning(warnings: &mut Vec<Warning>, message: String) {
    tracing::warn!("{message}");
    warnings.push(Warning { message });
}

/// Every key the Compose specification defines for a service.
pub const SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "pull_refresh_after",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];
/// The service keys muster reads into its model and applies (or acts on, as
/// `depends_on`, `profiles`, `extends`); every other key of [`SERVICE_KEYS`]
/// is warned about when set, naming it, instead of being dropped silently.
pub const APPLIED_SERVICE_KEYS: &[&str] = &[
    "platform",
    "blkio_config",
    "annotations",
    "build",
    "external_links",
    "cgroup",
    "cgroup_parent",
    "configs",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "device_cgroup_rules",
    "devices",
    "domainname",
    "expose",
    "ipc",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "runtime",
    "secrets",
    "storage_opt",
    "userns_mode",
    "uts",
    "cap_add",
    "cap_drop",
    "command",
    "container_name",
    "depends_on",
    "deploy",
    "dns",
    "dns_opt",
    "dns_search",
    "entrypoint",
    "env_file",
    "environment",
    "extends",
    "extra_hosts",
    "group_add",
    "gpus",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "label_file",
    "labels",
    "links",
    "logging",
    "network_mode",
    "networks",
    "ports",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "scale",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "volumes",
    "volumes_from",
    "working_dir",
];
pub const TOP_KEYS: &[&str] = &[
    "version", "name", "include", "services", "networks", "volumes", "configs", "secrets", "models",
];
pub const HEALTHCHECK_KEYS: &[&str] = &[
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "start_interval",
    "disable",
];
/// Every key the Compose specification defines under `build:`.
pub const BUILD_KEYS: &[&str] = &[
    "context",
    "dockerfile",
    "dockerfile_inline",
    "entitlements",
    "args",
    "ssh",
    "cache_from",
    "cache_to",
    "additional_contexts",
    "extra_hosts",
    "isolation",
    "privileged",
    "labels",
    "no_cache",
    "no_cache_filter",
    "pull",
    "network",
    "secrets",
    "shm_size",
    "tags",
    "target",
    "ulimits",
    "platforms",
    "provenance",
    "sbom",
];

/// Keys of `build:` that the engine's classic build API (`POST /build`) has
/// no parameter for: BuildKit-only features and build-time privileges.
pub const UNAPPLIED_BUILD_KEYS: &[&str] = &[
    "entitlements",
    "ssh",
    "cache_to",
    "additional_contexts",
    "isolation",
    "privileged",
    "no_cache_filter",
    "secrets",
    "ulimits",
    "provenance",
    "sbom",
];

pub const DEPENDS_ON_KEYS: &[&str] = &["condition", "required", "restart"];
pub const DEPLOY_KEYS: &[&str] = &[
    "mode",
    "replicas",
    "labels",
    "update_config",
    "rollback_config",
    "resources",
    "restart_policy",
    "placement",
    "endpoint_mode",
];

/// The closest known key within a small edit distance, if any.
pub fn suggest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (unknown.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (strsim::levenshtein(unknown, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn check_keys(node: &Node, known: &[&str], path: &str, warnings: &mut Vec<Warning>) {
    let Some(entries) = node.entries() else {
        return;
    };
    for (k, _) in entries {
        if k.name.starts_with("x-") || known.contains(&k.name.as_str()) {
            continue;
        }
        let hint = suggest(&k.name, known)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        let at = if path.is_empty() {
            k.name.clone()
        } else {
            format!("{path}.{}", k.name)
        };
        push_warning(
            warnings,
            format!("{}: unknown field `{at}` ignored{hint}", k.pos),
        );
    }
}

/// Long-syntax volume options the Engine API's `Mounts` cannot apply, or
/// applies only from some API version on (older engines drop them silently).
fn warn_volume_options(svc: &Node, path: &str, warnings: &mut Vec<Warning>) {
    let Some(Value::Seq(items)) = svc.get("volumes").map(|v| &v.value) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let at = |section: &str, key: &str| {
            item.get(section)
                .and_then(|s| s.get(key))
                .filter(|n| !n.is_null())
        };
        if let Some(n) = at("bind", "selinux") {
            push_warning(
                warnings,
                format!(
                    "{}: `{path}.volumes[{i}].bind.selinux` is not applied: muster mounts through \
                     the Engine API's Mounts, which have no SELinux relabel option",
                    n.pos
                ),
            );
        }
        for (section, key, api) in [
            ("volume", "subpath", "1.45"),
            ("bind", "create_host_path", "1.42"),
        ] {
            if let Some(n) = at(section, key) {
                if section == "bind" && n.as_scalar() != Some("true") {
                    continue;
                }
                push_warning(
                    warnings,
                    format!(
                        "{}: `{path}.volumes[{i}].{section}.{key}` is applied only by Docker Engine \
                         API {api} or newer; an older engine ignores it",
                        n.pos
                    ),
                );
            }
        }
    }
}

pub fn warn_unknown_fields(tree: &Node, warnings: &mut Vec<Warning>) {
    check_keys(tree, TOP_KEYS, "", warnings);
    let Some(services) = tree.get("services").and_then(Node::entries) else {
        return;
    };
    for (name, svc) in services {
        let path = format!("services.{}", name.name);
        check_keys(svc, SERVICE_KEYS, &path, warnings);
        for (k, v) in svc.entries().unwrap_or(&[]) {
            let key = k.name.as_str();
            if v.is_null() || !SERVICE_KEYS.contains(&key) || APPLIED_SERVICE_KEYS.contains(&key) {
                continue;
            }
            push_warning(
                warnings,
                format!(
                    "{}: `{path}.{key}` is not applied: muster does not model this Compose key yet, \
                     so the container it creates will not have it (docker compose's would)",
                    k.pos
                ),
            );
        }
        if let Some(h) = svc.get("healthcheck") {
            check_keys(
                h,
                HEALTHCHECK_KEYS,
                &format!("{path}.healthcheck"),
                warnings,
            );
        }
        if let Some(d) = svc.get("deploy") {
            check_keys(d, DEPLOY_KEYS, &format!("{path}.deploy"), warnings);
            let generic = d
                .get("resources")
                .and_then(|r| r.get("reservations"))
                .and_then(|r| r.get("generic_resources"))
                .filter(|g| !g.is_null());
            if let Some(g) = generic {
                push_warning(
                    warnings,
                    format!(
                        "{}: `{path}.deploy.resources.reservations.generic_resources` is applied \
                         by `up --swarm` only: the Engine API has no per-container field for it, \
                         so `up` on one host (as docker compose) does not reserve it",
                        g.pos
                    ),
                );
            }
        }
        if let Some(b) = svc.get("build") {
            let build_path = format!("{path}.build");
            check_keys(b, BUILD_KEYS, &build_path, warnings);
            for (k, v) in b.entries().unwrap_or(&[]) {
                if UNAPPLIED_BUILD_KEYS.contains(&k.name.as_str()) && !v.is_null() {
                    push_warning(
                        warnings,
                        format!(
                            "{}: `{build_path}.{}` is not applied: the Docker engine's build API \
                             (the classic builder muster uses) has no such option",
                            k.pos, k.name
                        ),
                    );
                }
            }
            if let Some(p) = b.get("platforms").and_then(|p| match &p.value {
                Value::Seq(items) if items.len() > 1 => Some(p),
                _ => None,
            }) {
                push_warning(
                    warnings,
                    format!(
                        "{}: `{build_path}.platforms`: muster builds for the first platform only",
                        p.pos
                    ),
                );
            }
        }
        warn_volume_options(svc, &path, warnings);
        if let Some(deps) = svc.get("depends_on").and_then(Node::entries) {
            for (dep, v) in deps {
                check_keys(
                    v,
                    DEPENDS_ON_KEYS,
                    &format!("{path}.depends_on.{}", dep.name),
                    warnings,
                );
            }
        }
    }
}

/// Where `services.NAME` mentions `dep` (depends_on key, links, volumes_from, network_mode).
fn dependency_pos(tree: &Node, service: &str, dep: &str) -> Pos {
    let svc = tree.get("services").and_then(|s| s.get(service));
    let Some(svc) = svc else {
        return tree.pos.clone();
    };
    if let Some(d) = svc.get("depends_on") {
        match &d.value {
            Value::Map(entries) => {
                if let Some((k, _)) = entries.iter().find(|(k, _)| k.name == dep) {
                    return k.pos.clone();
                }
            }
            Value::Seq(items) => {
                if let Some(i) = items.iter().find(|i| i.as_scalar() == Some(dep)) {
                    return i.pos.clone();
                }
            }
            _ => {}
        }
    }
    for key in ["links", "volumes_from"] {
        if let Some(Value::Seq(items)) = svc.get(key).map(|n| &n.value) {
            if let Some(i) = items.iter().find(|i| {
                i.as_scalar()
                    .is_some_and(|s| s.split(':').next() == Some(dep))
            }) {
                return i.pos.clone();
            }
        }
    }
    if let Some(n) = svc.get("network_mode") {
        return n.pos.clone();
    }
    svc.pos.clone()
}

pub fn check(
    project: &Project,
    tree: &Node,
    _setup: &Setup,
    warnings: &mut Vec<Warning>,
) -> Result<(), ComposeError> {
    let services = tree.get("services").and_then(Node::entries).unwrap_or(&[]);
    for (k, svc) in services {
        let has = |key: &str| svc.get(key).is_some_and(|n| !n.is_null());
        if !has("image") && !has("build") {
            return Err(ComposeError::NoImageOrBuild {
                pos: k.pos.clone(),
                service: k.name.clone(),
            });
        }
    }
    for (name, svc) in &project.services {
        for (dep, edge) in &svc.depends_on {
            if project.services.contains_key(dep) {
                continue;
            }
            let disabled = project.disabled_services.contains(dep);
            if !edge.required {
                push_warning(
                    warnings,
                    format!(
                        "services.{name}.depends_on.{dep}: {} service {dep:?} skipped (required: false)",
                        if disabled { "disabled" } else { "undefined" }
                    ),
                );
                continue;
            }
            let pos = dependency_pos(tree, name, dep);
            if disabled {
                let profiles = services
                    .iter()
                    .find(|(k, _)| &k.name == dep)
                    .and_then(|(_, n)| n.get("profiles"))
                    .and_then(|p| match &p.value {
                        Value::Seq(items) => Some(
                            items
                                .iter()
                                .filter_map(Node::as_scalar)
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        _ => None,
                    })
                    .unwrap_or_default();
                return Err(ComposeError::DisabledDependency {
                    pos,
                    service: name.clone(),
                    dependency: dep.clone(),
                    profiles,
                });
            }
            return Err(ComposeError::UnknownDependency {
                pos,
                service: name.clone(),
                dependency: dep.clone(),
            });
        }
    }
    if let Err(super::graph::GraphError::Cycle(cycle)) = super::graph::Graph::new_quiet(project) {
        let mut names = cycle.split(" -> ");
        let service = names.next().unwrap_or_default().to_string();
        let next = names.next().unwrap_or_default();
        return Err(ComposeError::Cycle {
            pos: dependency_pos(tree, &service, next),
            service,
            cycle,
        });
    }
    Ok(())
}
