//! YAML text -> an untyped tree that remembers where every node came from.
//!
//! Built on the event parser serde-saphyr uses (`serde_saphyr::granit_parser`), so
//! that positions, tags (`!reset`, `!override`) and scalar styles survive. Anchors
//! and aliases are expanded here, merge keys (`<<: *anchor`) are applied here, and
//! an expansion budget refuses alias bombs (billion laughs) before they cost memory.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// Nodes a file may always copy through aliases (each alias costs the size of what
/// it refers to). Nodes written out in the text do not count: a file with no
/// aliases is never refused here (its size is bounded by the file size limit).
/// A 500-service stack merging one anchor per service copies about 4k; a
/// billion-laughs document asks for 10^9 and is refused at 200k, holding a few MB.
pub const MAX_NODES: usize = 200_000;
/// Beyond [`MAX_NODES`], aliases may copy this many nodes per node written in the
/// text so far, so a large generated file that merges an anchor into every one of
/// its services still loads: expansion stays linear in the input, never exponential.
pub const EXPANSION_PER_WRITTEN_NODE: usize = 4;

/// Nodes aliases may have copied once `written` nodes were read from the text.
fn expansion_limit(written: usize) -> usize {
    MAX_NODES.max(written.saturating_mul(EXPANSION_PER_WRITTEN_NODE))
}
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

/// A mapping's keys by name, so that duplicate detection and `<<` merges cost O(1)
/// per key instead of a scan of the siblings. Small mappings (almost all of them)
/// are scanned; the index is built once a mapping passes [`KeyIndex::SCAN`] keys.
#[derive(Default)]
struct KeyIndex {
    by_name: Option<HashMap<String, usize>>,
}

impl KeyIndex {
    const SCAN: usize = 16;

    /// Position of `name` in `entries`.
    fn find(&mut self, entries: &[(Key, Node)], name: &str) -> Option<usize> {
        if entries.len() < Self::SCAN && self.by_name.is_none() {
            return entries.iter().position(|(k, _)| k.name == name);
        }
        let index = self.by_name.get_or_insert_with(|| {
            entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.name.clone(), i))
                .collect()
        });
        index.get(name).copied()
    }

    /// Records that `entries[at]` is named `name` (call after `find` said it is new).
    fn insert(&mut self, name: &str, at: usize) {
        if let Some(index) = &mut self.by_name {
            index.insert(name.to_string(), at);
        }
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
        tag: Tag,
        size: usize,
    },
    Map {
        entries: Vec<(Key, Node)>,
        index: KeyIndex,
        pending_key: Option<Node>,
        pos: Pos,
        anchor: usize,
        tag: Tag,
        merges: Vec<Node>,
        size: usize,
    },
}

fn tag_of(tag: Option<&serde_saphyr::granit_parser::Tag>) -> Tag {
    match tag {
        Some(t) if t.handle() == "!" && t.suffix() == "reset" => Tag::Reset,
        Some(t) if t.handle() == "!" && t.suffix() == "override" => Tag::Override,
        _ => Tag::None,
    }
}

/// The anchors some alias refers to. Only those are kept (copied) while parsing, so
/// a file without aliases never pays for its anchors. A pre-pass over the events,
/// skipped when the text has no `*` at all (no alias can then exist).
fn referenced_anchors(text: &str) -> HashSet<usize> {
    let mut ids = HashSet::new();
    if !text.contains('*') {
        return ids;
    }
    let mut parser = Parser::new_from_str(text);
    // A syntax error ends the pre-pass; the main pass reports it with its position.
    while let Some(Ok((event, _))) = parser.next_event() {
        if let Event::Alias(id) = event {
            ids.insert(id);
        }
    }
    ids
}

/// A kept anchor: its node and its size, or only its size when keeping it would
/// pass the budget (any alias to it would pass the budget anyway).
type Anchor = (Option<Node>, usize);

/// Parses one YAML document into a [`Node`]. An empty file is `Null`.
///
/// Linear in the text: keys are found through [`KeyIndex`], subtree sizes are
/// carried up the stack instead of recounted, and only referenced anchors are
/// copied. The budget counts nodes copied through aliases, never nodes written
/// in the text (those are bounded by the file size limit).
pub fn parse(text: &str, file: &Arc<str>) -> Result<Node, YamlError> {
    let pos_at = |line: usize, col: usize| Pos {
        file: file.clone(),
        line,
        col: col + 1,
    };
    let referenced = referenced_anchors(text);
    let mut parser = Parser::new_from_str(text);
    let mut anchors: HashMap<usize, Anchor> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    // Nodes read from the text, nodes copied by alias expansion, and nodes held
    // as copies of anchors.
    let mut written: usize = 0;
    let mut expanded: usize = 0;
    let mut kept: usize = 0;
    let mut documents = 0usize;

    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError {
            pos: pos_at(e.marker().line(), e.marker().col()),
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let pos = pos_at(span.start.line(), span.start.col());
        // A finished node, its anchor id (0 = none) and its size in nodes.
        let mut finished: Option<(Node, usize, usize)> = None;
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
                written += 1;
                finished = Some((Node { value, pos, tag }, anchor, 1));
            }
            Event::Alias(id) => {
                let (node, size) = anchors.get(&id).ok_or_else(|| YamlError {
                    pos: pos.clone(),
                    message: "alias refers to an unknown anchor".into(),
                })?;
                // Checked before the copy is made: a refused bomb costs no memory.
                expanded = expanded.saturating_add(*size);
                let limit = expansion_limit(written);
                let node = match node {
                    Some(node) if expanded <= limit => node.clone(),
                    _ => return Err(budget_error(pos, limit)),
                };
                finished = Some((node, 0, *size));
            }
            Event::SequenceStart(_, anchor, tag) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                written += 1;
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos,
                    anchor,
                    tag: tag_of(tag.as_deref()),
                    size: 1,
                });
            }
            Event::MappingStart(_, anchor, tag) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                written += 1;
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    index: KeyIndex::default(),
                    pending_key: None,
                    pos,
                    anchor,
                    tag: tag_of(tag.as_deref()),
                    merges: Vec::new(),
                    size: 1,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    items,
                    pos,
                    anchor,
                    tag,
                    size,
                }) = stack.pop()
                {
                    let node = Node {
                        value: Value::Seq(items),
                        pos,
                        tag,
                    };
                    finished = Some((node, anchor, size));
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    mut entries,
                    mut index,
                    pos,
                    anchor,
                    tag,
                    merges,
                    size,
                    ..
                }) = stack.pop()
                {
                    // `<<` merge keys: keys written in the mapping win, then earlier
                    // sources. (`size` already counts every source whole.)
                    for source in merges {
                        let Value::Map(source_entries) = source.value else {
                            continue;
                        };
                        for (k, v) in source_entries {
                            if index.find(&entries, &k.name).is_none() {
                                index.insert(&k.name, entries.len());
                                entries.push((k, v));
                            }
                        }
                    }
                    let node = Node {
                        value: Value::Map(entries),
                        pos,
                        tag,
                    };
                    finished = Some((node, anchor, size));
                }
            }
            _ => {}
        }
        let Some((node, anchor, size)) = finished else {
            continue;
        };
        if anchor != 0 && referenced.contains(&anchor) {
            // A copy is kept only while all copies together stay within the budget;
            // beyond it, an alias to this anchor would be refused anyway.
            let copy = match kept.checked_add(size) {
                Some(total) if total <= expansion_limit(written) => {
                    kept = total;
                    Some(node.clone())
                }
                _ => None,
            };
            anchors.insert(anchor, (copy, size));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq {
                items, size: total, ..
            }) => {
                *total = total.saturating_add(size);
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                index,
                pending_key,
                merges,
                size: total,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    *total = total.saturating_add(size + 1);
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
                        if let Some(first) = index.find(entries, &name) {
                            return Err(YamlError {
                                pos: key.pos,
                                message: format!(
                                    "duplicate key {name:?} (first defined at line {})",
                                    entries[first].0.pos.line
                                ),
                            });
                        }
                        index.insert(&name, entries.len());
                        entries.push((Key { name, pos: key.pos }, node));
                    }
                }
            },
        }
    }
    Ok(root.unwrap_or_else(|| Node::new(Value::Null, pos_at(1, 0))))
}

fn budget_error(pos: Pos, limit: usize) -> YamlError {
    YamlError {
        pos,
        message: format!(
            "document expands to more than {limit} nodes through aliases (YAML alias bomb?); refused"
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
