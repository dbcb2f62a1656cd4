//! The project as Docker Compose prints it (`docker compose config`): the
//! shape and key order of compose-go's types (`Project`, `ServiceConfig`,
//! `NetworkConfig`, …), built on the same ordered [`Json`] the config hash
//! uses. `muster config` prints this; muster's own normalised model (with
//! Docker's healthcheck defaults, `replicas`, …) is `muster config --model`.
//!
//! Key order: YAML follows compose-go's `Project` struct (name, services,
//! networks, volumes, secrets, configs, then `x-*`); JSON sorts the top-level
//! keys, as compose-go's `Project.MarshalJSON` (a map) does. Inside a
//! service, the `ServiceConfig` field order. A secret's value is never here:
//! only where it comes from (`file`, `environment`).
//!
//! Pure: no I/O.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, SerializeSeq};

use super::hash::{service_shape, string_map, Json, Obj};
use super::model::{Ipam, Network, Project, Volume};
use super::objects::FileObject;

impl Json {
    /// A serde_json value in this ordered form (object keys as serde_json keeps them).
    pub fn from_value(v: &serde_json::Value) -> Json {
        match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Num(n.to_string()),
            serde_json::Value::String(s) => Json::Str(s.clone()),
            serde_json::Value::Array(a) => Json::Arr(a.iter().map(Json::from_value).collect()),
            serde_json::Value::Object(m) => Json::Obj(
                m.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }
}

impl serde::Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => ser.serialize_none(),
            Json::Bool(b) => ser.serialize_bool(*b),
            Json::Num(n) => match (n.parse::<i64>(), n.parse::<u64>(), n.parse::<f64>()) {
                (Ok(i), _, _) => ser.serialize_i64(i),
                (_, Ok(u), _) => ser.serialize_u64(u),
                (_, _, Ok(f)) => ser.serialize_f64(f),
                _ => ser.serialize_str(n),
            },
            Json::Str(s) => ser.serialize_str(s),
            Json::Arr(items) => {
                let mut seq = ser.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Json::Obj(fields) => {
                let mut map = ser.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

fn ipam(i: Option<&Ipam>) -> Json {
    let mut o = Obj::new();
    if let Some(i) = i {
        o.str("driver", i.driver.as_deref());
        if !i.config.is_empty() {
            let pools = i
                .config
                .iter()
                .map(|p| {
                    let mut po = Obj::new();
                    po.str("subnet", p.subnet.as_deref());
                    po.str("gateway", p.gateway.as_deref());
                    po.str("ip_range", p.ip_range.as_deref());
                    if !p.aux_addresses.is_empty() {
                        po.put("aux_addresses", string_map(&p.aux_addresses));
                    }
                    po.done()
                })
                .collect();
            o.put("config", Json::Arr(pools));
        }
        if !i.options.is_empty() {
            o.put("options", string_map(&i.options));
        }
    }
    o.done()
}

fn network(n: &Network) -> Json {
    let mut o = Obj::new();
    o.str("name", n.name.as_deref());
    o.str("driver", n.driver.as_deref());
    if !n.driver_opts.is_empty() {
        o.put("driver_opts", string_map(&n.driver_opts));
    }
    // A struct, not a pointer, in compose-go: always there.
    o.put("ipam", ipam(n.ipam.as_ref()));
    if n.external {
        o.put("external", Json::Bool(true));
    }
    if n.internal {
        o.put("internal", Json::Bool(true));
    }
    if n.attachable {
        o.put("attachable", Json::Bool(true));
    }
    if !n.labels.is_empty() {
        o.put("labels", string_map(&n.labels));
    }
    if let Some(v6) = n.enable_ipv6 {
        o.put("enable_ipv6", Json::Bool(v6));
    }
    o.done()
}

fn volume(v: &Volume) -> Json {
    let mut o = Obj::new();
    o.str("name", v.name.as_deref());
    o.str("driver", v.driver.as_deref());
    if !v.driver_opts.is_empty() {
        o.put("driver_opts", string_map(&v.driver_opts));
    }
    if v.external {
        o.put("external", Json::Bool(true));
    }
    if !v.labels.is_empty() {
        o.put("labels", string_map(&v.labels));
    }
    o.done()
}

/// A top-level secret or config: its source, never a secret's value.
fn file_object(f: &FileObject) -> Json {
    let mut o = Obj::new();
    o.str("name", f.name.as_deref());
    o.str("file", f.file.as_deref());
    o.str("environment", f.environment.as_deref());
    o.str("content", f.content.as_deref());
    if f.external {
        o.put("external", Json::Bool(true));
    }
    if !f.labels.is_empty() {
        o.put("labels", string_map(&f.labels));
    }
    o.done()
}

fn section<T>(items: &BTreeMap<String, T>, f: impl Fn(&T) -> Json) -> Json {
    Json::Obj(items.iter().map(|(k, v)| (k.clone(), f(v))).collect())
}

/// The project as `docker compose config` prints it; `sorted` puts the
/// top-level keys in JSON's (sorted) order, else YAML's struct order.
pub fn document(p: &Project, sorted: bool) -> Json {
    let mut top: Vec<(String, Json)> = Vec::new();
    top.push(("name".into(), Json::Str(p.name.clone())));
    top.push((
        "services".into(),
        section(&p.services, |s| {
            let shape = service_shape(s, true);
            match shape {
                // compose-go's YAML omits an unset command/entrypoint; its JSON has `null`.
                Json::Obj(fields) if !sorted => Json::Obj(
                    fields
                        .into_iter()
                        .filter(|(k, v)| {
                            !(matches!(v, Json::Null) && (k == "command" || k == "entrypoint"))
                        })
                        .collect(),
                ),
                other => other,
            }
        }),
    ));
    let sections = [
        (
            "networks",
            (!p.networks.is_empty()).then(|| section(&p.networks, network)),
        ),
        (
            "volumes",
            (!p.volumes.is_empty()).then(|| section(&p.volumes, volume)),
        ),
        (
            "secrets",
            (!p.secrets.is_empty()).then(|| section(&p.secrets, file_object)),
        ),
        (
            "configs",
            (!p.configs.is_empty()).then(|| section(&p.configs, file_object)),
        ),
    ];
    for (key, value) in sections {
        if let Some(v) = value {
            top.push((key.into(), v));
        }
    }
    for (k, v) in &p.extensions {
        top.push((k.clone(), Json::from_value(v)));
    }
    if sorted {
        top.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Json::Obj(top)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::Service;
    use crate::compose::objects::SecretValue;

    #[test]
    fn compose_order_and_no_secret_value() {
        let mut p = Project {
            name: "shop".into(),
            ..Default::default()
        };
        p.services.insert(
            "api".into(),
            Service {
                name: "api".into(),
                image: Some("api:1".into()),
                replicas: 2,
                ..Default::default()
            },
        );
        p.secrets.insert(
            "token".into(),
            FileObject {
                environment: Some("TOKEN".into()),
                value: Some(SecretValue("hunter2".into())),
                ..Default::default()
            },
        );
        let yaml_order = document(&p, false);
        let Json::Obj(fields) = &yaml_order else {
            panic!("an object")
        };
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["name", "services", "secrets"]);
        let text = serde_json::to_string(&document(&p, true)).unwrap_or_default();
        assert!(
            text.starts_with(r#"{"name":"shop","secrets":{"token":{"environment":"TOKEN"}}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""command":null,"entrypoint":null,"image":"api:1""#),
            "{text}"
        );
        assert!(text.contains(r#""scale":2"#), "{text}");
        assert!(!text.contains("hunter2"));
    }
}
