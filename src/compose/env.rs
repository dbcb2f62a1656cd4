//! `.env` and `env_file` parsing in Compose's dotenv dialect: `KEY=value`,
//! `export KEY=value`, `# comments`, single quotes (literal), double quotes
//! (escapes and interpolation), unquoted values (trimmed, ` #` starts a comment,
//! interpolated), and a bare `KEY` taken from the environment when set there.

use std::collections::HashMap;
use std::path::Path;

use super::interpolate::{interpolate, Env, InterpolateError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    pub line: usize,
    pub message: String,
}

/// Parses dotenv text. `lookup` supplies variables for interpolation and bare keys;
/// keys defined earlier in the file are visible to later values.
/// Returns the pairs in file order.
pub fn parse_dotenv(
    text: &str,
    lookup: &HashMap<String, String>,
) -> Result<Vec<(String, String)>, EnvFileError> {
    parse_dotenv_pinned(text, lookup, None)
}

/// As [`parse_dotenv`], but a variable in `pinned` (the shell's environment)
/// keeps the shell's value in later references even when the file sets it:
/// compose-go dotenv GetEnvFromFile looks the current environment up first
/// (cli/options_test.go TestEnvVariablePrecedence: `FOO=foo`, `BAR=${FOO}`
/// with FOO=zot exported gives BAR=zot). For the project's `.env` and
/// `--env-file`s, not for a service's `env_file`.
pub fn parse_dotenv_pinned(
    text: &str,
    lookup: &HashMap<String, String>,
    pinned: Option<&HashMap<String, String>>,
) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut scope = lookup.clone();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let raw = lines[i].trim_start_matches('\u{feff}');
        i += 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let trimmed = trimmed
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let err = |message: String| EnvFileError {
            line: line_no,
            message,
        };
        let (key, rest) = match trimmed.find('=') {
            Some(idx) => (trimmed[..idx].trim(), Some(trimmed[idx + 1..].trim_start())),
            None => (trimmed, None),
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(err(format!("invalid variable name {key:?}")));
        }
        let Some(rest) = rest else {
            if let Some(v) = lookup.get(key) {
                scope.insert(key.to_string(), v.clone());
                out.push((key.to_string(), v.clone()));
            }
            continue;
        };
        let value = if let Some(body) = rest.strip_prefix('\'') {
            // Single quotes: literal, may span lines.
            let mut acc = body.to_string();
            loop {
                if let Some(end) = acc.find('\'') {
                    acc.truncate(end);
                    break acc;
                }
                if i >= lines.len() {
                    return Err(err("unterminated single-quoted value".into()));
                }
                acc.push('\n');
                acc.push_str(lines[i]);
                i += 1;
            }
        } else if let Some(body) = rest.strip_prefix('"') {
            let mut acc = body.to_string();
            let content = loop {
                if let Some(end) = closing_double_quote(&acc) {
                    acc.truncate(end);
                    break acc;
                }
                if i >= lines.len() {
                    return Err(err("unterminated double-quoted value".into()));
                }
                acc.push('\n');
                acc.push_str(lines[i]);
                i += 1;
            };
            let unescaped = unescape_double(&content);
            expand(&unescaped, &scope).map_err(|e| err(describe(&e)))?
        } else {
            let value = match rest.find(" #") {
                Some(idx) => &rest[..idx],
                None => rest,
            };
            expand(value.trim_end(), &scope).map_err(|e| err(describe(&e)))?
        };
        if pinned.is_none_or(|p| !p.contains_key(key)) {
            scope.insert(key.to_string(), value.clone());
        }
        if let Some(existing) = out.iter_mut().find(|(k, _)| k == key) {
            existing.1 = value;
        } else {
            out.push((key.to_string(), value));
        }
    }
    Ok(out)
}

fn closing_double_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (idx, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(idx),
            _ => escaped = false,
        }
    }
    None
}

fn unescape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn expand(value: &str, scope: &HashMap<String, String>) -> Result<String, InterpolateError> {
    let mut env = Env::new(scope);
    interpolate(value, &mut env)
}

fn describe(e: &InterpolateError) -> String {
    match e {
        InterpolateError::Required { variable, message } => {
            format!("required variable {variable} is missing a value: {message}")
        }
        InterpolateError::Invalid { reason } => format!("invalid interpolation: {reason}"),
    }
}

/// Why a dotenv file could not be used; names `path` (and `path:line`).
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    #[error("{}: cannot read env file: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: std::path::PathBuf,
        line: usize,
        message: String,
    },
}

/// Reads and parses a dotenv file.
pub fn read_dotenv(
    path: &Path,
    lookup: &HashMap<String, String>,
) -> Result<Vec<(String, String)>, DotenvError> {
    read_dotenv_pinned(path, lookup, None)
}

/// Reads and parses a project env file (`.env`, `--env-file`, an include's
/// `env_file`): see [`parse_dotenv_pinned`].
pub fn read_dotenv_pinned(
    path: &Path,
    lookup: &HashMap<String, String>,
    pinned: Option<&HashMap<String, String>>,
) -> Result<Vec<(String, String)>, DotenvError> {
    let text = std::fs::read_to_string(path).map_err(|source| DotenvError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_dotenv_pinned(&text, lookup, pinned).map_err(|e| DotenvError::Parse {
        path: path.to_path_buf(),
        line: e.line,
        message: e.message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_dialect() {
        let mut lookup = HashMap::new();
        lookup.insert("HOME".to_string(), "/home/u".to_string());
        let text = "# comment\nexport A=1\nB = two # trailing\nC='lit $A'\nD=\"x\\ny $A\"\nE=${A}-${HOME}\nHOME\nF=\"multi\nline\"\n";
        let got = parse_dotenv(text, &lookup).unwrap();
        let map: HashMap<_, _> = got.into_iter().collect();
        assert_eq!(map["A"], "1");
        assert_eq!(map["B"], "two");
        assert_eq!(map["C"], "lit $A");
        assert_eq!(map["D"], "x\ny 1");
        assert_eq!(map["E"], "1-/home/u");
        assert_eq!(map["HOME"], "/home/u");
        assert_eq!(map["F"], "multi\nline");
        let err = parse_dotenv("OK=1\nBAD KEY=2\n", &lookup).unwrap_err();
        assert_eq!(err.line, 2);
    }
}
