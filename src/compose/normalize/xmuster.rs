//! A service's `x-muster:` -> [`MusterService`] (the schema is
//! [`crate::compose::xmuster`]): each probe is read on its own so that an error
//! names `x-muster.probes[N]`, the probe's line and, for a mistyped kind, the
//! kinds there are.

use super::values::{boolean, R};
use crate::compose::error::ComposeError;
use crate::compose::xmuster::{GraceSetting, MusterService, OnUnhealthy, ProbeSpec};
use crate::compose::yaml::{Node, Value};

/// `x-muster:` -> [`MusterService`]; each probe is read on its own so an error
/// names `x-muster.probes[N]` and the probe's line.
pub(super) fn muster(node: &Node, path: &str) -> R<MusterService> {
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
    let mut out = MusterService::default();
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
            "on_unhealthy" => {
                let text = match &v.value {
                    Value::Scalar { text, .. } => Some(text.as_str()),
                    _ => None,
                };
                out.on_unhealthy = text.and_then(OnUnhealthy::parse).ok_or_else(|| {
                    let shown = text.map_or_else(|| v.to_json().to_string(), |t| format!("{t:?}"));
                    merr(
                        v,
                        p.clone(),
                        format!(
                            "unknown value {shown}; allowed values: {}",
                            OnUnhealthy::ALLOWED.join(", ")
                        ),
                    )
                })?;
            }
            "ready_tasks" => {
                let n = match &v.value {
                    Value::Scalar { text, .. } => text.parse::<u32>().ok().filter(|n| *n > 0),
                    _ => None,
                };
                out.ready_tasks = Some(n.ok_or_else(|| {
                    merr(
                        v,
                        p.clone(),
                        "expected a whole number of tasks, 1 or more".into(),
                    )
                })?);
            }
            "restart" => {
                out.restart = Some(serde_json::from_value(v.to_json()).map_err(|e| {
                    let message = e.to_string();
                    merr(v, p, message)
                })?);
            }
            other => {
                let hint = crate::compose::validate::suggest(
                    other,
                    &[
                        "probes",
                        "grace",
                        "required",
                        "restart",
                        "on_unhealthy",
                        "ready_tasks",
                    ],
                )
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
            let hint = crate::compose::validate::suggest(kind, &PROBE_KINDS)
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
