//! One entry of `services:` -> [`Service`]: the walk over its fields, plus
//! `env_file:` and the service's `networks:`. The larger syntaxes
//! (build, ports, volumes, dependencies, healthcheck, deploy, x-muster) have their own
//! files; this one puts their results together.

use std::collections::BTreeMap;
use std::path::Path;

use super::build::build;
use super::dependencies::{add_implicit_dependencies, depends_on};
use super::deploy::deploy;
use super::healthcheck::healthcheck;
use super::mounts::volume_mounts;
use super::ports::ports;
use super::values::{
    absolute_path, command, err, key_values, labels, number, opt_bool, opt_duration, opt_string,
    strict_list, string, string_list, R,
};
use super::xmuster::muster;
use crate::compose::model::*;
use crate::compose::yaml::{Node, Value};

pub(super) fn service(
    name: &str,
    node: &Node,
    path: &str,
    project_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> R<Service> {
    if node.is_null() {
        return Ok(Service {
            name: name.to_string(),
            replicas: 1,
            ..Default::default()
        });
    }
    if node.entries().is_none() {
        return Err(err(
            node,
            path,
            format!("a service is a mapping, found {}", node.kind()),
        ));
    }
    let f = |key: &str| format!("{path}.{key}");
    let mut svc = Service {
        name: name.to_string(),
        image: opt_string(node.get("image"), &f("image"))?,
        command: command(node.get("command"), &f("command"))?,
        entrypoint: command(node.get("entrypoint"), &f("entrypoint"))?,
        restart: opt_string(node.get("restart"), &f("restart"))?,
        stop_grace_period: opt_duration(node.get("stop_grace_period"), &f("stop_grace_period"))?,
        stop_signal: opt_string(node.get("stop_signal"), &f("stop_signal"))?,
        user: opt_string(node.get("user"), &f("user"))?,
        working_dir: opt_string(node.get("working_dir"), &f("working_dir"))?,
        container_name: opt_string(node.get("container_name"), &f("container_name"))?,
        hostname: opt_string(node.get("hostname"), &f("hostname"))?,
        network_mode: opt_string(node.get("network_mode"), &f("network_mode"))?,
        replicas: 1,
        ..Default::default()
    };
    if let Some(restart) = &svc.restart {
        let ok = matches!(
            restart.as_str(),
            "no" | "always" | "unless-stopped" | "on-failure"
        ) || restart
            .strip_prefix("on-failure:")
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if !ok {
            return Err(err(
                node.get("restart").unwrap_or(node),
                &f("restart"),
                format!("invalid restart policy {restart:?} (expected no, always, on-failure[:N] or unless-stopped)"),
            ));
        }
    }
    if let Some(p) = node.get("pull_policy").filter(|p| !p.is_null()) {
        let text = string(p, &f("pull_policy"))?;
        svc.pull_policy =
            Some(PullPolicy::parse(&text).map_err(|e| err(p, &f("pull_policy"), e.to_string()))?);
    }
    if let Some(b) = node.get("build") {
        svc.build = build(b, &f("build"), project_dir, lookup)?;
    }
    // env_file values first, `environment` over them, as `docker compose config` shows it.
    if let Some(ef) = node.get("env_file") {
        svc.env_file = env_files(ef, &f("env_file"), project_dir)?;
        for (i, file) in svc.env_file.iter().enumerate() {
            if !file.path.is_file() {
                if file.required {
                    return Err(err(
                        ef,
                        &format!("{}[{i}]", f("env_file")),
                        format!("env file {} not found", file.path.display()),
                    ));
                }
                continue;
            }
            let env: std::collections::HashMap<String, String> = std::collections::HashMap::new();
            let pairs = crate::compose::env::read_dotenv(&file.path, &env)
                .map_err(|m| err(ef, &format!("{}[{i}]", f("env_file")), m.to_string()))?;
            for (k, v) in pairs {
                svc.environment.insert(k, Some(v));
            }
        }
    }
    if let Some(e) = node.get("environment") {
        svc.environment
            .extend(key_values(e, &f("environment"), lookup)?);
    }
    if let Some(l) = node.get("label_file") {
        svc.label_file = string_list(l, &f("label_file"))?
            .iter()
            .map(|p| Path::new(&absolute_path(project_dir, p)).to_path_buf())
            .collect();
        svc.labels = label_files(&svc.label_file, l, &f("label_file"))?;
    }
    if let Some(l) = node.get("labels") {
        svc.labels.extend(labels(l, &f("labels"))?);
    }
    if let Some(p) = node.get("ports") {
        svc.ports = ports(p, &f("ports"))?;
    }
    if let Some(v) = node.get("volumes") {
        svc.volumes = volume_mounts(v, &f("volumes"), project_dir)?;
        if let Value::Seq(items) = &v.value {
            svc.written.short_volumes = items.iter().map(|i| i.as_scalar().is_some()).collect();
        }
    }
    if let Some(n) = node.get("networks") {
        svc.networks = service_networks(n, &f("networks"))?;
        svc.written.null_networks = match &n.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| i.as_scalar().map(str::to_string))
                .collect(),
            Value::Map(entries) => entries
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.name.clone())
                .collect(),
            _ => vec![],
        };
    }
    svc.runtime = super::runtime::runtime(node, path)?;
    for (key, into) in [("secrets", &mut svc.secrets), ("configs", &mut svc.configs)] {
        if let Some(n) = node.get(key) {
            *into = super::objects::refs(n, &f(key))?;
        }
    }
    // compose-go transform/defaults.go defaultSecretMount: a service's secret
    // without a target gets `/run/secrets/<source>` in the model (so in
    // `config` and the config hash); configs get no default.
    for secret in svc.secrets.iter_mut().filter(|s| s.target.is_none()) {
        secret.target = Some(format!("/run/secrets/{}", secret.source));
    }
    if let Some(d) = node.get("depends_on") {
        svc.depends_on = depends_on(d, &f("depends_on"))?;
    }
    if let Some(h) = node.get("healthcheck") {
        svc.healthcheck = healthcheck(h, &f("healthcheck"))?;
        svc.written.healthcheck_fields = h
            .entries()
            .map(|e| e.iter().map(|(k, _)| k.name.clone()).collect())
            .unwrap_or_default();
    }
    if let Some(p) = node.get("profiles") {
        svc.profiles = strict_list(p, &f("profiles"))?;
    }
    if let Some(l) = node.get("links") {
        svc.links = strict_list(l, &f("links"))?;
    }
    if let Some(v) = node.get("volumes_from") {
        svc.volumes_from = strict_list(v, &f("volumes_from"))?;
    }
    if let Some(d) = node.get("deploy") {
        svc.deploy = deploy(d, &f("deploy"))?;
    }
    let scale = match node.get("scale") {
        Some(s) if !s.is_null() => Some(number::<u32>(s, &f("scale"), "a whole number")?),
        _ => None,
    };
    let deploy_replicas = svc.deploy.as_ref().and_then(|d| d.replicas);
    if let (Some(s), Some(r)) = (scale, deploy_replicas) {
        if s != r {
            return Err(err(
                node.get("scale").unwrap_or(node),
                &f("scale"),
                format!("scale ({s}) and deploy.replicas ({r}) differ; set one of them"),
            ));
        }
    }
    svc.replicas = deploy_replicas.or(scale).unwrap_or(1);
    if let Some(m) = node.get("x-muster") {
        svc.muster = Some(muster(m, &f("x-muster"))?);
    }
    if let Some(entries) = node.entries() {
        for (k, v) in entries {
            if k.name.starts_with("x-") && k.name != "x-muster" {
                svc.extensions.insert(k.name.clone(), v.to_json());
            }
        }
    }
    add_implicit_dependencies(&mut svc);
    Ok(svc)
}

/// The labels of `label_file:` files, later files over earlier ones; a
/// `${VAR}` in a file reads the labels read so far (compose-go
/// types/project.go WithServicesLabelsResolved). A missing file is an error.
fn label_files(
    files: &[std::path::PathBuf],
    node: &Node,
    path: &str,
) -> R<BTreeMap<String, String>> {
    let mut out: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (i, file) in files.iter().enumerate() {
        let at = || format!("{path}[{i}]");
        let node = match &node.value {
            Value::Seq(items) => items.get(i).unwrap_or(node),
            _ => node,
        };
        if !file.is_file() {
            return Err(err(
                node,
                &at(),
                format!("label file {} not found", file.display()),
            ));
        }
        let pairs = crate::compose::env::read_dotenv(file, &out)
            .map_err(|m| err(node, &at(), m.to_string()))?;
        out.extend(pairs);
    }
    Ok(out.into_iter().collect())
}

fn env_files(node: &Node, path: &str, project_dir: &Path) -> R<Vec<EnvFile>> {
    let one = |n: &Node, p: &str| -> R<EnvFile> {
        match &n.value {
            Value::Scalar { text, .. } => Ok(EnvFile {
                path: Path::new(&absolute_path(project_dir, text)).to_path_buf(),
                required: true,
            }),
            Value::Map(_) => {
                let file = n
                    .get("path")
                    .ok_or_else(|| err(n, p, "env_file entry needs `path:`"))?;
                Ok(EnvFile {
                    path: Path::new(&absolute_path(
                        project_dir,
                        &string(file, &format!("{p}.path"))?,
                    ))
                    .to_path_buf(),
                    required: opt_bool(n.get("required"), &format!("{p}.required"), true)?,
                })
            }
            _ => Err(err(n, p, "expected a path or { path, required }")),
        }
    };
    match &node.value {
        Value::Null => Ok(vec![]),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| one(n, &format!("{path}[{i}]")))
            .collect(),
        _ => Ok(vec![one(node, path)?]),
    }
}

fn service_networks(node: &Node, path: &str) -> R<BTreeMap<String, ServiceNetwork>> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Null => {}
        Value::Seq(_) => {
            for n in strict_list(node, path)? {
                out.insert(n, ServiceNetwork::default());
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let p = format!("{path}.{}", k.name);
                let net = if v.is_null() {
                    ServiceNetwork::default()
                } else {
                    ServiceNetwork {
                        aliases: match v.get("aliases") {
                            Some(a) => strict_list(a, &format!("{p}.aliases"))?,
                            None => vec![],
                        },
                        ipv4_address: opt_string(
                            v.get("ipv4_address"),
                            &format!("{p}.ipv4_address"),
                        )?,
                        ipv6_address: opt_string(
                            v.get("ipv6_address"),
                            &format!("{p}.ipv6_address"),
                        )?,
                        mac_address: opt_string(v.get("mac_address"), &format!("{p}.mac_address"))?,
                    }
                };
                out.insert(k.name.clone(), net);
            }
        }
        Value::Scalar { .. } => return Err(err(node, path, "expected a list or a mapping")),
    }
    Ok(out)
}
