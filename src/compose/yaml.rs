//! YAML text -> an untyped tree that remembers where every node came from.
//!
//! Built on the event parser serde-saphyr uses (`serde_saphyr::granit_parser`), so
//! that positions, tags (`!reset`, `!override`) and scalar styles survive. Anchors
//! and aliases are expanded here, merge keys (`<<: *anchor`) are applied here, and
//! an expansion budget refuses alias bombs (billion laughs) before they cost memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// Most nodes a file may expand to, aliases included. A 500-service stack is about
/// 20k nodes; a billion-laughs document asks for 10^9 and is refused after
/// about 200k, holding a few MB.
pub const MAX_NODES: usize = 200_000;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 256;

/// Where a node starts: file, 1-based line, 1-based column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// Tags compose gives meaning to in override files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    None,
    /// `!reset`: remove the value inherited from earlier files.
    Reset,
    /// `!override`: replace the inherited value instead of merging.
    Override,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar's text; `plain` is false for quoted and block scalars (always strings).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
    pub tag: Tag,
}

#[derive(Debug, Clone)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    pub fn new(value: Value, pos: Pos) -> Node {
        Node {
            value,
            pos,
            tag: Tag::None,
        }
    }

    pub fn str(text: impl Into<String>, pos: Pos) -> Node {
        Node::new(
            Value::Scalar {
                text: text.into(),
                plain: false,
            },
            pos,
        )
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.name == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn entries(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// What the node is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Converts to JSON with YAML 1.2 core-schema typing of plain scalars.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Scalar { text, plain } => {
                if *plain {
                    plain_to_json(text)
                } else {
                    serde_json::Value::String(text.clone())
                }
            }
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Number of nodes in this subtree.
    pub fn size(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|(_, v)| 1 + v.size()).sum(),
            _ => 0,
        }
    }
}

/// YAML 1.2 core schema for a plain scalar.
pub fn plain_to_json(text: &str) -> serde_json::Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return serde_json::Value::Null,
        "true" | "True" | "TRUE" => return serde_json::Value::Bool(true),
        "false" | "False" | "FALSE" => return serde_json::Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return serde_json::Value::from(i);
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                return serde_json::Value::Number(n);
            }
        }
    }
    serde_json::Value::String(text.to_string())
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
        tag: Tag,
    },
    Map {
        entries: Vec<(Key, Node)>,
        pending_key: Option<Node>,
        pos: Pos,
        anchor: usize,
        tag: Tag,
        merges: Vec<Node>,
    },
}

fn tag_of(tag: Option<&serde_saphyr::granit_parser::Tag>) -> Tag {
    match tag {
        Some(t) if t.handle() == "!" && t.suffix() == "reset" => Tag::Reset,
        Some(t) if t.handle() == "!" && t.suffix() == "override" => Tag::Override,
        _ => Tag::None,
    }
}

/// Parses one YAML document into a [`Node`]. An empty file is `Null`.
pub fn parse(text: &str, file: &Arc<str>) -> Result<Node, YamlError> {
    let pos_at = |line: usize, col: usize| Pos {
        file: file.clone(),
        line,
        col: col + 1,
    };
    let mut parser = Parser::new_from_str(text);
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut budget: usize = 0;
    let mut documents = 0usize;

    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError {
            pos: pos_at(e.marker().line(), e.marker().col()),
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let pos = pos_at(span.start.line(), span.start.col());
        let mut finished: Option<(Node, usize)> = None;
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        pos,
                        message: "a compose file holds one YAML document; found a second `---`"
                            .into(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                budget += 1;
                let plain = matches!(style, ScalarStyle::Plain);
                let tag = tag_of(tag.as_deref());
                let value = if plain && matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        plain,
                    }
                };
                finished = Some((Node { value, pos, tag }, anchor));
            }
            Event::Alias(id) => {
                let (node, size) = anchors.get(&id).cloned().ok_or_else(|| YamlError {
                    pos: pos.clone(),
                    message: "alias refers to an unknown anchor".into(),
                })?;
                budget = budget.saturating_add(size);
                if budget > MAX_NODES {
                    return Err(budget_error(pos));
                }
                finished = Some((node, 0));
            }
            Event::SequenceStart(_, anchor, tag) => {
                budget += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos,
                    anchor,
                    tag: tag_of(tag.as_deref()),
                });
            }
            Event::MappingStart(_, anchor, tag) => {
                budget += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    pending_key: None,
                    pos,
                    anchor,
                    tag: tag_of(tag.as_deref()),
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    items,
                    pos,
                    anchor,
                    tag,
                }) = stack.pop()
                {
                    finished = Some((
                        Node {
                            value: Value::Seq(items),
                            pos,
                            tag,
                        },
                        anchor,
                    ));
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    mut entries,
                    pos,
                    anchor,
                    tag,
                    merges,
                    ..
                }) = stack.pop()
                {
                    // `<<` merge keys: keys written in the mapping win, then earlier sources.
                    for source in merges {
                        let Value::Map(source_entries) = source.value else {
                            continue;
                        };
                        for (k, v) in source_entries {
                            if !entries.iter().any(|(e, _)| e.name == k.name) {
                                budget += 1;
                                entries.push((k, v));
                            }
                        }
                    }
                    if budget > MAX_NODES {
                        return Err(budget_error(pos));
                    }
                    finished = Some((
                        Node {
                            value: Value::Map(entries),
                            pos,
                            tag,
                        },
                        anchor,
                    ));
                }
            }
            _ => {}
        }
        if budget > MAX_NODES {
            return Err(budget_error(pos_at(span.start.line(), span.start.col())));
        }
        let Some((node, anchor)) = finished else {
            continue;
        };
        if anchor != 0 {
            let size = node.size();
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                merges,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    let name = match &key.value {
                        Value::Scalar { text, .. } => text.clone(),
                        Value::Null => "null".to_string(),
                        _ => {
                            return Err(YamlError {
                                pos: key.pos,
                                message: "mapping keys must be scalars".into(),
                            })
                        }
                    };
                    let is_merge =
                        name == "<<" && matches!(&key.value, Value::Scalar { plain: true, .. });
                    if is_merge {
                        match node.value {
                            Value::Map(_) => merges.push(node),
                            Value::Seq(items) => {
                                for item in items {
                                    if !matches!(item.value, Value::Map(_)) {
                                        return Err(YamlError {
                                            pos: item.pos,
                                            message: "a `<<` merge key takes a mapping or a list of mappings".into(),
                                        });
                                    }
                                    merges.push(item);
                                }
                            }
                            _ => {
                                return Err(YamlError {
                                    pos: node.pos,
                                    message:
                                        "a `<<` merge key takes a mapping or a list of mappings"
                                            .into(),
                                })
                            }
                        }
                    } else {
                        if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name) {
                            return Err(YamlError {
                                pos: key.pos,
                                message: format!(
                                    "duplicate key {name:?} (first defined at line {})",
                                    first.pos.line
                                ),
                            });
                        }
                        entries.push((Key { name, pos: key.pos }, node));
                    }
                }
            },
        }
    }
    Ok(root.unwrap_or_else(|| Node::new(Value::Null, pos_at(1, 0))))
}

fn budget_error(pos: Pos) -> YamlError {
    YamlError {
        pos,
        message: format!(
            "document expands to more than {MAX_NODES} nodes through aliases (YAML alias bomb?); refused"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Node, YamlError> {
        parse(text, &Arc::from("t.yaml"))
    }

    #[test]
    fn positions_tags_and_merge_keys() {
        let n = p("x-base: &b\n  a: 1\n  b: 2\nsvc:\n  <<: *b\n  b: 3\n  p: !reset []\n").unwrap();
        let svc = n.get("svc").unwrap();
        assert_eq!(svc.get("a").unwrap().as_scalar(), Some("1"));
        assert_eq!(svc.get("b").unwrap().as_scalar(), Some("3"));
        assert_eq!(svc.get("p").unwrap().tag, Tag::Reset);
        assert_eq!(svc.get("b").unwrap().pos.line, 6);
        assert_eq!(svc.get("b").unwrap().pos.col, 6);
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut doc = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..10 {
            let prev = i - 1;
            doc.push_str(&format!("a{i}: &a{i} [*a{prev},*a{prev},*a{prev},*a{prev},*a{prev},*a{prev},*a{prev},*a{prev},*a{prev}]\n"));
        }
        let err = p(&doc).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{}", err.message);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = p("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("YAML syntax error"));
        assert!(err.pos.line >= 1);
    }
}
