//! A service's `deploy:`: replicas, resource limits and reservations (with the
//! byte sizes they are written in; device reservations and generic resources
//! are read by devices.rs) and `update_config` / `rollback_config`,
//! which the rollout options start from.

use super::values::{err, number, opt_duration, opt_string, strict_list, string, R};
use crate::compose::model::*;
use crate::compose::yaml::{Node, Value};

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
    let devices = match node.get("devices").filter(|n| !n.is_null()) {
        Some(d) => super::devices::reserved_devices(d, &format!("{path}.devices"))?,
        None => vec![],
    };
    let generic_resources = match node.get("generic_resources").filter(|n| !n.is_null()) {
        Some(g) => super::devices::generic_resources(g, &format!("{path}.generic_resources"))?,
        None => vec![],
    };
    Ok(ResourceSpec {
        cpus,
        memory,
        pids,
        devices,
        generic_resources,
    })
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
    let mode = opt_string(node.get("mode"), &f("mode"))?;
    if let Some(m) = &mode {
        if m != "replicated" && m != "global" {
            return Err(err(
                node.get("mode").unwrap_or(node),
                &f("mode"),
                format!("invalid mode {m:?} (replicated or global)"),
            ));
        }
    }
    let (placement_constraints, placement_spread) =
        match node.get("placement").filter(|n| !n.is_null()) {
            Some(p) => placement(p, &f("placement"))?,
            None => (Vec::new(), Vec::new()),
        };
    let restart_policy = match node.get("restart_policy").filter(|n| !n.is_null()) {
        Some(r) => Some(restart_policy(r, &f("restart_policy"))?),
        None => None,
    };
    let max_replicas_per_node = match node
        .get("placement")
        .and_then(|p| p.get("max_replicas_per_node"))
        .filter(|n| !n.is_null())
    {
        Some(m) => Some(number::<u64>(
            m,
            &format!("{}.max_replicas_per_node", f("placement")),
            "a whole number",
        )?),
        None => None,
    };
    Ok(Some(Deploy {
        labels: match node.get("labels") {
            Some(l) => super::values::labels(l, &f("labels"))?,
            None => Default::default(),
        },
        endpoint_mode: opt_string(node.get("endpoint_mode"), &f("endpoint_mode"))?,
        max_replicas_per_node,
        replicas,
        resources,
        update_config,
        rollback_config,
        mode,
        placement_constraints,
        placement_spread,
        restart_policy,
    }))
}

/// `deploy.placement`: constraints and `spread` preferences.
fn placement(node: &Node, path: &str) -> R<(Vec<String>, Vec<String>)> {
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    let constraints = match node.get("constraints").filter(|n| !n.is_null()) {
        Some(c) => strict_list(c, &format!("{path}.constraints"))?,
        None => Vec::new(),
    };
    let mut spread = Vec::new();
    if let Some(prefs) = node.get("preferences").filter(|n| !n.is_null()) {
        let Value::Seq(items) = &prefs.value else {
            return Err(err(
                prefs,
                &format!("{path}.preferences"),
                "expected a list",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}.preferences[{i}]");
            match item.get("spread") {
                Some(s) => spread.push(string(s, &format!("{p}.spread"))?),
                None => return Err(err(item, &p, "expected `spread: <label>`")),
            }
        }
    }
    Ok((constraints, spread))
}

/// `deploy.restart_policy` (Swarm's fields).
fn restart_policy(node: &Node, path: &str) -> R<RestartPolicy> {
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    let g = |k: &str| format!("{path}.{k}");
    let condition = opt_string(node.get("condition"), &g("condition"))?;
    if let Some(c) = &condition {
        if !matches!(c.as_str(), "none" | "on-failure" | "any") {
            return Err(err(
                node.get("condition").unwrap_or(node),
                &g("condition"),
                format!("invalid condition {c:?} (none, on-failure or any)"),
            ));
        }
    }
    Ok(RestartPolicy {
        condition,
        delay: opt_duration(node.get("delay"), &g("delay"))?,
        max_attempts: match node.get("max_attempts").filter(|n| !n.is_null()) {
            Some(m) => Some(number::<u64>(m, &g("max_attempts"), "a whole number")?),
            None => None,
        },
        window: opt_duration(node.get("window"), &g("window"))?,
    })
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
