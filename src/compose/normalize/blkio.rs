//! `blkio_config:` -> [`BlkioConfig`], each field read with its own path so a
//! wrong weight or rate is reported where it is written.

use super::deploy::parse_bytes;
use super::values::{err, number, string, R};
use crate::compose::model::{BlkioConfig, ThrottleDevice, WeightDevice};
use crate::compose::yaml::{Node, Value};

fn weight(node: &Node, path: &str) -> R<u16> {
    let w: u16 = number(node, path, "a weight from 10 to 1000")?;
    if (10..=1000).contains(&w) {
        Ok(w)
    } else {
        Err(err(
            node,
            path,
            format!("weight {w} is out of range (10 to 1000)"),
        ))
    }
}

fn items<'a>(node: &'a Node, path: &str) -> R<&'a [Node]> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(err(node, path, "expected a list of {path, ...} entries")),
    }
}

fn device_path(item: &Node, p: &str) -> R<String> {
    let n = item
        .get("path")
        .ok_or_else(|| err(item, p, "an entry needs `path:`"))?;
    string(n, &format!("{p}.path"))
}

fn throttles(node: Option<&Node>, path: &str, bytes: bool) -> R<Vec<ThrottleDevice>> {
    let Some(node) = node else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for (i, item) in items(node, path)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let rate_node = item
            .get("rate")
            .ok_or_else(|| err(item, &p, "an entry needs `rate:`"))?;
        let rp = format!("{p}.rate");
        let rate = if bytes {
            let text = string(rate_node, &rp)?;
            parse_bytes(&text).ok_or_else(|| {
                err(
                    rate_node,
                    &rp,
                    format!("invalid rate {text:?} (e.g. 12mb, 1048576)"),
                )
            })?
        } else {
            number(rate_node, &rp, "a whole number of operations per second")?
        };
        out.push(ThrottleDevice {
            path: device_path(item, &p)?,
            rate,
        });
    }
    Ok(out)
}

pub(super) fn blkio(node: &Node, path: &str) -> R<BlkioConfig> {
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    let f = |k: &str| format!("{path}.{k}");
    let mut weight_device = Vec::new();
    if let Some(n) = node.get("weight_device") {
        for (i, item) in items(n, &f("weight_device"))?.iter().enumerate() {
            let p = format!("{}[{i}]", f("weight_device"));
            let w = item
                .get("weight")
                .ok_or_else(|| err(item, &p, "an entry needs `weight:`"))?;
            weight_device.push(WeightDevice {
                path: device_path(item, &p)?,
                weight: weight(w, &format!("{p}.weight"))?,
            });
        }
    }
    Ok(BlkioConfig {
        weight: match node.get("weight").filter(|n| !n.is_null()) {
            Some(n) => weight(n, &f("weight"))?,
            None => 0,
        },
        weight_device,
        device_read_bps: throttles(node.get("device_read_bps"), &f("device_read_bps"), true)?,
        device_read_iops: throttles(node.get("device_read_iops"), &f("device_read_iops"), false)?,
        device_write_bps: throttles(node.get("device_write_bps"), &f("device_write_bps"), true)?,
        device_write_iops: throttles(
            node.get("device_write_iops"),
            &f("device_write_iops"),
            false,
        )?,
    })
}
