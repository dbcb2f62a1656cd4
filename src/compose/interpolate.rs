//! Variable interpolation as Compose does it: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`,
//! nested defaults (`${A:-${B:-c}}`), defaults holding braces, and `$$` for a
//! literal `$`; a `$` that starts no variable (`$1`, `a $ b`) stays as it is. Values are
//! interpolated, keys are not. An unset variable without a default becomes an empty
//! string with a warning, as in Compose.

use std::collections::{BTreeSet, HashMap};

use super::yaml::{Node, Pos, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolateError {
    /// `${VAR:?message}` / `${VAR?message}` with VAR missing.
    Required { variable: String, message: String },
    /// A `$` that starts no valid form.
    Invalid { reason: String },
}

/// The variables interpolation reads, and the names it found unset.
pub struct Env<'a> {
    pub vars: &'a HashMap<String, String>,
    pub unset: BTreeSet<String>,
}

impl<'a> Env<'a> {
    pub fn new(vars: &'a HashMap<String, String>) -> Self {
        Env {
            vars,
            unset: BTreeSet::new(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Interpolates one string.
pub fn interpolate(input: &str, env: &mut Env<'_>) -> Result<String, InterpolateError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let end =
                    matching_brace(&chars, i + 2).ok_or_else(|| InterpolateError::Invalid {
                        reason: "unterminated `${`".into(),
                    })?;
                let body: String = chars[i + 2..end].iter().collect();
                out.push_str(&braced(&body, env)?);
                i = end + 1;
            }
            Some(&n) if is_name_start(n) => {
                let mut j = i + 1;
                while j < chars.len() && is_name_char(chars[j]) {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                match env.get(&name) {
                    Some(v) => out.push_str(v),
                    None => {
                        env.unset.insert(name);
                    }
                }
                i = j;
            }
            // A `$` that starts no variable (`a $ string`, `^REGEX$`,
            // `$1`, `$@`) is kept as it is, as compose-go's template does
            // (template_test.go TestUnescaped).
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Index of the `}` that closes a `${` whose body starts at `start`.
fn matching_brace(chars: &[char], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '$' if chars.get(i + 1) == Some(&'$') => i += 1,
            '$' if chars.get(i + 1) == Some(&'{') => {
                depth += 1;
                i += 1;
            }
            // A plain `{` opens a level too, so that a default holding braces
            // (`${JSON:-{"json":1}}`) is one default, whether or not JSON is
            // set (compose-go TestValueWithCurlyBracesDefault).
            '{' => depth += 1,
            '}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(body: &str, env: &mut Env<'_>) -> Result<String, InterpolateError> {
    let name_len = body
        .char_indices()
        .find(|&(idx, c)| {
            if idx == 0 {
                !is_name_start(c)
            } else {
                !is_name_char(c)
            }
        })
        .map(|(idx, _)| idx)
        .unwrap_or(body.len());
    let name = &body[..name_len];
    if name.is_empty() {
        return Err(InterpolateError::Invalid {
            reason: format!("`${{{body}}}` has no variable name"),
        });
    }
    let rest = &body[name_len..];
    let value = env.get(name).map(str::to_string);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (op, word) = if rest.is_empty() {
        ("", "")
    } else if let Some(w) = rest.strip_prefix(":-") {
        (":-", w)
    } else if let Some(w) = rest.strip_prefix(":?") {
        (":?", w)
    } else if let Some(w) = rest.strip_prefix(":+") {
        (":+", w)
    } else if let Some(w) = rest.strip_prefix('-') {
        ("-", w)
    } else if let Some(w) = rest.strip_prefix('?') {
        ("?", w)
    } else if let Some(w) = rest.strip_prefix('+') {
        ("+", w)
    } else {
        return Err(InterpolateError::Invalid {
            reason: format!(
                "`${{{body}}}`: expected one of :- - :? ? :+ + after the variable name"
            ),
        });
    };
    Ok(match op {
        "" => match value {
            Some(v) => v,
            None => {
                env.unset.insert(name.to_string());
                String::new()
            }
        },
        ":-" if non_empty => value.unwrap_or_default(),
        "-" if set => value.unwrap_or_default(),
        ":-" | "-" => interpolate(word, env)?,
        ":?" if non_empty => value.unwrap_or_default(),
        "?" if set => value.unwrap_or_default(),
        ":?" | "?" => {
            return Err(InterpolateError::Required {
                variable: name.to_string(),
                message: interpolate(word, env)?,
            })
        }
        ":+" if non_empty => interpolate(word, env)?,
        "+" if set => interpolate(word, env)?,
        _ => String::new(),
    })
}

/// `services`, `api`, `command`, `[0]` -> `services.api.command[0]`.
fn join_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if !out.is_empty() && !seg.starts_with('[') {
            out.push('.');
        }
        out.push_str(seg);
    }
    out
}

/// Interpolates every scalar value in a tree; `path` names the node for errors.
pub fn interpolate_tree(
    node: &mut Node,
    path: &mut Vec<String>,
    env: &mut Env<'_>,
) -> Result<(), (Pos, String, InterpolateError)> {
    match &mut node.value {
        Value::Scalar { text, .. } => {
            if text.contains('$') {
                match interpolate(text, env) {
                    Ok(v) => *text = v,
                    Err(e) => return Err((node.pos.clone(), join_path(path), e)),
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                let r = interpolate_tree(item, path, env);
                path.pop();
                r?;
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                path.push(k.name.clone());
                let r = interpolate_tree(v, path, env);
                path.pop();
                r?;
            }
        }
        Value::Null => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, vars: &[(&str, &str)]) -> Result<String, InterpolateError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut env = Env::new(&map);
        interpolate(input, &mut env)
    }

    #[test]
    fn every_form() {
        let vars = [("A", "a"), ("EMPTY", "")];
        assert_eq!(run("$A-${A}", &vars).unwrap(), "a-a");
        assert_eq!(
            run("${EMPTY:-d}|${EMPTY-d}|${NO-d}", &vars).unwrap(),
            "d||d"
        );
        assert_eq!(
            run("${EMPTY:+x}|${EMPTY+x}|${NO+x}|${A:+x}", &vars).unwrap(),
            "|x||x"
        );
        assert_eq!(run("${NO:-${NO2:-${A}}}", &vars).unwrap(), "a");
        assert_eq!(run("$$A costs $$5", &vars).unwrap(), "$A costs $5");
        assert_eq!(
            run("${EMPTY:?must be set}", &vars).unwrap_err(),
            InterpolateError::Required {
                variable: "EMPTY".into(),
                message: "must be set".into()
            }
        );
        assert_eq!(run("${EMPTY?must be set}", &vars).unwrap(), "");
        assert!(run("${A", &vars).is_err());
        // compose-go template_test.go TestUnescaped: a `$` that starts no
        // variable stays.
        for kept in ["a $ string", "^REGEX$", "echo $1 $@", "$}", "$"] {
            assert_eq!(run(kept, &vars).unwrap(), kept);
        }
        assert!(run("${1}", &vars).is_err());
        // TestValueWithCurlyBracesDefault / TestNoValueWithCurlyBracesDefault.
        let json = [("JSON", r#"{"json":2}"#)];
        for t in [r#"ok ${JSON:-{"json":1}}"#, r#"ok ${JSON-{"json":1}}"#] {
            assert_eq!(run(t, &json).unwrap(), r#"ok {"json":2}"#, "{t}");
            assert_eq!(run(t, &[]).unwrap(), r#"ok {"json":1}"#, "{t}");
        }
        assert!(run("${A:x}", &vars).is_err());
    }
}
