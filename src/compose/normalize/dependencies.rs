//! What a service depends on: `depends_on:` (list or map with conditions,
//! `restart`, `required`) and the dependencies Compose adds without being told
//! (`links`, `volumes_from`, `network_mode: service:x`). Everything the
//! dependency graph reads comes from here.

use std::collections::BTreeMap;

use super::values::{err, opt_bool, opt_string, strict_list, R};
use crate::compose::model::*;
use crate::compose::yaml::{Node, Value};

/// `links`, `volumes_from` and `network_mode: service:x` are dependencies too.
pub(super) fn add_implicit_dependencies(svc: &mut Service) {
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

pub(super) fn depends_on(node: &Node, path: &str) -> R<BTreeMap<String, Dependency>> {
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
