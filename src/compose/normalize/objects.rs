//! Top-level `secrets:` / `configs:` and a service's references to them ->
//! [`FileObject`] and [`FileRef`]. A secret's `environment:` value is read
//! here from the project environment and kept only in a
//! [`SecretValue`](crate::compose::SecretValue), never in the printed model.

use std::collections::BTreeMap;
use std::path::Path;

use super::values::{absolute_path, err, items, labels, opt_bool, opt_string, string, R};
use crate::compose::objects::{FileObject, FileRef, SecretValue};
use crate::compose::yaml::{Node, Value};

/// A file mode as Compose reads it: a YAML number is `0440` / `0o440` in
/// octal, else decimal (yaml.v3's integers); a quoted string is always
/// octal (compose-go types.FileMode DecodeMapstructure: `ParseInt(v, 8)`),
/// so `"440"` is 0o440 as well.
pub(super) fn mode(node: &Node, path: &str) -> R<u32> {
    let text = string(node, path)?;
    let quoted = matches!(node.value, Value::Scalar { plain: false, .. });
    let parsed = if let Some(oct) = text.strip_prefix("0o") {
        u32::from_str_radix(oct, 8).ok()
    } else if quoted || (text.len() > 1 && text.starts_with('0')) {
        u32::from_str_radix(&text, 8).ok()
    } else {
        text.parse::<u32>().ok()
    };
    parsed.filter(|m| *m <= 0o7777).ok_or_else(|| {
        err(
            node,
            path,
            format!("invalid file mode {text:?} (expected octal such as 0440, or decimal)"),
        )
    })
}

/// A service's `secrets:` or `configs:` list.
pub(super) fn refs(node: &Node, path: &str) -> R<Vec<FileRef>> {
    let items = items(
        node,
        path,
        "expected a list of names or { source, target, uid, gid, mode }",
    )?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let r = if item.entries().is_some() {
            FileRef {
                source: opt_string(item.get("source"), &format!("{p}.source"))?
                    .ok_or_else(|| err(item, &p, "the long form needs `source:`"))?,
                target: opt_string(item.get("target"), &format!("{p}.target"))?,
                uid: opt_string(item.get("uid"), &format!("{p}.uid"))?,
                gid: opt_string(item.get("gid"), &format!("{p}.gid"))?,
                mode: match item.get("mode").filter(|m| !m.is_null()) {
                    Some(m) => Some(mode(m, &format!("{p}.mode"))?),
                    None => None,
                },
            }
        } else {
            FileRef {
                source: string(item, &p)?,
                ..Default::default()
            }
        };
        out.push(r);
    }
    Ok(out)
}

/// The top-level `secrets:` or `configs:` section.
pub(super) fn objects(
    node: &Node,
    section: &str,
    project_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> R<BTreeMap<String, FileObject>> {
    let Some(entries) = node.entries() else {
        if node.is_null() {
            return Ok(BTreeMap::new());
        }
        return Err(err(node, section, "expected a mapping of names"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        let p = format!("{section}.{}", k.name);
        if v.is_null() {
            out.insert(k.name.clone(), FileObject::default());
            continue;
        }
        if v.entries().is_none() {
            return Err(err(
                v,
                &p,
                "expected a mapping (file, environment, content, external)",
            ));
        }
        let f = |key: &str| format!("{p}.{key}");
        let (name, external) = match v.get("external") {
            // Legacy `external: {name: x}`.
            Some(e) if e.entries().is_some() => (
                opt_string(v.get("name"), &f("name"))?
                    .or(opt_string(e.get("name"), &f("external.name"))?),
                true,
            ),
            other => (
                opt_string(v.get("name"), &f("name"))?,
                opt_bool(other, &f("external"), false)?,
            ),
        };
        let environment = opt_string(v.get("environment"), &f("environment"))?;
        let value = environment.as_deref().and_then(lookup).map(SecretValue);
        out.insert(
            k.name.clone(),
            FileObject {
                name,
                file: opt_string(v.get("file"), &f("file"))?
                    .map(|file| absolute_path(project_dir, &file)),
                environment,
                content: opt_string(v.get("content"), &f("content"))?,
                external,
                labels: match v.get("labels") {
                    Some(l) => labels(l, &f("labels"))?,
                    None => BTreeMap::new(),
                },
                value,
            },
        );
    }
    Ok(out)
}
