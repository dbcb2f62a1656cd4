//! A service's `ports:`: the short syntax
//! `[HOST_IP:][HOST_PORT[-RANGE]:]CONTAINER_PORT[-RANGE][/PROTOCOL]` (ranges
//! expanded, IPv6 host addresses) and the long syntax, into [`Port`]s. Its own
//! file because the short syntax is the most intricate one Compose has.

use super::values::{err, opt_string, string, R};
use crate::compose::model::*;
use crate::compose::yaml::{Node, Value};

fn port_number(text: &str, node: &Node, path: &str) -> R<u16> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| err(node, path, format!("invalid port {text:?}")))
}

fn port_range(text: &str, node: &Node, path: &str) -> R<(u16, u16)> {
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_number(a, node, path)?, port_number(b, node, path)?);
            if b < a {
                return Err(err(node, path, format!("invalid port range {text:?}")));
            }
            Ok((a, b))
        }
        None => {
            let p = port_number(text, node, path)?;
            Ok((p, p))
        }
    }
}

/// Short syntax: `[HOST_IP:][HOST_PORT[-RANGE]:]CONTAINER_PORT[-RANGE][/PROTOCOL]`.
fn short_port(text: &str, node: &Node, path: &str) -> R<Vec<Port>> {
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((s, p)) => (s, p.to_string()),
        None => (text, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(err(
            node,
            path,
            format!("invalid protocol {protocol:?} in port {text:?}"),
        ));
    }
    // An IPv6 host address is written in brackets: `[::1]:8080:80`.
    let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .ok_or_else(|| err(node, path, format!("invalid port {text:?}")))?;
        (
            Some(ip.to_string()),
            after.strip_prefix(':').unwrap_or(after),
        )
    } else {
        (None, spec)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, published, container) = match (host_ip, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [ip, h, c]) => (Some(ip.to_string()), Some(*h), *c),
        (Some(ip), [h, c]) => (Some(ip), Some(*h), *c),
        _ => return Err(err(node, path, format!("invalid port {text:?}"))),
    };
    let (c_lo, c_hi) = port_range(container, node, path)?;
    let published = published.filter(|p| !p.is_empty());
    let count = (c_hi - c_lo) as usize + 1;
    let host_range = match published {
        Some(p) if p.contains('-') => {
            let (h_lo, h_hi) = port_range(p, node, path)?;
            if (h_hi - h_lo) as usize + 1 == count {
                Some((h_lo, true))
            } else if count == 1 {
                None
            } else {
                return Err(err(
                    node,
                    path,
                    format!("port ranges of different sizes in {text:?}"),
                ));
            }
        }
        Some(p) => {
            let h = port_number(p, node, path)?;
            Some((h, count > 1))
        }
        None => None,
    };
    let mut out = Vec::with_capacity(count);
    for (i, target) in (c_lo..=c_hi).enumerate() {
        let published = match (published, host_range) {
            (None, _) => None,
            (Some(_), Some((lo, true))) => Some((lo as usize + i).to_string()),
            (Some(p), _) => Some(p.to_string()),
        };
        out.push(Port {
            target,
            published,
            host_ip: host_ip.clone().filter(|ip| !ip.is_empty()),
            protocol: protocol.clone(),
        });
    }
    Ok(out)
}

pub(super) fn ports(node: &Node, path: &str) -> R<Vec<Port>> {
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
            Value::Scalar { text, .. } => out.extend(short_port(text, item, &p)?),
            Value::Map(_) => {
                let target_node = item
                    .get("target")
                    .ok_or_else(|| err(item, &p, "a long-syntax port needs `target:`"))?;
                let target = port_number(
                    &string(target_node, &format!("{p}.target"))?,
                    target_node,
                    &format!("{p}.target"),
                )?;
                out.push(Port {
                    target,
                    published: opt_string(item.get("published"), &format!("{p}.published"))?,
                    host_ip: opt_string(item.get("host_ip"), &format!("{p}.host_ip"))?,
                    protocol: opt_string(item.get("protocol"), &format!("{p}.protocol"))?
                        .unwrap_or_else(|| "tcp".to_string()),
                });
            }
            _ => return Err(err(item, &p, "expected a port string or mapping")),
        }
    }
    Ok(out)
}
