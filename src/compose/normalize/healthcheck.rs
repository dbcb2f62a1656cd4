//! A service's `healthcheck:`: the test in its three forms, the timings with
//! Docker's defaults filled in, and `disable: true`. Kept apart because grace
//! tuning and `service_healthy` read these values as Docker would.

use super::values::{err, number, opt_bool, opt_duration, strict_list, R};
use crate::compose::model::*;
use crate::compose::yaml::{Node, Value};

pub(super) fn healthcheck(node: &Node, path: &str) -> R<Option<Healthcheck>> {
    if node.is_null() {
        return Ok(None);
    }
    if node.entries().is_none() {
        return Err(err(node, path, "expected a mapping"));
    }
    let f = |k: &str| format!("{path}.{k}");
    let mut hc = Healthcheck::default();
    if let Some(t) = node.get("test") {
        hc.test = match &t.value {
            Value::Null => None,
            Value::Scalar { text, .. } => Some(HealthTest::CmdShell(text.clone())),
            Value::Seq(_) => {
                let items = strict_list(t, &f("test"))?;
                match items.first().map(String::as_str) {
                    Some("NONE") => Some(HealthTest::None),
                    Some("CMD") => Some(HealthTest::Cmd(items[1..].to_vec())),
                    Some("CMD-SHELL") => Some(HealthTest::CmdShell(items[1..].join(" "))),
                    Some(other) => {
                        return Err(err(
                            t,
                            &f("test"),
                            format!(
                                "a list test starts with NONE, CMD or CMD-SHELL, found {other:?}"
                            ),
                        ))
                    }
                    None => return Err(err(t, &f("test"), "empty test")),
                }
            }
            Value::Map(_) => return Err(err(t, &f("test"), "expected a string or a list")),
        };
    }
    if let Some(d) = opt_duration(node.get("interval"), &f("interval"))? {
        hc.interval = d;
    }
    if let Some(d) = opt_duration(node.get("timeout"), &f("timeout"))? {
        hc.timeout = d;
    }
    if let Some(r) = node.get("retries").filter(|r| !r.is_null()) {
        hc.retries = number::<u32>(r, &f("retries"), "a whole number")?;
    }
    let start_period = opt_duration(node.get("start_period"), &f("start_period"))?;
    let start_interval = opt_duration(node.get("start_interval"), &f("start_interval"))?;
    if let (Some(_), None) = (start_interval, start_period) {
        let n = node.get("start_interval").unwrap_or(node);
        return Err(err(
            n,
            &f("start_interval"),
            "start_interval requires start_period to be set (Compose refuses start_interval without start_period)",
        ));
    }
    if let Some(d) = start_period {
        hc.start_period = d;
    }
    if let Some(d) = start_interval {
        hc.start_interval = d;
    }
    hc.disable = opt_bool(node.get("disable"), &f("disable"), false)?;
    if hc.disable {
        if matches!(hc.test, Some(HealthTest::Cmd(_) | HealthTest::CmdShell(_))) {
            return Err(err(
                node,
                &f("disable"),
                "disable: true with a test; remove one of them",
            ));
        }
        hc.test = Some(HealthTest::None);
    } else if hc.test == Some(HealthTest::None) {
        hc.disable = true;
    }
    Ok(Some(hc))
}
