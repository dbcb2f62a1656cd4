//! Top-level `networks:` and `volumes:` entries: what `up` needs to create
//! (or find) them as Compose would, so a network keeps its subnets and
//! driver options and an external one keeps the name it was declared with.

use std::collections::BTreeMap;

use super::values::{err, labels, opt_bool, opt_string, string, R};
use crate::compose::model::{Ipam, IpamPool, Network, Volume};
use crate::compose::yaml::{Node, Value};

/// Reads `name:` and `external:` together, as compose-go's
/// transform/external.go: the legacy `external: {name: x}` means external
/// with name `x`; a different top-level `name:` beside it is an error.
fn name_and_external(node: &Node, path: &str) -> R<(Option<String>, bool)> {
    let name = opt_string(node.get("name"), &format!("{path}.name"))?;
    let ext_path = format!("{path}.external");
    match node.get("external") {
        Some(ext) if ext.entries().is_some() => {
            let legacy = opt_string(ext.get("name"), &format!("{ext_path}.name"))?;
            match (name, legacy) {
                (Some(n), Some(l)) if n != l => Err(err(
                    ext,
                    &ext_path,
                    format!(
                        "name {n:?} and external.name {l:?} conflict; use `name: {l}` with `external: true`"
                    ),
                )),
                (Some(n), _) => Ok((Some(n), true)),
                (None, legacy) => Ok((legacy, true)),
            }
        }
        other => Ok((name, opt_bool(other, &ext_path, false)?)),
    }
}

/// A `{key: string}` map (`driver_opts`, `ipam.options`, `aux_addresses`);
/// numbers and booleans are kept as written.
fn options(node: Option<&Node>, path: &str) -> R<BTreeMap<String, String>> {
    let Some(node) = node else {
        return Ok(BTreeMap::new());
    };
    match &node.value {
        Value::Null => Ok(BTreeMap::new()),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| Ok((k.name.clone(), string(v, &format!("{path}.{}", k.name))?)))
            .collect(),
        _ => Err(err(
            node,
            path,
            "expected a mapping of option names to values",
        )),
    }
}

fn ipam(node: &Node, path: &str) -> R<Ipam> {
    if node.entries().is_none() {
        return Err(err(
            node,
            path,
            "expected a mapping (driver, config, options)",
        ));
    }
    let mut config = Vec::new();
    if let Some(list) = node.get("config") {
        match &list.value {
            Value::Null => {}
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}.config[{i}]");
                    if item.entries().is_none() {
                        return Err(err(
                            item,
                            &p,
                            "expected a mapping (subnet, ip_range, gateway, aux_addresses)",
                        ));
                    }
                    config.push(IpamPool {
                        subnet: opt_string(item.get("subnet"), &format!("{p}.subnet"))?,
                        gateway: opt_string(item.get("gateway"), &format!("{p}.gateway"))?,
                        ip_range: opt_string(item.get("ip_range"), &format!("{p}.ip_range"))?,
                        aux_addresses: options(
                            item.get("aux_addresses"),
                            &format!("{p}.aux_addresses"),
                        )?,
                    });
                }
            }
            _ => return Err(err(list, &format!("{path}.config"), "expected a list")),
        }
    }
    Ok(Ipam {
        driver: opt_string(node.get("driver"), &format!("{path}.driver"))?,
        config,
        options: options(node.get("options"), &format!("{path}.options"))?,
    })
}

pub(super) fn network(node: &Node, path: &str) -> R<Network> {
    if node.is_null() {
        return Ok(Network::default());
    }
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    let (name, external) = name_and_external(node, path)?;
    Ok(Network {
        name,
        driver: opt_string(node.get("driver"), &format!("{path}.driver"))?,
        external,
        internal: opt_bool(node.get("internal"), &format!("{path}.internal"), false)?,
        labels: match node.get("labels") {
            Some(l) => labels(l, &format!("{path}.labels"))?,
            None => BTreeMap::new(),
        },
        driver_opts: options(node.get("driver_opts"), &format!("{path}.driver_opts"))?,
        ipam: match node.get("ipam") {
            Some(i) if !i.is_null() => Some(ipam(i, &format!("{path}.ipam"))?),
            _ => None,
        },
        attachable: opt_bool(node.get("attachable"), &format!("{path}.attachable"), false)?,
        enable_ipv6: match node.get("enable_ipv6") {
            Some(n) if !n.is_null() => {
                Some(opt_bool(Some(n), &format!("{path}.enable_ipv6"), false)?)
            }
            _ => None,
        },
    })
}

pub(super) fn volume(node: &Node, path: &str) -> R<Volume> {
    if node.is_null() {
        return Ok(Volume::default());
    }
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    let (name, external) = name_and_external(node, path)?;
    Ok(Volume {
        name,
        driver: opt_string(node.get("driver"), &format!("{path}.driver"))?,
        external,
        labels: match node.get("labels") {
            Some(l) => labels(l, &format!("{path}.labels"))?,
            None => BTreeMap::new(),
        },
        driver_opts: options(node.get("driver_opts"), &format!("{path}.driver_opts"))?,
    })
}
