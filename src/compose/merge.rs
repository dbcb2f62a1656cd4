//! Merging a later compose file over an earlier one with Compose's rules
//! (compose-go `override/merge.go` and `override/uncity.go`): mappings merge
//! key by key; `command`, `entrypoint`, `healthcheck.test` and scalars are
//! replaced; `profiles`, `dns`, `dns_opt`, `dns_search` and `tmpfs` append
//! (a single string counts as a one-item list) without duplicates; `ports`
//! append, and an entry equal to an earlier one (the same text, or the same
//! host IP, published port, target and protocol) replaces it; `volumes` merge
//! by target; `environment`, `labels`, `build.args`, `extra_hosts`,
//! `sysctls`, `annotations` merge by key (list or map form); `depends_on` and
//! `networks` merge by name; `env_file` appends without duplicates;
//! `label_file`, `gpus` and `deploy.resources.*.devices` /
//! `generic_resources` append; other lists append without duplicates. A value tagged `!reset` removes what came
//! before; `!override` replaces it without merging. After the last merge,
//! [`enforce_unicity`] drops repeated `ports`, `volumes`, `expose`, `secrets`
//! and `configs` entries (a secret or config by the path it lands on) inside
//! each service, as Compose does even for a single file.

use super::yaml::{Key, Node, Tag, Value};

/// Merges `over` into `base` for the whole file.
pub fn merge_top(base: Node, over: Node) -> Node {
    merge_map_with(base, over, &|key, b, o| match key {
        // `svc:` left empty in an override changes nothing, as in Compose.
        "services" => merge_map_with(b, o, &|_, bs, os| {
            if os.is_null() {
                bs
            } else {
                merge_service(bs, os)
            }
        }),
        _ => merge_generic(b, o),
    })
}

/// Merges two service definitions (also used by `extends`).
pub fn merge_service(base: Node, over: Node) -> Node {
    merge_map_with(base, over, &|key, b, o| match key {
        "command" | "entrypoint" => o,
        "profiles" | "dns" | "dns_opt" | "dns_search" | "tmpfs" => {
            merge_list_by(as_seq(b), as_seq(o), scalar_key)
        }
        "environment" | "labels" | "extra_hosts" | "sysctls" | "annotations" => {
            merge_map_generic(to_keyed_map(b, '='), to_keyed_map(o, '='))
        }
        "depends_on" => merge_map_generic(depends_on_map(b), depends_on_map(o)),
        "networks" => merge_map_generic(list_to_null_map(b), list_to_null_map(o)),
        "ports" => merge_list_by(b, o, port_identity),
        "volumes" => merge_list_by(b, o, volume_key),
        "env_file" => merge_list_by(b, o, env_file_key),
        "label_file" | "gpus" => append_lists(b, o),
        "deploy" => merge_map_with(b, o, &|k, db, dov| match k {
            "resources" => merge_map_with(db, dov, &|_, rb, ro| {
                // limits / reservations: device requests and generic
                // resources append (compose-go's default for lists).
                merge_map_with(rb, ro, &|k, lb, lo| match k {
                    "devices" | "generic_resources" => append_lists(lb, lo),
                    _ => merge_generic(lb, lo),
                })
            }),
            _ => merge_generic(db, dov),
        }),
        "healthcheck" => merge_map_with(b, o, &|k, hb, ho| {
            if k == "test" {
                ho
            } else {
                merge_generic(hb, ho)
            }
        }),
        "build" => merge_map_with(build_map(b), build_map(o), &|k, bb, bo| {
            if k == "args" {
                merge_map_generic(to_keyed_map(bb, '='), to_keyed_map(bo, '='))
            } else {
                merge_generic(bb, bo)
            }
        }),
        _ => merge_generic(b, o),
    })
}

type Rule<'a> = &'a dyn Fn(&str, Node, Node) -> Node;

/// Merges two mappings; `rule` merges values present in both. Tags on `over`'s
/// values are honoured here; anything that is not a pair of mappings is replaced.
fn merge_map_with(base: Node, over: Node, rule: Rule<'_>) -> Node {
    if over.tag != Tag::None {
        return over;
    }
    let (Value::Map(mut entries), Value::Map(over_entries)) = (base.value, over.value.clone())
    else {
        return over;
    };
    for (k, v) in over_entries {
        let existing = entries.iter().position(|(e, _)| e.name == k.name);
        match (existing, v.tag) {
            (Some(i), Tag::Reset) => {
                entries.remove(i);
            }
            (None, Tag::Reset) => {}
            (Some(i), Tag::Override) => entries[i] = (k, untag(v)),
            (None, _) => entries.push((k, v)),
            (Some(i), Tag::None) => {
                let (old_key, old) = entries.remove(i);
                let merged = rule(&k.name, old, v);
                entries.insert(i, (old_key, merged));
            }
        }
    }
    Node {
        value: Value::Map(entries),
        pos: base.pos,
        tag: Tag::None,
    }
}

fn untag(mut n: Node) -> Node {
    n.tag = Tag::None;
    n
}

fn merge_map_generic(base: Node, over: Node) -> Node {
    merge_map_with(base, over, &|_, b, o| merge_generic(b, o))
}

/// Default rule: mappings merge, lists append what is new, anything else is replaced.
pub fn merge_generic(base: Node, over: Node) -> Node {
    if over.tag != Tag::None {
        return over;
    }
    match (&base.value, &over.value) {
        (Value::Map(_), Value::Map(_)) => merge_map_generic(base, over),
        (Value::Seq(_), Value::Seq(_)) => {
            merge_list_by(base, over, |n| Some(n.to_json().to_string()))
        }
        _ => over,
    }
}

/// Appends `over`'s items to `base`'s; an item whose key matches one in `base` replaces it.
fn merge_list_by(base: Node, over: Node, key: fn(&Node) -> Option<String>) -> Node {
    if over.tag != Tag::None {
        return over;
    }
    let (Value::Seq(mut items), Value::Seq(over_items)) = (base.value, over.value.clone()) else {
        return over;
    };
    append_unique(&mut items, over_items, key);
    Node {
        value: Value::Seq(items),
        pos: base.pos,
        tag: Tag::None,
    }
}

/// `["A=1", "B"]` -> `{A: "1", B: null}`; a mapping is returned as it is.
/// Appends `new` to `items`; an entry whose key matches an earlier one
/// replaces it where it stands (entries without a key are always appended).
/// Linear: keys are looked up in a map, not by scanning the list.
fn append_unique(
    items: &mut Vec<Node>,
    new: impl IntoIterator<Item = Node>,
    key: fn(&Node) -> Option<String>,
) {
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(k) = key(item) {
            at.entry(k).or_insert(i);
        }
    }
    for item in new {
        match key(&item) {
            Some(k) => match at.get(&k) {
                Some(&i) => items[i] = item,
                None => {
                    at.insert(k, items.len());
                    items.push(item);
                }
            },
            None => items.push(item),
        }
    }
}

pub fn to_keyed_map(node: Node, sep: char) -> Node {
    let Value::Seq(items) = &node.value else {
        return node;
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Some(text) = item.as_scalar() else {
            return node.clone();
        };
        let (k, v) = match text.split_once(sep) {
            Some((k, v)) => (k.to_string(), Node::str(v, item.pos.clone())),
            None => (text.to_string(), Node::new(Value::Null, item.pos.clone())),
        };
        entries.retain(|(e, _): &(Key, Node)| e.name != k);
        entries.push((
            Key {
                name: k,
                pos: item.pos.clone(),
            },
            v,
        ));
    }
    Node {
        value: Value::Map(entries),
        pos: node.pos,
        tag: node.tag,
    }
}

/// `[a, b]` -> `{a: null, b: null}`.
pub fn list_to_null_map(node: Node) -> Node {
    let Value::Seq(items) = &node.value else {
        return node;
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Some(text) = item.as_scalar() else {
            return node.clone();
        };
        entries.push((
            Key {
                name: text.to_string(),
                pos: item.pos.clone(),
            },
            Node::new(Value::Null, item.pos.clone()),
        ));
    }
    Node {
        value: Value::Map(entries),
        pos: node.pos,
        tag: node.tag,
    }
}

/// Short `depends_on: [db]` -> `{db: {condition: service_started, required: true}}`.
fn depends_on_map(node: Node) -> Node {
    let Value::Seq(items) = &node.value else {
        return node;
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Some(text) = item.as_scalar() else {
            return node.clone();
        };
        let p = item.pos.clone();
        let long = Node::new(
            Value::Map(vec![
                (
                    Key {
                        name: "condition".into(),
                        pos: p.clone(),
                    },
                    Node::str("service_started", p.clone()),
                ),
                (
                    Key {
                        name: "required".into(),
                        pos: p.clone(),
                    },
                    Node::new(
                        Value::Scalar {
                            text: "true".into(),
                            plain: true,
                        },
                        p.clone(),
                    ),
                ),
            ]),
            p.clone(),
        );
        entries.push((
            Key {
                name: text.to_string(),
                pos: p,
            },
            long,
        ));
    }
    Node {
        value: Value::Map(entries),
        pos: node.pos,
        tag: node.tag,
    }
}

fn build_map(node: Node) -> Node {
    match &node.value {
        Value::Scalar { .. } => Node {
            value: Value::Map(vec![(
                Key {
                    name: "context".into(),
                    pos: node.pos.clone(),
                },
                untag(node.clone()),
            )]),
            pos: node.pos.clone(),
            tag: node.tag,
        },
        _ => node,
    }
}

/// A lone scalar as a one-item list (`dns: 8.8.8.8`), anything else as it is.
fn as_seq(node: Node) -> Node {
    match node.value {
        Value::Scalar { .. } if node.tag == Tag::None => {
            let pos = node.pos.clone();
            Node {
                value: Value::Seq(vec![node]),
                pos,
                tag: Tag::None,
            }
        }
        _ => node,
    }
}

fn scalar_key(node: &Node) -> Option<String> {
    Some(node.to_json().to_string())
}

/// What makes two `ports` entries the same one (compose-go's port indexer):
/// the whole text of a short entry; host IP (default 0.0.0.0), published
/// port, target and protocol (default tcp) of a long one.
pub fn port_identity(node: &Node) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        Value::Map(_) => {
            let field = |k: &str| node.get(k).and_then(Node::as_scalar);
            Some(format!(
                "{}:{}:{}/{}",
                field("host_ip").unwrap_or("0.0.0.0"),
                field("published").unwrap_or(""),
                field("target")?,
                field("protocol").unwrap_or("tcp"),
            ))
        }
        _ => None,
    }
}

/// Drops repeated entries of each service's `ports` (by [`port_identity`]),
/// `volumes` (by target) and `expose`; a repeat replaces the first one where
/// it stood. Run after the last merge.
pub fn enforce_unicity(tree: &mut Node) {
    let Some(Value::Map(services)) = tree.get_mut("services").map(|services| &mut services.value)
    else {
        return;
    };
    for (_, service) in services.iter_mut() {
        let Value::Map(entries) = &mut service.value else {
            continue;
        };
        for (key, value) in entries.iter_mut() {
            let index: fn(&Node) -> Option<String> = match key.name.as_str() {
                "ports" => port_identity,
                "volumes" => volume_key,
                "expose" => scalar_text,
                "secrets" => secret_key,
                "configs" => config_key,
                _ => continue,
            };
            if let Value::Seq(items) = &mut value.value {
                let all = std::mem::take(items);
                append_unique(items, all, index);
            }
        }
    }
}

/// compose-go uncity.go mountIndexer("/run/secrets"): a secret is the same
/// one as an earlier entry when it lands on the same path: its `target`, or
/// `/run/secrets/<source>`.
fn secret_key(node: &Node) -> Option<String> {
    mount_key(node, "/run/secrets")
}

/// mountIndexer(""): a config's `target`, or `/<source>`.
fn config_key(node: &Node) -> Option<String> {
    mount_key(node, "")
}

fn mount_key(node: &Node, default_dir: &str) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(format!("{default_dir}/{text}")),
        Value::Map(_) => match node.get("target").and_then(Node::as_scalar) {
            Some(t) => Some(t.to_string()),
            None => Some(format!(
                "{default_dir}/{}",
                node.get("source").and_then(Node::as_scalar)?
            )),
        },
        _ => None,
    }
}

/// `label_file` (compose-go mergeToSequence) and `gpus`: both sides as lists,
/// appended as they are (no de-duplication); `gpus: all` counts as the one
/// request `{count: all}`, as compose-go's transform makes it before merging.
fn append_lists(base: Node, over: Node) -> Node {
    if over.tag != Tag::None {
        return over;
    }
    let (b, o) = (
        gpus_all_as_list(as_seq(base)),
        gpus_all_as_list(as_seq(over)),
    );
    let (Value::Seq(mut items), Value::Seq(more)) = (b.value, o.value.clone()) else {
        return o;
    };
    items.extend(more);
    Node {
        value: Value::Seq(items),
        pos: b.pos,
        tag: Tag::None,
    }
}

/// `[all]` (a lone `all` made a list by [`as_seq`]) -> `[{count: all}]`.
fn gpus_all_as_list(mut node: Node) -> Node {
    if let Value::Seq(items) = &mut node.value {
        for item in items.iter_mut() {
            if item.as_scalar() == Some("all") {
                let pos = item.pos.clone();
                let key = Key {
                    name: "count".into(),
                    pos: pos.clone(),
                };
                *item = Node::new(Value::Map(vec![(key, item.clone())]), pos);
            }
        }
    }
    node
}

fn scalar_text(node: &Node) -> Option<String> {
    node.as_scalar().map(str::to_string)
}

/// Target path of a short or long volume entry.
pub fn volume_key(node: &Node) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => {
            let parts: Vec<&str> = text.split(':').collect();
            match parts.len() {
                1 => Some(parts[0].to_string()),
                _ => Some(parts[1].to_string()),
            }
        }
        Value::Map(_) => node.get("target")?.as_scalar().map(str::to_string),
        _ => None,
    }
}

fn env_file_key(node: &Node) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        Value::Map(_) => node.get("path")?.as_scalar().map(str::to_string),
        _ => None,
    }
}

/// After the last merge: drops keys still tagged `!reset` and clears `!override` tags.
pub fn strip_tags(node: &mut Node) {
    node.tag = Tag::None;
    match &mut node.value {
        Value::Map(entries) => {
            entries.retain(|(_, v)| v.tag != Tag::Reset);
            for (_, v) in entries.iter_mut() {
                strip_tags(v);
            }
        }
        Value::Seq(items) => {
            items.retain(|v| v.tag != Tag::Reset);
            for v in items.iter_mut() {
                strip_tags(v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn yaml(text: &str) -> Node {
        crate::compose::yaml::parse(text, &Arc::from("t.yaml")).expect("test YAML parses")
    }

    fn service(tree: &Node) -> serde_json::Value {
        tree.get("services").unwrap().get("s").unwrap().to_json()
    }

    #[test]
    fn dns_tmpfs_and_profiles_append_and_a_string_is_one_item() {
        // compose-go override/merge_dns_test.go (Test_mergeYamlDNSMixed) and
        // merge_tmpfs_test.go (TestMergeTmpfsString).
        let base = yaml(
            "services:\n  s:\n    dns: [8.8.8.8, 9.9.9.9]\n    dns_search: dc1.example.com\n    tmpfs: /foo\n    profiles: [p1, p2]\n",
        );
        let over = yaml(
            "services:\n  s:\n    dns: 9.9.9.9\n    dns_search: [dc2.example.com]\n    tmpfs: /bar\n    profiles: [p2, p3]\n",
        );
        let s = service(&merge_top(base, over));
        assert_eq!(s["dns"], serde_json::json!(["8.8.8.8", "9.9.9.9"]));
        assert_eq!(
            s["dns_search"],
            serde_json::json!(["dc1.example.com", "dc2.example.com"])
        );
        assert_eq!(s["tmpfs"], serde_json::json!(["/foo", "/bar"]));
        assert_eq!(s["profiles"], serde_json::json!(["p1", "p2", "p3"]));
    }

    #[test]
    fn repeated_ports_volumes_and_expose_in_one_service_are_dropped() {
        // compose-go override/uncity_test.go: Test_PortsShortUnicity,
        // Test_PortsLongtUnicity, Test_VolumeUnicity.
        let mut tree = yaml(
            r#"services:
  s:
    ports:
      - "9080:80"
      - "9081:81"
      - "9080:80"
      - "5000"
      - "6060:6060/udp"
      - "9080:6060/udp"
      - { target: 80, host_ip: 127.0.0.1, published: "8080", protocol: tcp, mode: host }
      - { target: 81, published: "8080", protocol: tcp }
      - { target: 80, host_ip: 127.0.0.2, published: "8080", protocol: tcp }
      - { target: 81, published: "8080" }
    volumes:
      - .:/foo
      - foo:/bar
      - src:/foo
    expose: ["3000", "3000", "4000"]
"#,
        );
        enforce_unicity(&mut tree);
        let s = service(&tree);
        let ports: Vec<String> = s["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| match p {
                serde_json::Value::String(t) => t.clone(),
                other => format!("{}:{}", other["host_ip"], other["target"]),
            })
            .collect();
        assert_eq!(
            ports,
            [
                "9080:80",
                "9081:81",
                "5000",
                "6060:6060/udp",
                "9080:6060/udp",
                "\"127.0.0.1\":80",
                "null:81",
                "\"127.0.0.2\":80"
            ]
        );
        assert_eq!(s["volumes"], serde_json::json!(["src:/foo", "foo:/bar"]));
        assert_eq!(s["expose"], serde_json::json!(["3000", "4000"]));
    }
}
