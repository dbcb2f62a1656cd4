//! `gpus:`, `deploy.resources.reservations.devices` and
//! `deploy.resources.reservations.generic_resources` -> the model's
//! [`DeviceRequest`] and [`GenericResource`], with compose-go's rules:
//! `gpus: all` is one request for every GPU (transform/gpus.go); an entry
//! with neither `count` nor `device_ids` asks for all (transform/devices.go);
//! `count` is a number or `all` (types/device.go DeviceCount); `count` and
//! `device_ids` exclude each other (validation/validation.go
//! checkDeviceRequest); a device reservation needs `capabilities` (the
//! compose-spec schema's `devices` item requires it, `gpus` items do not).

use super::values::{err, items, labels, number, opt_string, strict_list, string, R};
use crate::compose::model::{DeviceRequest, DiscreteResource, GenericResource};
use crate::compose::yaml::{Node, Value};

/// A service's `gpus:` (`all`, or a list of requests).
pub(super) fn gpus(node: &Node, path: &str) -> R<Vec<DeviceRequest>> {
    match &node.value {
        Value::Null => Ok(vec![]),
        Value::Scalar { text, .. } if text == "all" => Ok(vec![DeviceRequest {
            count: -1,
            ..Default::default()
        }]),
        Value::Scalar { text, .. } => Err(err(
            node,
            path,
            format!("invalid gpus {text:?} (expected `all` or a list of {{driver, count, device_ids, capabilities, options}})"),
        )),
        _ => requests(node, path, false),
    }
}

/// `deploy.resources.reservations.devices`.
pub(super) fn reserved_devices(node: &Node, path: &str) -> R<Vec<DeviceRequest>> {
    requests(node, path, true)
}

fn requests(node: &Node, path: &str, need_capabilities: bool) -> R<Vec<DeviceRequest>> {
    items(node, path, "expected a list of device requests")?
        .iter()
        .enumerate()
        .map(|(i, item)| request(item, &format!("{path}[{i}]"), need_capabilities))
        .collect()
}

fn request(node: &Node, path: &str, need_capabilities: bool) -> R<DeviceRequest> {
    if node.entries().is_none() {
        return Err(err(
            node,
            path,
            "expected a mapping {driver, count, device_ids, capabilities, options}",
        ));
    }
    let f = |k: &str| format!("{path}.{k}");
    let present = |k: &str| node.get(k).filter(|n| !n.is_null());
    let capabilities = match present("capabilities") {
        Some(c) => strict_list(c, &f("capabilities"))?,
        None if need_capabilities => {
            return Err(err(
                node,
                &f("capabilities"),
                "a device reservation needs `capabilities` (e.g. `capabilities: [gpu]`), \
                 as the Compose specification requires",
            ))
        }
        None => vec![],
    };
    let device_ids = match present("device_ids") {
        Some(d) => strict_list(d, &f("device_ids"))?,
        None => vec![],
    };
    let count = match present("count") {
        Some(c) if present("device_ids").is_some() => {
            return Err(err(
                c,
                &f("count"),
                "`count` and `device_ids` exclude each other: set one of them",
            ))
        }
        Some(c) => count(c, &f("count"))?,
        // compose-go deviceRequestDefaults: neither count nor ids = all.
        None if device_ids.is_empty() => -1,
        None => 0,
    };
    Ok(DeviceRequest {
        capabilities,
        driver: opt_string(node.get("driver"), &f("driver"))?,
        count,
        device_ids,
        options: match present("options") {
            Some(o) => labels(o, &f("options"))?,
            None => Default::default(),
        },
    })
}

/// compose-go DeviceCount: `all` (any case) is -1, else a whole number.
fn count(node: &Node, path: &str) -> R<i64> {
    let text = string(node, path)?;
    if text.eq_ignore_ascii_case("all") {
        return Ok(-1);
    }
    text.trim().parse::<i64>().map_err(|_| {
        err(
            node,
            path,
            format!("invalid count {text:?} (expected `all` or a number of devices)"),
        )
    })
}

/// `generic_resources: [{discrete_resource_spec: {kind, value}}]`.
pub(super) fn generic_resources(node: &Node, path: &str) -> R<Vec<GenericResource>> {
    let list = items(
        node,
        path,
        "expected a list of {discrete_resource_spec: {kind, value}}",
    )?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if item.entries().is_none() {
            return Err(err(
                item,
                &p,
                "expected {discrete_resource_spec: {kind, value}}",
            ));
        }
        let spec = match item.get("discrete_resource_spec").filter(|n| !n.is_null()) {
            None => None,
            Some(d) => {
                let dp = format!("{p}.discrete_resource_spec");
                let kind = match d.get("kind").filter(|n| !n.is_null()) {
                    Some(k) => string(k, &format!("{dp}.kind"))?,
                    None => String::new(),
                };
                let value = match d.get("value").filter(|n| !n.is_null()) {
                    Some(v) => number::<i64>(v, &format!("{dp}.value"), "a whole number")?,
                    None => 0,
                };
                Some(DiscreteResource { kind, value })
            }
        };
        out.push(GenericResource {
            discrete_resource_spec: spec,
        });
    }
    Ok(out)
}
