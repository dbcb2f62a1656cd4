//! Typed readers for the merged tree: scalars, booleans, numbers, durations,
//! lists, `K=V` maps, commands and paths, each error naming the field's path and
//! position. Every other normalize file reads its values through these, so a
//! wrong type is worded the same way wherever it is found.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::compose::discover::clean;
use crate::compose::error::ComposeError;
use crate::compose::yaml::{Node, Value};

pub(super) type R<T> = Result<T, ComposeError>;

pub(super) fn err(node: &Node, path: &str, message: impl Into<String>) -> ComposeError {
    ComposeError::Field {
        pos: node.pos.clone(),
        path: path.to_string(),
        message: message.into(),
    }
}

/// A scalar as a string (numbers and booleans as written).
pub fn string(node: &Node, path: &str) -> R<String> {
    match &node.value {
        Value::Scalar { text, .. } => Ok(text.clone()),
        _ => Err(err(
            node,
            path,
            format!("expected a string, found {}", node.kind()),
        )),
    }
}

pub(super) fn opt_string(node: Option<&Node>, path: &str) -> R<Option<String>> {
    match node {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(n) => string(n, path).map(Some),
    }
}

pub(super) fn boolean(node: &Node, path: &str) -> R<bool> {
    match node.as_scalar() {
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        _ => Err(err(node, path, "expected true or false")),
    }
}

pub(super) fn opt_bool(node: Option<&Node>, path: &str, default: bool) -> R<bool> {
    match node {
        None => Ok(default),
        Some(n) if n.is_null() => Ok(default),
        Some(n) => boolean(n, path),
    }
}

pub(super) fn number<T: std::str::FromStr>(node: &Node, path: &str, what: &str) -> R<T> {
    node.as_scalar()
        .and_then(|s| s.trim().parse::<T>().ok())
        .ok_or_else(|| {
            err(
                node,
                path,
                format!("expected {what}, found {}", describe_value(node)),
            )
        })
}

fn describe_value(node: &Node) -> String {
    match node.as_scalar() {
        Some(s) => format!("{s:?}"),
        None => node.kind().to_string(),
    }
}

fn duration(node: &Node, path: &str) -> R<Duration> {
    let text = string(node, path)?;
    crate::duration::parse(&text).map_err(|source| ComposeError::Duration {
        pos: node.pos.clone(),
        path: path.to_string(),
        source,
    })
}

pub(super) fn opt_duration(node: Option<&Node>, path: &str) -> R<Option<Duration>> {
    match node {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(n) => duration(n, path).map(Some),
    }
}

/// A string or a list of strings.
pub(super) fn string_list(node: &Node, path: &str) -> R<Vec<String>> {
    match &node.value {
        Value::Null => Ok(vec![]),
        Value::Scalar { text, .. } => Ok(vec![text.clone()]),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| string(n, &format!("{path}[{i}]")))
            .collect(),
        Value::Map(_) => Err(err(node, path, "expected a string or a list of strings")),
    }
}

/// The items of a list node; nothing for null; else `expected` as the error.
pub(super) fn items<'a>(node: &'a Node, path: &str, expected: &str) -> R<&'a [Node]> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(err(node, path, expected)),
    }
}

pub(super) fn strict_list(node: &Node, path: &str) -> R<Vec<String>> {
    match &node.value {
        Value::Scalar { .. } => Err(err(node, path, "expected a list")),
        _ => string_list(node, path),
    }
}

/// Why a command string could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellSplitError {
    #[error("unterminated single quote")]
    UnterminatedSingleQuote,
    #[error("unterminated double quote")]
    UnterminatedDoubleQuote,
}

/// Splits a command string with POSIX shell word rules (quotes and backslashes).
pub fn shell_split(input: &str) -> Result<Vec<String>, ShellSplitError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(ShellSplitError::UnterminatedSingleQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err(ShellSplitError::UnterminatedDoubleQuote),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err(ShellSplitError::UnterminatedDoubleQuote),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(ch) => cur.push(ch),
                    None => cur.push('\\'),
                }
            }
            ch => {
                in_word = true;
                cur.push(ch);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

pub(super) fn command(node: Option<&Node>, path: &str) -> R<Option<Vec<String>>> {
    match node {
        None => Ok(None),
        Some(n) => match &n.value {
            Value::Null => Ok(None),
            Value::Scalar { text, .. } => shell_split(text)
                .map(Some)
                .map_err(|m| err(n, path, m.to_string())),
            Value::Seq(_) => string_list(n, path).map(Some),
            Value::Map(_) => Err(err(n, path, "expected a string or a list")),
        },
    }
}

/// `["K=V", "K"]` or `{K: V}`; `K` without a value takes `lookup(K)`.
pub(super) fn key_values(
    node: &Node,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> R<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    match &node.value {
        Value::Null => {}
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let text = string(item, &format!("{path}[{i}]"))?;
                match text.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(text.clone(), lookup(&text)),
                };
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let value = match &v.value {
                    Value::Null => lookup(&k.name),
                    Value::Scalar { text, .. } => Some(text.clone()),
                    _ => {
                        return Err(err(
                            v,
                            &format!("{path}.{}", k.name),
                            "expected a string, number or boolean",
                        ))
                    }
                };
                out.insert(k.name.clone(), value);
            }
        }
        Value::Scalar { .. } => return Err(err(node, path, "expected a list or a mapping")),
    }
    Ok(out)
}

pub(super) fn labels(node: &Node, path: &str) -> R<BTreeMap<String, String>> {
    Ok(key_values(node, path, &|_| None)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

pub(super) fn absolute_path(project_dir: &Path, p: &str) -> String {
    if p.contains("://") || p.starts_with("git@") {
        return p.to_string();
    }
    let expanded = expand_home(p);
    let path = Path::new(&expanded);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        project_dir.join(path)
    };
    clean(&joined).to_string_lossy().into_owned()
}

fn expand_home(p: &str) -> String {
    if let Some(rest) = p.strip_prefix('~') {
        if rest.is_empty() || rest.starts_with('/') {
            if let Ok(home) = std::env::var("HOME") {
                return format!("{home}{rest}");
            }
        }
    }
    p.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_split(r#"sh -c 'echo "hi there"' a\ b "x\"y""#).unwrap(),
            vec!["sh", "-c", "echo \"hi there\"", "a b", "x\"y"]
        );
        assert!(shell_split("echo 'open").is_err());
    }
}
