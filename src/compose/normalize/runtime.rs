//! The service keys that shape a container's runtime (`cap_add`, `dns`,
//! `extra_hosts`, `sysctls`, `ulimits`, `logging`, `tmpfs`, …) -> the model's
//! [`Runtime`]: so `up` creates the container Compose would, and `config
//! --json` and the config hash carry them.

use std::collections::BTreeMap;

use super::deploy::parse_bytes;
use super::values::{err, key_values, number, opt_bool, opt_string, strict_list, string, R};
use crate::compose::model::{Logging, Runtime, Ulimit};
use crate::compose::yaml::{Node, Value};

fn list(node: &Node, key: &str, base: &str) -> R<Vec<String>> {
    match node.get(key) {
        None => Ok(vec![]),
        Some(n) => match &n.value {
            // `dns`, `dns_search` and `tmpfs` also take one string.
            Value::Scalar { text, .. } if matches!(key, "dns" | "dns_search" | "tmpfs") => {
                Ok(vec![text.clone()])
            }
            _ => strict_list(n, &format!("{base}.{key}")),
        },
    }
}

/// `extra_hosts:` as a list (`host:ip` or `host=ip`) or a map (`host: ip`),
/// in compose-go's JSON form: `host=ip`, sorted.
fn extra_hosts(node: &Node, path: &str) -> R<Vec<String>> {
    let mut out = Vec::new();
    match &node.value {
        Value::Null => {}
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let text = string(item, &format!("{path}[{i}]"))?;
                let (host, ip) = text
                    .split_once('=')
                    .or_else(|| text.split_once(':'))
                    .ok_or_else(|| {
                        err(
                            item,
                            &format!("{path}[{i}]"),
                            format!("invalid extra host {text:?}: expected `host:ip` or `host=ip`"),
                        )
                    })?;
                out.push(format!("{host}={ip}"));
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                match &v.value {
                    Value::Seq(ips) => {
                        for (i, ip) in ips.iter().enumerate() {
                            let ip = string(ip, &format!("{path}.{}[{i}]", k.name))?;
                            out.push(format!("{}={ip}", k.name));
                        }
                    }
                    Value::Null => out.push(format!("{}=", k.name)),
                    _ => {
                        let ip = string(v, &format!("{path}.{}", k.name))?;
                        out.push(format!("{}={ip}", k.name));
                    }
                }
            }
        }
        Value::Scalar { .. } => return Err(err(node, path, "expected a list or a mapping")),
    }
    out.sort();
    Ok(out)
}

fn ulimits(node: &Node, path: &str) -> R<BTreeMap<String, Ulimit>> {
    let Some(entries) = node.entries() else {
        if node.is_null() {
            return Ok(BTreeMap::new());
        }
        return Err(err(node, path, "expected a mapping of limit names"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        let p = format!("{path}.{}", k.name);
        let limit = match &v.value {
            Value::Scalar { .. } => Ulimit::Single(number::<i64>(v, &p, "a whole number")?),
            Value::Map(_) => {
                let get = |key: &str| -> R<i64> {
                    let n = v.get(key).ok_or_else(|| {
                        err(
                            v,
                            &p,
                            format!("needs `soft` and `hard` (or one number), no `{key}`"),
                        )
                    })?;
                    number::<i64>(n, &format!("{p}.{key}"), "a whole number")
                };
                let (soft, hard) = (get("soft")?, get("hard")?);
                if soft > hard {
                    return Err(err(
                        v,
                        &p,
                        format!("soft limit {soft} is above hard limit {hard}"),
                    ));
                }
                Ulimit::Pair { soft, hard }
            }
            _ => return Err(err(v, &p, "expected a number or { soft, hard }")),
        };
        out.insert(k.name.clone(), limit);
    }
    Ok(out)
}

fn logging(node: &Node, path: &str) -> R<Logging> {
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping (driver, options)"));
    }
    let options = match node.get("options") {
        Some(o) => key_values(o, &format!("{path}.options"), &|_| None)?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
        None => BTreeMap::new(),
    };
    Ok(Logging {
        driver: opt_string(node.get("driver"), &format!("{path}.driver"))?,
        options,
    })
}

/// Reads the runtime keys of service node `node` (at `base`, `services.NAME`).
pub(super) fn runtime(node: &Node, base: &str) -> R<Runtime> {
    let f = |k: &str| format!("{base}.{k}");
    let mut rt = Runtime {
        cap_add: list(node, "cap_add", base)?,
        cap_drop: list(node, "cap_drop", base)?,
        dns: list(node, "dns", base)?,
        dns_opt: list(node, "dns_opt", base)?,
        dns_search: list(node, "dns_search", base)?,
        extra_hosts: match node.get("extra_hosts") {
            Some(n) => extra_hosts(n, &f("extra_hosts"))?,
            None => vec![],
        },
        group_add: list(node, "group_add", base)?,
        gpus: match node.get("gpus") {
            Some(n) => super::devices::gpus(n, &f("gpus"))?,
            None => vec![],
        },
        init: match node.get("init") {
            Some(n) if !n.is_null() => Some(opt_bool(Some(n), &f("init"), false)?),
            _ => None,
        },
        logging: match node.get("logging") {
            Some(n) if !n.is_null() => Some(logging(n, &f("logging"))?),
            _ => None,
        },
        privileged: opt_bool(node.get("privileged"), &f("privileged"), false)?,
        read_only: opt_bool(node.get("read_only"), &f("read_only"), false)?,
        security_opt: list(node, "security_opt", base)?,
        shm_size: match node.get("shm_size") {
            Some(n) if !n.is_null() => {
                let text = string(n, &f("shm_size"))?;
                Some(parse_bytes(&text).ok_or_else(|| {
                    err(
                        n,
                        &f("shm_size"),
                        format!("invalid size {text:?} (e.g. 64m, 1g, 1048576)"),
                    )
                })?)
            }
            _ => None,
        },
        stdin_open: opt_bool(node.get("stdin_open"), &f("stdin_open"), false)?,
        sysctls: match node.get("sysctls") {
            Some(n) => key_values(n, &f("sysctls"), &|_| None)?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
            None => BTreeMap::new(),
        },
        tmpfs: list(node, "tmpfs", base)?,
        tty: opt_bool(node.get("tty"), &f("tty"), false)?,
        ulimits: match node.get("ulimits") {
            Some(n) => ulimits(n, &f("ulimits"))?,
            None => BTreeMap::new(),
        },
        blkio_config: node
            .get("blkio_config")
            .filter(|n| !n.is_null())
            .map(|n| super::blkio::blkio(n, &f("blkio_config")))
            .transpose()?,
        ..Default::default()
    };
    super::limits::limits(node, base, &mut rt)?;
    Ok(rt)
}
