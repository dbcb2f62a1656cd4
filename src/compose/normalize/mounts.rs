//! A service's `volumes:`: the short `SOURCE:TARGET[:MODE]` and the long syntax,
//! into [`VolumeMount`]s, with bind sources made absolute against the project
//! directory (as Compose does) and the volume type told apart from the source.

use std::path::Path;

use super::deploy::parse_bytes;
use super::objects::mode;
use super::values::{absolute_path, err, opt_bool, opt_string, string, R};
use crate::compose::model::*;
use crate::compose::yaml::{Node, Value};

pub(super) fn volume_mounts(node: &Node, path: &str, project_dir: &Path) -> R<Vec<VolumeMount>> {
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
                    consistency: None,
                    bind: None,
                    volume: None,
                    tmpfs: None,
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
                    consistency: opt_string(item.get("consistency"), &format!("{p}.consistency"))?,
                    bind: present(item, "bind")
                        .map(|n| bind_options(n, &format!("{p}.bind")))
                        .transpose()?,
                    volume: present(item, "volume")
                        .map(|n| volume_options(n, &format!("{p}.volume")))
                        .transpose()?,
                    tmpfs: present(item, "tmpfs")
                        .map(|n| tmpfs_options(n, &format!("{p}.tmpfs")))
                        .transpose()?,
                });
            }
            _ => return Err(err(item, &p, "expected a volume string or mapping")),
        }
    }
    Ok(out)
}

fn present<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    node.get(key).filter(|n| !n.is_null())
}

/// `bind: {propagation, create_host_path, selinux}` (compose-go ServiceVolumeBind).
fn bind_options(node: &Node, path: &str) -> R<BindOptions> {
    let propagation = opt_string(node.get("propagation"), &format!("{path}.propagation"))?;
    if let Some(p) = &propagation {
        const KNOWN: &[&str] = &[
            "rprivate", "private", "rshared", "shared", "rslave", "slave",
        ];
        if !KNOWN.contains(&p.as_str()) {
            return Err(err(
                node.get("propagation").unwrap_or(node),
                &format!("{path}.propagation"),
                format!("unknown propagation {p:?} (one of {})", KNOWN.join(", ")),
            ));
        }
    }
    let selinux = opt_string(node.get("selinux"), &format!("{path}.selinux"))?;
    if let Some(s) = selinux.as_deref().filter(|s| !matches!(*s, "z" | "Z")) {
        return Err(err(
            node.get("selinux").unwrap_or(node),
            &format!("{path}.selinux"),
            format!("unknown selinux option {s:?} (z: shared, Z: private)"),
        ));
    }
    Ok(BindOptions {
        selinux,
        propagation,
        create_host_path: opt_bool(
            node.get("create_host_path"),
            &format!("{path}.create_host_path"),
            true,
        )?,
    })
}

/// `volume: {nocopy, subpath}` (compose-go ServiceVolumeVolume).
fn volume_options(node: &Node, path: &str) -> R<VolumeOptions> {
    Ok(VolumeOptions {
        nocopy: opt_bool(node.get("nocopy"), &format!("{path}.nocopy"), false)?,
        subpath: opt_string(node.get("subpath"), &format!("{path}.subpath"))?,
    })
}

/// `tmpfs: {size, mode}` (compose-go ServiceVolumeTmpfs; size as `UnitBytes`).
fn tmpfs_options(node: &Node, path: &str) -> R<TmpfsOptions> {
    let size = match present(node, "size") {
        None => None,
        Some(n) => {
            let p = format!("{path}.size");
            let text = string(n, &p)?;
            Some(parse_bytes(&text).ok_or_else(|| {
                err(
                    n,
                    &p,
                    format!("invalid size {text:?} (e.g. 64m, 1g, 10000)"),
                )
            })?)
        }
    };
    let mode = present(node, "mode")
        .map(|n| mode(n, &format!("{path}.mode")))
        .transpose()?;
    Ok(TmpfsOptions { size, mode })
}
