//! A service's `build:` key -> [`Build`]: the short form (a path) and every
//! key of the Compose specification's long form, each read with the field's
//! own path and position so a wrong value is reported where it is written.
//!
//! Why a file of its own: `build:` is the largest block Compose defines
//! under a service, and muster applies most of it through the engine's build
//! API (`engine/build.rs`). The keys that API cannot apply are listed in
//! [`UNAPPLIED_KEYS`] and recorded in `Build::unapplied`, so loading warns
//! about them by name instead of dropping them silently.

use std::collections::BTreeMap;
use std::path::Path;

use super::deploy::parse_bytes;
use super::objects::refs;
use super::values::{absolute_path, err, key_values, labels, opt_bool, opt_string, strict_list, R};
use crate::compose::model::Build;
use crate::compose::validate::{BUILD_KEYS, UNAPPLIED_BUILD_KEYS};
use crate::compose::yaml::{Node, Value};

pub(super) fn build(
    node: &Node,
    path: &str,
    project_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> R<Option<Build>> {
    let f = |key: &str| format!("{path}.{key}");
    match &node.value {
        Value::Null => Ok(None),
        Value::Scalar { text, .. } => Ok(Some(Build {
            context: absolute_path(project_dir, text),
            origin: node.pos.to_string(),
            ..Default::default()
        })),
        Value::Map(_) => {
            let context_node = node.get("context").filter(|n| !n.is_null());
            let context = opt_string(context_node, &f("context"))?.unwrap_or_else(|| ".".into());
            let list = |key: &str| -> R<Vec<String>> {
                match node.get(key) {
                    Some(n) => strict_list(n, &f(key)),
                    None => Ok(vec![]),
                }
            };
            let shm_size = match node.get("shm_size").filter(|n| !n.is_null()) {
                Some(n) => {
                    let text = n.as_scalar().unwrap_or_default();
                    Some(parse_bytes(text).ok_or_else(|| {
                        err(
                            n,
                            &f("shm_size"),
                            format!("expected a size such as \"256m\" or a number of bytes, found {text:?}"),
                        )
                    })?)
                }
                None => None,
            };
            let dockerfile = opt_string(node.get("dockerfile"), &f("dockerfile"))?;
            let dockerfile_inline =
                opt_string(node.get("dockerfile_inline"), &f("dockerfile_inline"))?;
            if let (Some(_), Some(inline)) = (&dockerfile, node.get("dockerfile_inline")) {
                return Err(err(
                    inline,
                    &f("dockerfile_inline"),
                    "dockerfile and dockerfile_inline are mutually exclusive; set one of them",
                ));
            }
            let unapplied = BUILD_KEYS
                .iter()
                .filter(|k| UNAPPLIED_BUILD_KEYS.contains(k))
                .filter(|k| node.get(k).is_some_and(|n| !n.is_null()))
                .map(|k| k.to_string())
                .collect();
            Ok(Some(Build {
                context: absolute_path(project_dir, &context),
                dockerfile,
                dockerfile_inline,
                args: match node.get("args") {
                    Some(a) => key_values(a, &f("args"), lookup)?,
                    None => BTreeMap::new(),
                },
                target: opt_string(node.get("target"), &f("target"))?,
                labels: match node.get("labels") {
                    Some(l) => labels(l, &f("labels"))?,
                    None => BTreeMap::new(),
                },
                tags: list("tags")?,
                cache_from: list("cache_from")?,
                network: opt_string(node.get("network"), &f("network"))?,
                extra_hosts: extra_hosts(node.get("extra_hosts"), &f("extra_hosts"))?,
                shm_size,
                no_cache: opt_bool(node.get("no_cache"), &f("no_cache"), false)?,
                pull: opt_bool(node.get("pull"), &f("pull"), false)?,
                platforms: list("platforms")?,
                ssh: ssh_keys(node.get("ssh"), &f("ssh"))?,
                additional_contexts: match node.get("additional_contexts") {
                    Some(n) => contexts(n, &f("additional_contexts"), project_dir)?,
                    None => BTreeMap::new(),
                },
                secrets: match node.get("secrets") {
                    Some(n) => refs(n, &f("secrets"))?,
                    None => vec![],
                },
                local_image: false,
                unapplied,
                origin: context_node.unwrap_or(node).pos.to_string(),
            }))
        }
        Value::Seq(_) => Err(err(
            node,
            path,
            "expected a context path or a mapping, found a list",
        )),
    }
}

/// `ssh:` as a list (`default`, `id=path`) or a mapping (`id: path`), as
/// compose-go prints its SSHKey list: `id`, or `id=path` when a path is set.
fn ssh_keys(node: Option<&Node>, path: &str) -> R<Vec<String>> {
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return Ok(vec![]);
    };
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| match &v.value {
                Value::Null => Ok(k.name.clone()),
                Value::Scalar { text, .. } if text.is_empty() => Ok(k.name.clone()),
                Value::Scalar { text, .. } => Ok(format!("{}={text}", k.name)),
                _ => Err(err(v, &format!("{path}.{}", k.name), "expected a path")),
            })
            .collect(),
        _ => strict_list(node, path),
    }
}

/// `additional_contexts:` (list of `name=value` or mapping): a local path is
/// made absolute against the project directory, as compose-go does; a value
/// with a scheme (`docker-image://`, `service:`, a URL) is kept as written.
fn contexts(node: &Node, path: &str, project_dir: &Path) -> R<BTreeMap<String, String>> {
    let pairs = key_values(node, path, &|_| None)?;
    let mut out = BTreeMap::new();
    for (name, value) in pairs {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Err(err(
                node,
                &format!("{path}.{name}"),
                "an additional context needs a value (a path, URL or docker-image://…)",
            ));
        };
        let scheme = value
            .split_once(':')
            .is_some_and(|(s, _)| !s.is_empty() && !s.contains('/') && !s.starts_with('.'));
        let value = if scheme {
            value
        } else {
            absolute_path(project_dir, &value)
        };
        out.insert(name, value);
    }
    Ok(out)
}

/// `extra_hosts:` as a list (`host:ip` or `host=ip`) or a mapping
/// (`host: ip`), normalised to `host:ip` as the engine takes it.
fn extra_hosts(node: Option<&Node>, path: &str) -> R<Vec<String>> {
    let Some(node) = node else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    match &node.value {
        Value::Null => {}
        Value::Map(entries) => {
            for (k, v) in entries {
                let p = format!("{path}.{}", k.name);
                match &v.value {
                    Value::Scalar { text, .. } => out.push(format!("{}:{text}", k.name)),
                    Value::Seq(items) => {
                        for (i, item) in items.iter().enumerate() {
                            let ip = super::values::string(item, &format!("{p}[{i}]"))?;
                            out.push(format!("{}:{ip}", k.name));
                        }
                    }
                    _ => return Err(err(v, &p, "expected an IP address")),
                }
            }
        }
        Value::Seq(_) => {
            for (i, entry) in strict_list(node, path)?.into_iter().enumerate() {
                let sep = entry.find(['=', ':']);
                match sep {
                    Some(at) if at > 0 && at + 1 < entry.len() => {
                        out.push(format!("{}:{}", &entry[..at], &entry[at + 1..]))
                    }
                    _ => {
                        let item = match &node.value {
                            Value::Seq(items) => items.get(i).unwrap_or(node),
                            _ => node,
                        };
                        return Err(err(
                            item,
                            &format!("{path}[{i}]"),
                            format!("expected host:ip or host=ip, found {entry:?}"),
                        ));
                    }
                }
            }
        }
        Value::Scalar { .. } => return Err(err(node, path, "expected a list or a mapping")),
    }
    Ok(out)
}
