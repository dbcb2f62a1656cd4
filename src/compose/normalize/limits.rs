//! The service keys that bound or place a container's resources and
//! namespaces (`mem_limit`, `cpus`, `cpu_shares`, `pids_limit`, `oom_*`,
//! `devices`, `expose`, `pid`, `ipc`, …) -> fields of the model's
//! [`Runtime`]. Split from runtime.rs so each file reads one family of keys.

use super::deploy::parse_bytes;
use super::values::{err, key_values, number, opt_bool, opt_string, strict_list, string, R};
use crate::compose::model::{Device, Runtime};
use crate::compose::yaml::{Node, Value};

fn present<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    node.get(key).filter(|n| !n.is_null())
}

fn bytes(node: &Node, key: &str, base: &str) -> R<Option<u64>> {
    let Some(n) = present(node, key) else {
        return Ok(None);
    };
    let path = format!("{base}.{key}");
    let text = string(n, &path)?;
    parse_bytes(&text).map(Some).ok_or_else(|| {
        err(
            n,
            &path,
            format!("invalid size {text:?} (e.g. 512m, 1g, 1048576)"),
        )
    })
}

fn int(node: &Node, key: &str, base: &str) -> R<Option<i64>> {
    match present(node, key) {
        Some(n) => Ok(Some(number::<i64>(
            n,
            &format!("{base}.{key}"),
            "a whole number",
        )?)),
        None => Ok(None),
    }
}

/// `devices:` short `host[:container[:permissions]]` or long
/// `{source, target, permissions}`, as compose-go's DeviceMapping.
fn devices(node: &Node, path: &str) -> R<Vec<Device>> {
    let Value::Seq(items) = &node.value else {
        if node.is_null() {
            return Ok(vec![]);
        }
        return Err(err(node, path, "expected a list of devices"));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let device = if item.entries().is_some() {
            let source = opt_string(item.get("source"), &format!("{p}.source"))?
                .ok_or_else(|| err(item, &p, "a device needs `source:`"))?;
            Device {
                target: opt_string(item.get("target"), &format!("{p}.target"))?
                    .unwrap_or_else(|| source.clone()),
                permissions: opt_string(item.get("permissions"), &format!("{p}.permissions"))?
                    .unwrap_or_else(|| "rwm".into()),
                source,
            }
        } else {
            let text = string(item, &p)?;
            let parts: Vec<&str> = text.split(':').collect();
            let (source, target, permissions) = match parts.as_slice() {
                [s] => (*s, *s, "rwm"),
                [s, t] if t.starts_with('/') => (*s, *t, "rwm"),
                [s, perm] => (*s, *s, *perm),
                [s, t, perm] => (*s, *t, *perm),
                _ => {
                    return Err(err(
                        item,
                        &p,
                        format!("invalid device {text:?}: expected host[:container[:permissions]]"),
                    ))
                }
            };
            if source.is_empty() || !permissions.chars().all(|c| "rwm".contains(c)) {
                return Err(err(
                    item,
                    &p,
                    format!("invalid device {text:?}: expected host[:container[:permissions]] with permissions of r, w, m"),
                ));
            }
            Device {
                source: source.into(),
                target: target.into(),
                permissions: permissions.into(),
            }
        };
        out.push(device);
    }
    Ok(out)
}

/// Fills the resource, device and namespace keys of `rt` from service `node`.
pub(super) fn limits(node: &Node, base: &str, rt: &mut Runtime) -> R<()> {
    let f = |k: &str| format!("{base}.{k}");
    let s = |k: &str| opt_string(present(node, k), &f(k));
    if let Some(d) = node.get("devices") {
        rt.devices = devices(d, &f("devices"))?;
    }
    if let Some(r) = present(node, "device_cgroup_rules") {
        rt.device_cgroup_rules = strict_list(r, &f("device_cgroup_rules"))?;
    }
    if let Some(e) = present(node, "expose") {
        rt.expose = strict_list(e, &f("expose"))?;
        for (i, port) in rt.expose.iter().enumerate() {
            let number = port.split('/').next().unwrap_or_default();
            let ok = number
                .split('-')
                .all(|p| !p.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(err(
                    e,
                    &format!("{}[{i}]", f("expose")),
                    format!("invalid port {port:?} (expected 3000, 8000-8010 or 53/udp)"),
                ));
            }
        }
    }
    rt.mem_limit = bytes(node, "mem_limit", base)?;
    rt.mem_reservation = bytes(node, "mem_reservation", base)?;
    rt.memswap_limit = match present(node, "memswap_limit") {
        Some(n) if n.as_scalar() == Some("-1") => Some(-1),
        Some(_) => bytes(node, "memswap_limit", base)?.map(|b| b.min(i64::MAX as u64) as i64),
        None => None,
    };
    rt.mem_swappiness = int(node, "mem_swappiness", base)?;
    if let (Some(v), Some(n)) = (rt.mem_swappiness, node.get("mem_swappiness")) {
        if !(0..=100).contains(&v) {
            return Err(err(
                n,
                &f("mem_swappiness"),
                format!("{v} is not within 0..=100"),
            ));
        }
    }
    rt.cpus = match present(node, "cpus") {
        Some(c) => Some(number::<f64>(
            c,
            &f("cpus"),
            "a number of CPUs such as 0.5",
        )?),
        None => None,
    };
    rt.cpu_shares = int(node, "cpu_shares", base)?;
    rt.cpu_quota = int(node, "cpu_quota", base)?;
    rt.cpu_period = int(node, "cpu_period", base)?;
    rt.cpu_rt_period = int(node, "cpu_rt_period", base)?;
    rt.cpu_rt_runtime = int(node, "cpu_rt_runtime", base)?;
    rt.cpuset = s("cpuset")?;
    rt.pids_limit = int(node, "pids_limit", base)?;
    rt.oom_kill_disable = opt_bool(node.get("oom_kill_disable"), &f("oom_kill_disable"), false)?;
    rt.oom_score_adj = int(node, "oom_score_adj", base)?;
    if let (Some(v), Some(n)) = (rt.oom_score_adj, node.get("oom_score_adj")) {
        if !(-1000..=1000).contains(&v) {
            return Err(err(
                n,
                &f("oom_score_adj"),
                format!("{v} is not within -1000..=1000"),
            ));
        }
    }
    rt.pid = s("pid")?;
    rt.platform = s("platform")?;
    rt.ipc = s("ipc")?;
    rt.uts = s("uts")?;
    rt.userns_mode = s("userns_mode")?;
    rt.cgroup = s("cgroup")?;
    rt.cgroup_parent = s("cgroup_parent")?;
    rt.runtime = s("runtime")?;
    rt.domainname = s("domainname")?;
    rt.mac_address = s("mac_address")?;
    if let Some(o) = node.get("storage_opt") {
        rt.storage_opt = key_values(o, &f("storage_opt"), &|_| None)?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
    }
    if let Some(a) = node.get("annotations") {
        rt.annotations = key_values(a, &f("annotations"), &|_| None)?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
    }
    if let Some(l) = present(node, "external_links") {
        rt.external_links = strict_list(l, &f("external_links"))?;
    }
    Ok(())
}
