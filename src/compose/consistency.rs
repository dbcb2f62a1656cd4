//! Compose's consistency checks over the whole model (compose-go
//! `loader/validate.go` checkConsistency): references to networks, volumes,
//! secrets and configs that the file does not declare, `network_mode` beside
//! `networks`, `container_name` on a replicated service, a mount target used
//! twice, a secret with no source, `build.platforms` without the service's
//! `platform`. Compose refuses each; so does muster, before anything is
//! created, naming file:line:col and the field, and saying what Compose accepts.
//!
//! Pure: reads the loaded model and the merged tree (for positions).

use super::error::ComposeError;
use super::model::{Project, VolumeType};
use super::yaml::{Node, Pos, Value};

fn refuse(pos: Pos, path: String, message: String) -> ComposeError {
    ComposeError::Field { pos, path, message }
}

/// Where a service's `field` mentions `name`: the map key, the list item
/// (`name` or `name:…`), a long-form item with `source: name`, else the field.
fn mention(svc: &Node, field: &str, name: &str) -> Option<Pos> {
    let node = svc.get(field)?;
    Some(match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(k, _)| k.pos.clone())
            .unwrap_or_else(|| node.pos.clone()),
        Value::Seq(items) => items
            .iter()
            .find(|i| match i.as_scalar() {
                Some(s) => s == name || s.split(':').next() == Some(name),
                None => i.get("source").and_then(Node::as_scalar) == Some(name),
            })
            .map(|i| i.pos.clone())
            .unwrap_or_else(|| node.pos.clone()),
        _ => node.pos.clone(),
    })
}

/// `source` names of a service's `secrets:` or `configs:` (short or long form).
fn sources(svc: &Node, field: &str) -> Vec<(String, Pos)> {
    let Some(Value::Seq(items)) = svc.get(field).map(|n| &n.value) else {
        return vec![];
    };
    items
        .iter()
        .filter_map(|i| {
            let name = i
                .as_scalar()
                .or_else(|| i.get("source").and_then(Node::as_scalar))?;
            Some((name.to_string(), i.pos.clone()))
        })
        .collect()
}

fn declared(tree: &Node, section: &str, name: &str) -> bool {
    tree.get(section)
        .and_then(Node::entries)
        .is_some_and(|e| e.iter().any(|(k, _)| k.name == name))
}

fn declared_list(tree: &Node, section: &str) -> String {
    let names: Vec<&str> = tree
        .get(section)
        .and_then(Node::entries)
        .map(|e| e.iter().map(|(k, _)| k.name.as_str()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        format!("the file declares no top-level `{section}:`")
    } else {
        format!("declared: {}", names.join(", "))
    }
}

/// Runs every check; the first refusal is returned (as compose-go does).
pub fn check(project: &Project, tree: &Node) -> Result<(), ComposeError> {
    let empty = Node::new(Value::Null, tree.pos.clone());
    for (name, svc) in &project.services {
        let node = tree
            .get("services")
            .and_then(|s| s.get(name))
            .unwrap_or(&empty);
        let at = |field: &str| node.get(field).map_or(node.pos.clone(), |n| n.pos.clone());
        let base = format!("services.{name}");

        if let (Some(mode), false) = (&svc.network_mode, svc.networks.is_empty()) {
            return Err(refuse(
                at("network_mode"),
                format!("{base}.network_mode"),
                format!(
                    "network_mode {mode:?} and networks are mutually exclusive (Compose refuses both); \
                     keep `network_mode` or list the service's networks, not both"
                ),
            ));
        }
        for net in svc.networks.keys() {
            if net == "default" || project.networks.contains_key(net) {
                continue;
            }
            return Err(refuse(
                mention(node, "networks", net).unwrap_or_else(|| at("networks")),
                format!("{base}.networks.{net}"),
                format!(
                    "the service refers to undefined network {net:?}; declare it under the top-level \
                     `networks:` (`{net}: {{}}`, or `external: true` for an existing one); {}",
                    declared_list(tree, "networks")
                ),
            ));
        }
        for (i, mount) in svc.volumes.iter().enumerate() {
            let Some(source) = mount.source.as_deref() else {
                continue;
            };
            if mount.kind != VolumeType::Volume || project.volumes.contains_key(source) {
                continue;
            }
            return Err(refuse(
                mention(node, "volumes", source).unwrap_or_else(|| at("volumes")),
                format!("{base}.volumes[{i}]"),
                format!(
                    "the service refers to undefined volume {source:?}; declare it under the top-level \
                     `volumes:` (`{source}: {{}}`), or write a path (`./{source}`) for a bind mount; {}",
                    declared_list(tree, "volumes")
                ),
            ));
        }
        // compose-go validate.go checks `build.secrets` against the top-level
        // `secrets:` too (a build secret is a secret of the project).
        let build_node = node.get("build").filter(|b| b.entries().is_some());
        let checks = [
            (Some(node), "secrets", "secrets"),
            (Some(node), "configs", "configs"),
            (build_node, "build.secrets", "secrets"),
        ];
        for (owner, field, section) in checks {
            let Some(owner) = owner else { continue };
            let key = field.rsplit('.').next().unwrap_or(field);
            for (source, pos) in sources(owner, key) {
                if !declared(tree, section, &source) {
                    return Err(refuse(
                        pos,
                        format!("{base}.{field}"),
                        format!(
                            "the service refers to undefined {} {source:?}; declare it under the \
                             top-level `{section}:` (with `file:`, `environment:`{} or `external: true`); {}",
                            &section[..section.len() - 1],
                            if section == "configs" { ", `content:`" } else { "" },
                            declared_list(tree, section)
                        ),
                    ));
                }
            }
        }
        if let Some(cn) = &svc.container_name {
            if svc.replicas > 1 {
                let attr = if node.get("scale").is_some() {
                    "scale"
                } else {
                    "deploy.replicas"
                };
                return Err(refuse(
                    at("container_name"),
                    format!("{base}.container_name"),
                    format!(
                        "container_name {cn:?} with {attr} {}: a container name must be unique; \
                         remove container_name or run one replica",
                        svc.replicas
                    ),
                ));
            }
        }
        // A target mounted twice (tmpfs entries, then volumes), as compose-go.
        let mut targets: Vec<(String, String)> = Vec::new();
        if let Some(tmpfs) = node.get("tmpfs") {
            let items: Vec<&Node> = match &tmpfs.value {
                Value::Seq(items) => items.iter().collect(),
                Value::Scalar { .. } => vec![tmpfs],
                _ => vec![],
            };
            for (i, item) in items.into_iter().enumerate() {
                let Some(text) = item.as_scalar() else {
                    continue;
                };
                let path = text.split(':').next().unwrap_or(text).to_string();
                let here = format!("{base}.tmpfs[{i}]");
                if let Some((_, first)) = targets.iter().find(|(t, _)| *t == path) {
                    return Err(refuse(
                        item.pos.clone(),
                        here,
                        format!(
                            "target {path} is already mounted by {first}; mount each path once"
                        ),
                    ));
                }
                targets.push((path, here));
            }
        }
        for (i, mount) in svc.volumes.iter().enumerate() {
            let here = format!("{base}.volumes[{i}]");
            if let Some((_, first)) = targets.iter().find(|(t, _)| *t == mount.target) {
                let pos = match node.get("volumes").map(|v| &v.value) {
                    Some(Value::Seq(items)) if items.len() == svc.volumes.len() => {
                        items[i].pos.clone()
                    }
                    _ => at("volumes"),
                };
                return Err(refuse(
                    pos,
                    here,
                    format!(
                        "target {} is already mounted by {first}; mount each path once",
                        mount.target
                    ),
                ));
            }
            targets.push((mount.target.clone(), here));
        }
        if let (Some(platform), Some(build)) = (
            node.get("platform").and_then(Node::as_scalar),
            svc.build.as_ref(),
        ) {
            if !build.platforms.is_empty() && !build.platforms.iter().any(|p| p == platform) {
                return Err(refuse(
                    node.get("build")
                        .and_then(|b| b.get("platforms"))
                        .map_or_else(|| at("build"), |n| n.pos.clone()),
                    format!("{base}.build.platforms"),
                    format!(
                        "build.platforms ({}) must include the service's platform {platform:?}; \
                         add it or change `platform:`",
                        build.platforms.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(secrets) = tree.get("secrets").and_then(Node::entries) {
        for (k, v) in secrets {
            let set = |key: &str| v.get(key).is_some_and(|n| !n.is_null());
            let external = v
                .get("external")
                .is_some_and(|e| e.as_scalar() == Some("true") || e.entries().is_some());
            if !external && !set("file") && !set("environment") {
                return Err(refuse(
                    k.pos.clone(),
                    format!("secrets.{}", k.name),
                    "a secret must declare either `file` or `environment` (or be `external: true`)"
                        .into(),
                ));
            }
        }
    }
    Ok(())
}
