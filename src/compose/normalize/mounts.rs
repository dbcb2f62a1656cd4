//! A service's `volumes:`: the short `SOURCE:TARGET[:MODE]` and the long syntax,
//! into [`VolumeMount`]s, with bind sources made absolute against the project
//! directory (as Compose does) and the volume type told apart from the source.

use std::path::Path;

use super::values::{absolute_path, err, opt_bool, opt_string, R};
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
