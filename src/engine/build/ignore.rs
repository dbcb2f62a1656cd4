//! `.dockerignore` rules, applied the way the Docker CLI applies them when it
//! sends a build context (moby's `patternmatcher` and `ignorefile`).
//!
//! Why our own: no maintained crate implements these semantics (gitignore
//! matchers differ: there a pattern without a slash matches at any depth, in
//! Docker it is anchored at the context root; `**` and `!` differ in detail).
//! A file that Docker would send and muster would not (or the other way
//! round) makes a build that works with `docker compose build` fail, or leak
//! a secret into the context, so the rules are unit-tested one by one below.
//!
//! The rules:
//! - a line starting with `#` is a comment; lines are trimmed; empty ones skipped;
//! - `!` makes an exception (re-includes what an earlier line excluded);
//! - each pattern is cleaned as Go's `filepath.Clean` does (`./a/` -> `a`,
//!   `a//b` -> `a/b`, `a/../b` -> `b`) and a leading `/` is dropped, so every
//!   pattern is anchored at the context root;
//! - `*` and `?` never cross a `/`; `[…]` is a character class (`^` negates);
//!   `\` escapes the next character; `**` matches any number of directories
//!   (also none);
//! - a path is excluded when a pattern matches it or one of its parent
//!   directories; the last pattern that matches decides.

use regex::Regex;

/// A line of `.dockerignore` Docker would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct IgnoreError {
    pub line: usize,
    pub message: String,
}

/// How one pattern matches, chosen as moby's patternmatcher chooses it: the
/// literal kinds are not mere optimisations (`**foo` is a plain suffix test).
#[derive(Debug, Clone)]
enum Kind {
    /// No wildcard: the path equals the pattern.
    Exact(String),
    /// Only a trailing `**`: the path starts with the rest.
    Prefix(String),
    /// Only a leading `**`: the path ends with the rest (`**/a` also matches `a`).
    Suffix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    exception: bool,
    kind: Kind,
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact(p) => path == p,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

/// The parsed rules of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

impl IgnoreRules {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<IgnoreRules, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = IgnoreRules::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.starts_with('#') {
                continue;
            }
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            rules.push(trimmed, line)?;
        }
        Ok(rules)
    }

    /// Adds one pattern (`!x` for an exception); `line` is for errors.
    pub fn push(&mut self, pattern: &str, line: usize) -> Result<(), IgnoreError> {
        let (exception, body) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, pattern),
        };
        if exception && body.is_empty() {
            return Err(IgnoreError {
                line,
                message: "illegal exclusion pattern: \"!\"".into(),
            });
        }
        let mut cleaned = clean(body);
        if cleaned.len() > 1 && cleaned.starts_with('/') {
            cleaned.remove(0);
        }
        let kind = compile(&cleaned).map_err(|message| IgnoreError { line, message })?;
        self.patterns.push(Pattern {
            text: cleaned,
            exception,
            kind,
        });
        Ok(())
    }

    /// True when some rule is an exception (`!…`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left
    /// out of the context: the last pattern that matches it or one of its
    /// parent directories decides.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        if path == "." {
            return false;
        }
        let parents: Vec<&str> = path.match_indices('/').map(|(at, _)| &path[..at]).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // An include cannot change an excluded path, nor an exception an included one.
            if p.exception != excluded {
                continue;
            }
            if p.matches(&path) || parents.iter().any(|parent| p.matches(parent)) {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// For an excluded directory: whether the walk must still go into it,
    /// because an exception names something below it (as the Docker CLI decides).
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        let dir_slash = format!("{}/", clean(dir));
        self.patterns
            .iter()
            .filter(|p| p.exception)
            .any(|p| format!("{}/", p.text).starts_with(&dir_slash) || p.text.contains("**"))
    }
}

/// Go's `filepath.Clean` on a `/`-separated path.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Translates one cleaned pattern into its match kind.
fn compile(pattern: &str) -> Result<Kind, String> {
    let mut re = String::from("^");
    let mut is_regex = false;
    let mut literal_kind: Option<&'static str> = None; // "prefix" | "suffix"
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                let first = i == 0;
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    // A trailing `**` matches everything below.
                    if !is_regex && literal_kind.is_none() {
                        literal_kind = Some("prefix");
                    } else {
                        re.push_str(".*");
                        is_regex = true;
                    }
                } else {
                    re.push_str("(.*/)?");
                    is_regex = true;
                }
                if first {
                    literal_kind = Some("suffix");
                    is_regex = false;
                }
                continue;
            }
            '*' => {
                re.push_str("[^/]*");
                is_regex = true;
                literal_kind = None;
            }
            '?' => {
                re.push_str("[^/]");
                is_regex = true;
                literal_kind = None;
            }
            '\\' => {
                if let Some(next) = chars.get(i + 1) {
                    re.push_str(&regex::escape(&next.to_string()));
                    is_regex = true;
                    literal_kind = None;
                    i += 1;
                } else {
                    re.push_str("\\\\");
                }
            }
            '[' => {
                // A character class, kept as a class; `^` negates as in Go.
                let end = chars[i + 1..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|p| i + 1 + p)
                    .ok_or_else(|| {
                        format!("syntax error in pattern {pattern:?}: unterminated [")
                    })?;
                let class: String = chars[i + 1..end].iter().collect();
                if class.is_empty() || class == "^" {
                    return Err(format!(
                        "syntax error in pattern {pattern:?}: empty character class"
                    ));
                }
                let (negated, body) = match class.strip_prefix('^') {
                    Some(b) => (true, b),
                    None => (false, class.as_str()),
                };
                re.push('[');
                if negated {
                    re.push('^');
                }
                for ch in body.chars() {
                    match ch {
                        '-' => re.push('-'),
                        '[' | ']' | '\\' | '&' | '~' | '^' => {
                            re.push('\\');
                            re.push(ch);
                        }
                        _ => re.push(ch),
                    }
                }
                re.push(']');
                is_regex = true;
                literal_kind = None;
                i = end;
            }
            ']' => {
                return Err(format!("syntax error in pattern {pattern:?}: unmatched ]"));
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
        i += 1;
    }
    // A leading `**` followed by wildcards is a regular expression after all.
    let literal = |skip_front: usize, skip_back: usize| -> String {
        pattern[skip_front..pattern.len() - skip_back].to_string()
    };
    match literal_kind {
        Some("suffix") if !is_regex && !has_wildcard(&pattern[2..]) => {
            Ok(Kind::Suffix(literal(2, 0)))
        }
        Some("prefix") if !is_regex => Ok(Kind::Prefix(literal(0, 2))),
        _ if !is_regex && !has_wildcard(pattern) => Ok(Kind::Exact(pattern.to_string())),
        _ => {
            re.push('$');
            Regex::new(&re)
                .map(Kind::Regex)
                .map_err(|e| format!("syntax error in pattern {pattern:?}: {e}"))
        }
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text).expect("valid rules")
    }

    #[test]
    fn a_pattern_excludes_the_path_and_everything_below_it() {
        let r = rules("node_modules\nbuild/\n");
        assert!(r.excludes("node_modules"));
        assert!(r.excludes("node_modules/x/y.js"));
        assert!(r.excludes("build/out.o"));
        assert!(!r.excludes("src/node_modules"), "anchored at the root");
        assert!(!r.excludes("node_modules2"));
    }

    #[test]
    fn leading_slash_and_dot_slash_are_the_root() {
        let r = rules("/secret.txt\n./logs\n");
        assert!(r.excludes("secret.txt"));
        assert!(r.excludes("logs/a.log"));
        assert!(!r.excludes("sub/secret.txt"));
    }

    #[test]
    fn star_and_question_mark_stay_within_one_directory() {
        let r = rules("*.log\ndata/?.bin\n");
        assert!(r.excludes("a.log"));
        assert!(!r.excludes("sub/a.log"), "* does not cross /");
        assert!(r.excludes("data/1.bin"));
        assert!(!r.excludes("data/10.bin"));
    }

    #[test]
    fn double_star_matches_any_number_of_directories_also_none() {
        let r = rules("**/*.tmp\n");
        assert!(r.excludes("a.tmp"));
        assert!(r.excludes("x/y/z/a.tmp"));
        assert!(!r.excludes("a.tmpl"));
        let r = rules("a/**/b\n");
        assert!(r.excludes("a/b"));
        assert!(r.excludes("a/x/y/b"));
        assert!(r.excludes("a/x/b/c"), "below a match");
        let r = rules("**\n");
        assert!(r.excludes("anything/at/all"));
        let r = rules("dist/**\n");
        assert!(r.excludes("dist/a"));
        assert!(!r.excludes("dist"), "a trailing /** needs something below");
        let r = rules("**/cache\n");
        assert!(r.excludes("cache"));
        assert!(r.excludes("a/b/cache/f"));
    }

    #[test]
    fn exceptions_reinclude_and_the_last_match_wins() {
        let r = rules("*.md\n!README.md\n");
        assert!(r.excludes("CHANGES.md"));
        assert!(!r.excludes("README.md"));
        let r = rules("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(!r.excludes("README-public.md"));
        assert!(r.excludes("README-secret.md"));
        let r = rules("**\n!src\n");
        assert!(r.excludes("Cargo.lock"));
        assert!(!r.excludes("src/main.rs"));
        assert!(r.has_exceptions());
    }

    #[test]
    fn excluded_directories_are_entered_only_for_a_matching_exception() {
        let r = rules("docs\n!docs/keep.md\n");
        assert!(r.excludes("docs"));
        assert!(r.may_reinclude_below("docs"));
        assert!(!r.excludes("docs/keep.md"));
        assert!(r.excludes("docs/other.md"));
        assert!(!r.may_reinclude_below("target"));
    }

    #[test]
    fn comments_blank_lines_classes_and_escapes() {
        let r = rules("# a comment\n\n   \n  spaced.txt  \n[ab].c\n[^x]y.z\n\\*literal\n");
        assert!(r.excludes("spaced.txt"));
        assert!(!r.excludes("# a comment"));
        assert!(r.excludes("a.c") && r.excludes("b.c") && !r.excludes("c.c"));
        assert!(r.excludes("ay.z") && !r.excludes("xy.z"));
        assert!(r.excludes("*literal") && !r.excludes("xliteral"));
    }

    #[test]
    fn patterns_are_cleaned_as_go_does() {
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(clean("a/../b"), "b");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("../x"), "../x");
        let r = rules("a/./b/../c\n");
        assert!(r.excludes("a/c"));
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        let e = IgnoreRules::parse("ok\n!\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = IgnoreRules::parse("a\nb\n[abc\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("unterminated"), "{e}");
    }
}
