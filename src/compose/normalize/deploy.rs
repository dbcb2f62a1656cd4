//! A service's `deploy:`: replicas, resource limits and reservations (with the
//! byte sizes they are written in) and `update_config` / `rollback_config`,
//! which the rollout options start from.

use super::values::{err, number, opt_duration, opt_string, string, R};
use crate::compose::model::*;
use crate::compose::yaml::Node;

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

pub(super) fn deploy(node: &Node, path: &str) -> R<Option<Deploy>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("1.5GB"), Some(3 << 29));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("lots"), None);
    }
}
