//! The merged tree -> the [`model`](super::model) types: short and long syntaxes
//! folded into one shape, durations parsed, Docker's healthcheck defaults filled in,
//! relative paths made absolute, implicit dependencies added, profiles applied.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::discover::{clean, normalize_project_name, valid_project_name, Setup};
use super::error::ComposeError;
use super::model::*;
use super::xmuster::{GraceSetting, MusterService, ProbeSpec};
use super::yaml::{Node, Value};
use super::Warning;

type R<T> = Result<T, ComposeError>;

fn err(node: &Node, path: &str, message: impl Into<String>) -> ComposeError {
    ComposeError::Field {
        pos: node.pos.clone(),
        path: path.to_string(),
        message: message.into(),
    }
}

/// A scalar as a string (numbers and booleans as written).
pub fn string(node: &Node, path: &str) -> R<String> {
    match &node.value {
        Value::Scalar { text, .. } => Ok(text.clone()),
        _ => Err(err(
            node,
            path,
            format!("expected a string, found {}", node.kind()),
        )),
    }
}

fn opt_string(node: Option<&Node>, path: &str) -> R<Option<String>> {
    match node {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(n) => string(n, path).map(Some),
    }
}

fn boolean(node: &Node, path: &str) -> R<bool> {
    match node.as_scalar() {
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        _ => Err(err(node, path, "expected true or false")),
    }
}

fn opt_bool(node: Option<&Node>, path: &str, default: bool) -> R<bool> {
    match node {
        None => Ok(default),
        Some(n) if n.is_null() => Ok(default),
        Some(n) => boolean(n, path),
    }
}

fn number<T: std::str::FromStr>(node: &Node, path: &str, what: &str) -> R<T> {
    node.as_scalar()
        .and_then(|s| s.trim().parse::<T>().ok())
        .ok_or_else(|| {
            err(
                node,
                path,
                format!("expected {what}, found {}", describe_value(node)),
            )
        })
}

fn describe_value(node: &Node) -> String {
    match node.as_scalar() {
        Some(s) => format!("{s:?}"),
        None => node.kind().to_string(),
    }
}

fn duration(node: &Node, path: &str) -> R<Duration> {
    let text = string(node, path)?;
    crate::duration::parse(&text).map_err(|source| ComposeError::Duration {
        pos: node.pos.clone(),
        path: path.to_string(),
        source,
    })
}

fn opt_duration(node: Option<&Node>, path: &str) -> R<Option<Duration>> {
    match node {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(n) => duration(n, path).map(Some),
    }
}

/// A string or a list of strings.
fn string_list(node: &Node, path: &str) -> R<Vec<String>> {
    match &node.value {
        Value::Null => Ok(vec![]),
        Value::Scalar { text, .. } => Ok(vec![text.clone()]),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| string(n, &format!("{path}[{i}]")))
            .collect(),
        Value::Map(_) => Err(err(node, path, "expected a string or a list of strings")),
    }
}

fn strict_list(node: &Node, path: &str) -> R<Vec<String>> {
    match &node.value {
        Value::Scalar { .. } => Err(err(node, path, "expected a list")),
        _ => string_list(node, path),
    }
}

/// Splits a command string with POSIX shell word rules (quotes and backslashes).
pub fn shell_split(input: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(ch) => cur.push(ch),
                    None => cur.push('\\'),
                }
            }
            ch => {
                in_word = true;
                cur.push(ch);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn command(node: Option<&Node>, path: &str) -> R<Option<Vec<String>>> {
    match node {
        None => Ok(None),
        Some(n) => match &n.value {
            Value::Null => Ok(None),
            Value::Scalar { text, .. } => shell_split(text).map(Some).map_err(|m| err(n, path, m)),
            Value::Seq(_) => string_list(n, path).map(Some),
            Value::Map(_) => Err(err(n, path, "expected a string or a list")),
        },
    }
}

/// `["K=V", "K"]` or `{K: V}`; `K` without a value takes `lookup(K)`.
fn key_values(
    node: &Node,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> R<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Null => {}
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let text = string(item, &format!("{path}[{i}]"))?;
                match text.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(text.clone(), lookup(&text)),
                };
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let value = match &v.value {
                    Value::Null => lookup(&k.name),
                    Value::Scalar { text, .. } => Some(text.clone()),
                    _ => {
                        return Err(err(
                            v,
                            &format!("{path}.{}", k.name),
                            "expected a string, number or boolean",
                        ))
                    }
                };
                out.insert(k.name.clone(), value);
            }
        }
        Value::Scalar { .. } => return Err(err(node, path, "expected a list or a mapping")),
    }
    Ok(out)
}

fn labels(node: &Node, path: &str) -> R<BTreeMap<String, String>> {
    Ok(key_values(node, path, &|_| None)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

fn absolute_path(project_dir: &Path, p: &str) -> String {
    if p.contains("://") || p.starts_with("git@") {
        return p.to_string();
    }
    let expanded = expand_home(p);
    let path = Path::new(&expanded);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        project_dir.join(path)
    };
    clean(&joined).to_string_lossy().into_owned()
}

fn expand_home(p: &str) -> String {
    if let Some(rest) = p.strip_prefix('~') {
        if rest.is_empty() || rest.starts_with('/') {
            if let Ok(home) = std::env::var("HOME") {
                return format!("{home}{rest}");
            }
        }
    }
    p.to_string()
}

pub fn project(tree: &Node, setup: &Setup, warnings: &mut Vec<Warning>) -> R<Project> {
    let name_node = tree.get("name");
    let name = match (&setup.explicit_name, name_node) {
        (Some(n), _) => {
            if !valid_project_name(n) {
                return Err(ComposeError::ProjectName(format!(
                    "project name {n:?} is not valid: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit"
                )));
            }
            n.clone()
        }
        (None, Some(node)) if !node.is_null() => {
            let n = string(node, "name")?;
            if !valid_project_name(&n) {
                return Err(err(node, "name", format!(
                    "project name {n:?} is not valid: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit"
                )));
            }
            n
        }
        _ => {
            let base = setup
                .project_dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let n = normalize_project_name(&base);
            if n.is_empty() {
                return Err(ComposeError::ProjectName(format!(
                    "cannot derive a project name from directory {:?}; set one with -p, COMPOSE_PROJECT_NAME or `name:`",
                    setup.project_dir
                )));
            }
            n
        }
    };
    if tree.get("version").is_some() {
        super::validate::push_warning(
            warnings,
            "the top-level `version` key is obsolete and ignored".into(),
        );
    }

    let mut project = Project {
        name,
        working_dir: setup.project_dir.clone(),
        config_files: setup.files.clone(),
        ..Default::default()
    };

    if let Some(entries) = tree.entries() {
        for (k, v) in entries {
            if k.name.starts_with("x-") {
                project.extensions.insert(k.name.clone(), v.to_json());
            }
        }
    }
    if let Some(nets) = tree.get("networks") {
        match &nets.value {
            Value::Null => {}
            Value::Map(entries) => {
                for (k, v) in entries {
                    let path = format!("networks.{}", k.name);
                    project.networks.insert(k.name.clone(), network(v, &path)?);
                }
            }
            _ => return Err(err(nets, "networks", "expected a mapping")),
        }
    }
    if let Some(vols) = tree.get("volumes") {
        match &vols.value {
            Value::Null => {}
            Value::Map(entries) => {
                for (k, v) in entries {
                    let path = format!("volumes.{}", k.name);
                    project.volumes.insert(k.name.clone(), volume(v, &path)?);
                }
            }
            _ => return Err(err(vols, "volumes", "expected a mapping")),
        }
    }

    let services = match tree.get("services") {
        None => return Ok(project),
        Some(s) if s.is_null() => return Ok(project),
        Some(s) => s,
    };
    let Some(entries) = services.entries() else {
        return Err(err(
            services,
            "services",
            "expected a mapping of service names",
        ));
    };
    let lookup = |k: &str| setup.env.get(k).cloned();
    let all_profiles = setup.profiles.iter().any(|p| p == "*");
    for (k, v) in entries {
        let path = format!("services.{}", k.name);
        let svc = service(&k.name, v, &path, &setup.project_dir, &lookup)?;
        let enabled = svc.profiles.is_empty()
            || all_profiles
            || svc.profiles.iter().any(|p| setup.profiles.contains(p));
        if enabled {
            project.services.insert(k.name.clone(), svc);
        } else {
            project.disabled_services.push(k.name.clone());
        }
    }
    Ok(project)
}

fn network(node: &Node, path: &str) -> R<Network> {
    if node.is_null() {
        return Ok(Network::default());
    }
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    Ok(Network {
        name: opt_string(node.get("name"), &format!("{path}.name"))?,
        driver: opt_string(node.get("driver"), &format!("{path}.driver"))?,
        external: external(node.get("external"), &format!("{path}.external"))?,
        internal: opt_bool(node.get("internal"), &format!("{path}.internal"), false)?,
        labels: match node.get("labels") {
            Some(l) => labels(l, &format!("{path}.labels"))?,
            None => BTreeMap::new(),
        },
    })
}

fn external(node: Option<&Node>, path: &str) -> R<bool> {
    match node {
        // Legacy `external: { name: x }` means external too.
        Some(n) if n.entries().is_some() => Ok(true),
        other => opt_bool(other, path, false),
    }
}

fn volume(node: &Node, path: &str) -> R<Volume> {
    if node.is_null() {
        return Ok(Volume::default());
    }
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    Ok(Volume {
        name: opt_string(node.get("name"), &format!("{path}.name"))?,
        driver: opt_string(node.get("driver"), &format!("{path}.driver"))?,
        external: external(node.get("external"), &format!("{path}.external"))?,
        labels: match node.get("labels") {
            Some(l) => labels(l, &format!("{path}.labels"))?,
            None => BTreeMap::new(),
        },
    })
}

fn service(
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
            let pairs = super::env::read_dotenv(&file.path, &env)
                .map_err(|m| err(ef, &format!("{}[{i}]", f("env_file")), m))?;
            for (k, v) in pairs {
                svc.environment.insert(k, Some(v));
            }
        }
    }
    if let Some(e) = node.get("environment") {
        svc.environment
            .extend(key_values(e, &f("environment"), lookup)?);
    }
    if let Some(l) = node.get("labels") {
        svc.labels = labels(l, &f("labels"))?;
    }
    if let Some(p) = node.get("ports") {
        svc.ports = ports(p, &f("ports"))?;
    }
    if let Some(v) = node.get("volumes") {
        svc.volumes = volume_mounts(v, &f("volumes"), project_dir)?;
    }
    if let Some(n) = node.get("networks") {
        svc.networks = service_networks(n, &f("networks"))?;
    }
    if let Some(d) = node.get("depends_on") {
        svc.depends_on = depends_on(d, &f("depends_on"))?;
    }
    if let Some(h) = node.get("healthcheck") {
        svc.healthcheck = healthcheck(h, &f("healthcheck"))?;
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

/// `links`, `volumes_from` and `network_mode: service:x` are dependencies too.
fn add_implicit_dependencies(svc: &mut Service) {
    let mut implied: Vec<String> = Vec::new();
    for link in &svc.links {
        implied.push(link.split(':').next().unwrap_or(link).to_string());
    }
    for from in &svc.volumes_from {
        if from.starts_with("container:") {
            continue;
        }
        implied.push(from.split(':').next().unwrap_or(from).to_string());
    }
    if let Some(target) = svc
        .network_mode
        .as_deref()
        .and_then(|m| m.strip_prefix("service:"))
    {
        implied.push(target.to_string());
    }
    for dep in implied {
        svc.depends_on.entry(dep).or_insert(Dependency {
            condition: Condition::ServiceStarted,
            required: true,
            restart: false,
            implicit: true,
        });
    }
}

fn build(
    node: &Node,
    path: &str,
    project_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> R<Option<Build>> {
    match &node.value {
        Value::Null => Ok(None),
        Value::Scalar { text, .. } => Ok(Some(Build {
            context: absolute_path(project_dir, text),
            ..Default::default()
        })),
        Value::Map(_) => {
            let context = opt_string(node.get("context"), &format!("{path}.context"))?
                .unwrap_or_else(|| ".".to_string());
            Ok(Some(Build {
                context: absolute_path(project_dir, &context),
                dockerfile: opt_string(node.get("dockerfile"), &format!("{path}.dockerfile"))?,
                args: match node.get("args") {
                    Some(a) => key_values(a, &format!("{path}.args"), lookup)?,
                    None => BTreeMap::new(),
                },
            }))
        }
        Value::Seq(_) => Err(err(node, path, "expected a path or a mapping")),
    }
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

fn port_number(text: &str, node: &Node, path: &str) -> R<u16> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| err(node, path, format!("invalid port {text:?}")))
}

fn port_range(text: &str, node: &Node, path: &str) -> R<(u16, u16)> {
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_number(a, node, path)?, port_number(b, node, path)?);
            if b < a {
                return Err(err(node, path, format!("invalid port range {text:?}")));
            }
            Ok((a, b))
        }
        None => {
            let p = port_number(text, node, path)?;
            Ok((p, p))
        }
    }
}

/// Short syntax: `[HOST_IP:][HOST_PORT[-RANGE]:]CONTAINER_PORT[-RANGE][/PROTOCOL]`.
fn short_port(text: &str, node: &Node, path: &str) -> R<Vec<Port>> {
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((s, p)) => (s, p.to_string()),
        None => (text, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(err(
            node,
            path,
            format!("invalid protocol {protocol:?} in port {text:?}"),
        ));
    }
    // An IPv6 host address is written in brackets: `[::1]:8080:80`.
    let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .ok_or_else(|| err(node, path, format!("invalid port {text:?}")))?;
        (
            Some(ip.to_string()),
            after.strip_prefix(':').unwrap_or(after),
        )
    } else {
        (None, spec)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, published, container) = match (host_ip, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [ip, h, c]) => (Some(ip.to_string()), Some(*h), *c),
        (Some(ip), [h, c]) => (Some(ip), Some(*h), *c),
        _ => return Err(err(node, path, format!("invalid port {text:?}"))),
    };
    let (c_lo, c_hi) = port_range(container, node, path)?;
    let published = published.filter(|p| !p.is_empty());
    let count = (c_hi - c_lo) as usize + 1;
    let host_range = match published {
        Some(p) if p.contains('-') => {
            let (h_lo, h_hi) = port_range(p, node, path)?;
            if (h_hi - h_lo) as usize + 1 == count {
                Some((h_lo, true))
            } else if count == 1 {
                None
            } else {
                return Err(err(
                    node,
                    path,
                    format!("port ranges of different sizes in {text:?}"),
                ));
            }
        }
        Some(p) => {
            let h = port_number(p, node, path)?;
            Some((h, count > 1))
        }
        None => None,
    };
    let mut out = Vec::with_capacity(count);
    for (i, target) in (c_lo..=c_hi).enumerate() {
        let published = match (published, host_range) {
            (None, _) => None,
            (Some(_), Some((lo, true))) => Some((lo as usize + i).to_string()),
            (Some(p), _) => Some(p.to_string()),
        };
        out.push(Port {
            target,
            published,
            host_ip: host_ip.clone().filter(|ip| !ip.is_empty()),
            protocol: protocol.clone(),
        });
    }
    Ok(out)
}

fn ports(node: &Node, path: &str) -> R<Vec<Port>> {
    let Value::Seq(items) = &node.value else {
        if node.is_null() {
            return Ok(vec![]);
        }
        return Err(err(node, path, "expected a list"));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match &item.value {
            Value::Scalar { text, .. } => out.extend(short_port(text, item, &p)?),
            Value::Map(_) => {
                let target_node = item
                    .get("target")
                    .ok_or_else(|| err(item, &p, "a long-syntax port needs `target:`"))?;
                let target = port_number(
                    &string(target_node, &format!("{p}.target"))?,
                    target_node,
                    &format!("{p}.target"),
                )?;
                out.push(Port {
                    target,
                    published: opt_string(item.get("published"), &format!("{p}.published"))?,
                    host_ip: opt_string(item.get("host_ip"), &format!("{p}.host_ip"))?,
                    protocol: opt_string(item.get("protocol"), &format!("{p}.protocol"))?
                        .unwrap_or_else(|| "tcp".to_string()),
                });
            }
            _ => return Err(err(item, &p, "expected a port string or mapping")),
        }
    }
    Ok(out)
}

fn volume_mounts(node: &Node, path: &str, project_dir: &Path) -> R<Vec<VolumeMount>> {
    let Value::Seq(items) = &node.value else {
        if node.is_null() {
            return Ok(vec![]);
        }
        return Err(err(node, path, "expected a list"));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match &item.value {
            Value::Scalar { text, .. } => {
                let parts: Vec<&str> = text.split(':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [t] => (None, *t, None),
                    [s, t] => (Some(*s), *t, None),
                    [s, t, m] => (Some(*s), *t, Some(*m)),
                    _ => return Err(err(item, &p, format!("invalid volume {text:?}"))),
                };
                if target.is_empty() || !target.starts_with('/') {
                    return Err(err(
                        item,
                        &p,
                        format!("volume target must be an absolute path in {text:?}"),
                    ));
                }
                let read_only = mode.is_some_and(|m| m.split(',').any(|o| o == "ro"));
                let (kind, source) = match source {
                    None => (VolumeType::Volume, None),
                    Some(s) if s.starts_with('.') || s.starts_with('/') || s.starts_with('~') => {
                        (VolumeType::Bind, Some(absolute_path(project_dir, s)))
                    }
                    Some(s) => (VolumeType::Volume, Some(s.to_string())),
                };
                out.push(VolumeMount {
                    kind,
                    source,
                    target: target.to_string(),
                    read_only,
                });
            }
            Value::Map(_) => {
                let kind = match opt_string(item.get("type"), &format!("{p}.type"))?.as_deref() {
                    Some("bind") => VolumeType::Bind,
                    Some("volume") | None => VolumeType::Volume,
                    Some("tmpfs") => VolumeType::Tmpfs,
                    Some(other) => {
                        return Err(err(
                            item.get("type").unwrap_or(item),
                            &format!("{p}.type"),
                            format!("unsupported volume type {other:?} (bind, volume, tmpfs)"),
                        ))
                    }
                };
                let target = opt_string(item.get("target"), &format!("{p}.target"))?
                    .ok_or_else(|| err(item, &p, "a long-syntax volume needs `target:`"))?;
                let source = opt_string(item.get("source"), &format!("{p}.source"))?;
                let source = match kind {
                    VolumeType::Bind => source.map(|s| absolute_path(project_dir, &s)),
                    _ => source,
                };
                out.push(VolumeMount {
                    kind,
                    source,
                    target,
                    read_only: opt_bool(item.get("read_only"), &format!("{p}.read_only"), false)?,
                });
            }
            _ => return Err(err(item, &p, "expected a volume string or mapping")),
        }
    }
    Ok(out)
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
                    }
                };
                out.insert(k.name.clone(), net);
            }
        }
        Value::Scalar { .. } => return Err(err(node, path, "expected a list or a mapping")),
    }
    Ok(out)
}

fn depends_on(node: &Node, path: &str) -> R<BTreeMap<String, Dependency>> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Null => {}
        Value::Seq(_) => {
            for n in strict_list(node, path)? {
                out.insert(
                    n,
                    Dependency {
                        condition: Condition::ServiceStarted,
                        required: true,
                        restart: false,
                        implicit: false,
                    },
                );
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let p = format!("{path}.{}", k.name);
                if !v.is_null() && v.entries().is_none() {
                    return Err(err(v, &p, "expected { condition, required, restart }"));
                }
                let condition = match opt_string(v.get("condition"), &format!("{p}.condition"))?.as_deref() {
                    None | Some("service_started") => Condition::ServiceStarted,
                    Some("service_healthy") => Condition::ServiceHealthy,
                    Some("service_completed_successfully") => Condition::ServiceCompletedSuccessfully,
                    Some(other) => {
                        return Err(err(
                            v.get("condition").unwrap_or(v),
                            &format!("{p}.condition"),
                            format!("unknown condition {other:?} (expected service_started, service_healthy or service_completed_successfully)"),
                        ))
                    }
                };
                out.insert(
                    k.name.clone(),
                    Dependency {
                        condition,
                        required: opt_bool(v.get("required"), &format!("{p}.required"), true)?,
                        restart: opt_bool(v.get("restart"), &format!("{p}.restart"), false)?,
                        implicit: false,
                    },
                );
            }
        }
        Value::Scalar { .. } => return Err(err(node, path, "expected a list or a mapping")),
    }
    Ok(out)
}

fn healthcheck(node: &Node, path: &str) -> R<Option<Healthcheck>> {
    if node.is_null() {
        return Ok(None);
    }
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    let f = |k: &str| format!("{path}.{k}");
    let mut hc = Healthcheck::default();
    if let Some(t) = node.get("test") {
        hc.test = match &t.value {
            Value::Null => None,
            Value::Scalar { text, .. } => Some(HealthTest::CmdShell(text.clone())),
            Value::Seq(_) => {
                let items = strict_list(t, &f("test"))?;
                match items.first().map(String::as_str) {
                    Some("NONE") => Some(HealthTest::None),
                    Some("CMD") => Some(HealthTest::Cmd(items[1..].to_vec())),
                    Some("CMD-SHELL") => Some(HealthTest::CmdShell(items[1..].join(" "))),
                    Some(other) => {
                        return Err(err(
                            t,
                            &f("test"),
                            format!(
                                "a list test starts with NONE, CMD or CMD-SHELL, found {other:?}"
                            ),
                        ))
                    }
                    None => return Err(err(t, &f("test"), "empty test")),
                }
            }
            Value::Map(_) => return Err(err(t, &f("test"), "expected a string or a list")),
        };
    }
    if let Some(d) = opt_duration(node.get("interval"), &f("interval"))? {
        hc.interval = d;
    }
    if let Some(d) = opt_duration(node.get("timeout"), &f("timeout"))? {
        hc.timeout = d;
    }
    if let Some(r) = node.get("retries").filter(|r| !r.is_null()) {
        hc.retries = number::<u32>(r, &f("retries"), "a whole number")?;
    }
    let start_period = opt_duration(node.get("start_period"), &f("start_period"))?;
    let start_interval = opt_duration(node.get("start_interval"), &f("start_interval"))?;
    if let (Some(_), None) = (start_interval, start_period) {
        let n = node.get("start_interval").unwrap_or(node);
        return Err(err(
            n,
            &f("start_interval"),
            "start_interval requires start_period to be set (Compose refuses start_interval without start_period)",
        ));
    }
    if let Some(d) = start_period {
        hc.start_period = d;
    }
    if let Some(d) = start_interval {
        hc.start_interval = d;
    }
    hc.disable = opt_bool(node.get("disable"), &f("disable"), false)?;
    if hc.disable {
        if matches!(hc.test, Some(HealthTest::Cmd(_) | HealthTest::CmdShell(_))) {
            return Err(err(
                node,
                &f("disable"),
                "disable: true with a test; remove one of them",
            ));
        }
        hc.test = Some(HealthTest::None);
    } else if hc.test == Some(HealthTest::None) {
        hc.disable = true;
    }
    Ok(Some(hc))
}

/// `"512m"`, `"1g"`, `"1.5GB"`, `1048576` -> bytes (powers of 1024, as Docker).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let idx = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(idx);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

fn resource_spec(node: &Node, path: &str) -> R<ResourceSpec> {
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    let cpus = match node.get("cpus").filter(|n| !n.is_null()) {
        Some(c) => Some(number::<f64>(
            c,
            &format!("{path}.cpus"),
            "a number of CPUs such as \"0.5\"",
        )?),
        None => None,
    };
    let memory = match node.get("memory").filter(|n| !n.is_null()) {
        Some(m) => {
            let text = string(m, &format!("{path}.memory"))?;
            Some(parse_bytes(&text).ok_or_else(|| {
                err(
                    m,
                    &format!("{path}.memory"),
                    format!("invalid size {text:?} (expected e.g. 512m, 1g)"),
                )
            })?)
        }
        None => None,
    };
    let pids = match node.get("pids").filter(|n| !n.is_null()) {
        Some(p) => Some(number::<i64>(p, &format!("{path}.pids"), "a whole number")?),
        None => None,
    };
    Ok(ResourceSpec { cpus, memory, pids })
}

fn deploy(node: &Node, path: &str) -> R<Option<Deploy>> {
    if node.is_null() {
        return Ok(None);
    }
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    let f = |k: &str| format!("{path}.{k}");
    let replicas = match node.get("replicas").filter(|n| !n.is_null()) {
        Some(r) => Some(number::<u32>(r, &f("replicas"), "a whole number")?),
        None => None,
    };
    let resources = match node.get("resources").filter(|n| !n.is_null()) {
        Some(r) => Some(Resources {
            limits: match r.get("limits").filter(|n| !n.is_null()) {
                Some(l) => Some(resource_spec(l, &format!("{}.limits", f("resources")))?),
                None => None,
            },
            reservations: match r.get("reservations").filter(|n| !n.is_null()) {
                Some(l) => Some(resource_spec(
                    l,
                    &format!("{}.reservations", f("resources")),
                )?),
                None => None,
            },
        }),
        None => None,
    };
    let update_config = match node.get("update_config").filter(|n| !n.is_null()) {
        Some(u) => Some(parse_update_config(u, &f("update_config"))?),
        None => None,
    };
    let rollback_config = match node.get("rollback_config").filter(|n| !n.is_null()) {
        Some(u) => Some(parse_update_config(u, &f("rollback_config"))?),
        None => None,
    };
    Ok(Some(Deploy {
        replicas,
        resources,
        update_config,
        rollback_config,
    }))
}

/// `deploy.update_config` / `deploy.rollback_config` (Swarm's fields).
fn parse_update_config(u: &Node, path: &str) -> R<UpdateConfig> {
    let g = |k: &str| format!("{path}.{k}");
    let order = opt_string(u.get("order"), &g("order"))?;
    if let Some(o) = &order {
        if o != "start-first" && o != "stop-first" {
            return Err(err(
                u.get("order").unwrap_or(u),
                &g("order"),
                format!("invalid order {o:?} (start-first or stop-first)"),
            ));
        }
    }
    let failure_action = opt_string(u.get("failure_action"), &g("failure_action"))?;
    if let Some(a) = &failure_action {
        if !matches!(a.as_str(), "continue" | "rollback" | "pause") {
            return Err(err(
                u.get("failure_action").unwrap_or(u),
                &g("failure_action"),
                format!("invalid failure_action {a:?} (continue, rollback or pause)"),
            ));
        }
    }
    Ok(UpdateConfig {
        parallelism: match u.get("parallelism").filter(|n| !n.is_null()) {
            Some(p) => Some(number::<u32>(p, &g("parallelism"), "a whole number")?),
            None => None,
        },
        delay: opt_duration(u.get("delay"), &g("delay"))?,
        failure_action,
        monitor: opt_duration(u.get("monitor"), &g("monitor"))?,
        max_failure_ratio: match u.get("max_failure_ratio").filter(|n| !n.is_null()) {
            Some(p) => Some(number::<f64>(p, &g("max_failure_ratio"), "a number")?),
            None => None,
        },
        order,
    })
}

/// `x-muster:` -> [`MusterService`]; each probe is read on its own so an error
/// names `x-muster.probes[N]` and the probe's line.
fn muster(node: &Node, path: &str) -> R<MusterService> {
    let merr = |n: &Node, p: String, m: String| ComposeError::Muster {
        pos: n.pos.clone(),
        path: p,
        message: m,
    };
    if node.is_null() {
        return Ok(MusterService::default());
    }
    let Some(entries) = node.entries() else {
        return Err(merr(node, path.to_string(), "expected a mapping".into()));
    };
    // MusterService::default() has required = false; the serde default (and ours) is true.
    let mut out = MusterService {
        required: true,
        ..MusterService::default()
    };
    for (k, v) in entries {
        let p = format!("{path}.{}", k.name);
        match k.name.as_str() {
            "probes" => {
                let Value::Seq(items) = &v.value else {
                    return Err(merr(v, p, "probes is a list".into()));
                };
                for (i, item) in items.iter().enumerate() {
                    let pp = format!("{p}[{i}]");
                    let spec: ProbeSpec = serde_json::from_value(item.to_json())
                        .map_err(|e| merr(item, pp.clone(), probe_message(item, &e.to_string())))?;
                    out.probes.push(spec);
                }
            }
            "grace" => {
                out.grace = serde_json::from_value::<GraceSetting>(v.to_json())
                    .map_err(|e| merr(v, p, e.to_string()))?;
            }
            "required" => {
                out.required = boolean(v, &p)
                    .map_err(|_| merr(v, p.clone(), "expected true or false".into()))?
            }
            "restart" => {
                out.restart = Some(serde_json::from_value(v.to_json()).map_err(|e| {
                    let message = e.to_string();
                    merr(v, p, message)
                })?);
            }
            other => {
                let hint =
                    super::validate::suggest(other, &["probes", "grace", "required", "restart"])
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                return Err(merr(v, p, format!("unknown field `{other}`{hint}")));
            }
        }
    }
    Ok(out)
}

const PROBE_KINDS: [&str; 7] = ["redis", "nats", "http", "tcp", "exec", "docker", "agent"];

fn probe_message(item: &Node, serde_msg: &str) -> String {
    let Some(entries) = item.entries() else {
        return format!("a probe is a mapping such as `- redis: {{ url: ... }}` ({serde_msg})");
    };
    let timing = [
        "period",
        "timeout",
        "success_threshold",
        "failure_threshold",
        "role",
    ];
    let kinds: Vec<&str> = entries
        .iter()
        .map(|(k, _)| k.name.as_str())
        .filter(|k| !timing.contains(k))
        .collect();
    if let [kind] = kinds.as_slice() {
        if !PROBE_KINDS.contains(kind) {
            let hint = super::validate::suggest(kind, &PROBE_KINDS)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return format!(
                "unknown probe kind `{kind}` (expected one of {}){hint}",
                PROBE_KINDS.join(", ")
            );
        }
        return format!("{kind} probe: {serde_msg}");
    }
    if kinds.is_empty() {
        return format!("a probe needs a kind ({})", PROBE_KINDS.join(", "));
    }
    format!(
        "one probe has exactly one kind, found {} ({serde_msg})",
        kinds.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_split(r#"sh -c 'echo "hi there"' a\ b "x\"y""#).unwrap(),
            vec!["sh", "-c", "echo \"hi there\"", "a b", "x\"y"]
        );
        assert!(shell_split("echo 'open").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("1.5GB"), Some(3 << 29));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("lots"), None);
    }
}
